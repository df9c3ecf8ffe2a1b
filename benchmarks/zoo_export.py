"""Write a finished `zoo` run into the package's model zoo (harness/zoo/): each arm's fit in half
precision, and a manifest with the row that made it (commit, command, budget, training time)
and what the shipped file measures, re-measured from the half-precision file itself through a
pretrained arm (so `tests/test_zoo.py` can repeat it): `fid_domain` and the other domain metrics
at the arm's CHECK setting of studies/zoo.py, with the real-data floor at the same sample count.

    genbench run zoo --scale full --out /tmp/zoo
    python benchmarks/zoo_export.py /tmp/zoo            # then commit harness/zoo/

`--into DIR` writes elsewhere (to look before replacing the shipped zoo). `--partial ARM` ships an arm whose fit has
not finished from its last training checkpoint (OUT/checkpoints/TRIAL.resume.pt), as a fit of
the steps it reached; its manifest says so (`trained_steps` against `budget_steps`).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import torch

import genbench
from genbench.harness.store import zoo
from genbench.harness.plan.plan import read_plan
from genbench.harness.store.results import REAL_ARM
from genbench.harness.store.rundir import RunDir

N_CHECK = 64  # samples of the measurement a test repeats (a few seconds a model on a CPU)


CHECK_METRICS = ("fid_domain", "kid_domain", "precision_domain", "recall_domain")


def measure(names: list[str], folder: Path = zoo.ZOO_DIR, n: int = 64) -> dict[str, dict[str, Any]]:
    """What each zoo model of `folder` measures at the setting studies/zoo.py checks it at
    (`CHECK`): the domain metrics of `n` samples at seed 0, through a pretrained arm run in this
    process, and the real-data floor at the same `n`. What the manifest records and a test
    repeats."""
    import tempfile

    import genbench
    from genbench.harness.store.results import REAL_ARM
    from genbench.studies.zoo import CHECK, STUDY

    models = zoo.entries_in(folder)
    shipped = Path(folder).resolve() == zoo.ZOO_DIR  # (by name: the manifest's hash is checked)
    arms = tuple(genbench.Arm(name, models[name].method, sample_grid=[CHECK[name]],
                              pretrained=name if shipped else str(models[name].path))
                 for name in names)
    check = genbench.Study(name="zoo_check", data=STUDY.data, arms=arms, seeds=(0,),
                           metrics=CHECK_METRICS, scales={"smoke": genbench.Scale(n_samples=n)})
    with tempfile.TemporaryDirectory() as tmp:
        rows = genbench.run(check, out=Path(tmp) / "check", in_process=True, echo=lambda _: None)
    out = {}
    real = rows[(rows.arm == REAL_ARM) & rows.metric.isin(CHECK_METRICS)]
    for name in names:
        mine = rows[(rows.arm == name) & rows.metric.isin(CHECK_METRICS)]
        out[name] = {"setting": CHECK[name], "n_samples": n, "seed": 0,
                     "values": dict(zip(mine.metric, mine.value.astype(float))),
                     "real": dict(zip(real.metric, real.value.astype(float)))}
    return out


def from_resume(plan, t, run: Path) -> tuple[dict[str, Any], int]:
    """The state of arm `t`'s unfinished fit at its last training checkpoint: a fit whose budget
    is the steps it reached, resumed at its end (so it takes no step), and those steps."""
    from genbench.harness import data as datasets
    from genbench.harness.config import build_config
    from genbench.harness.method import Budget, get_method

    saved = torch.load(RunDir(run).resume_checkpoint(t.trial_id), map_location="cpu",
                       weights_only=False)
    cls = get_method(t.method)
    m = cls(build_config(cls.Config, t.config))
    m.fit(datasets.load(plan.data, "train", plan.resolution),
          Budget(saved["step"], resume={"step": saved["step"], "state": saved["state"]}),
          seed=t.seed, device=torch.device("cpu"))
    return m.state_dict(), int(saved["step"])


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("run", type=Path, help="a finished `genbench run zoo --scale full` directory")
    p.add_argument("--into", type=Path, default=zoo.ZOO_DIR, help="where to write (default: the zoo)")
    p.add_argument("--partial", nargs="+", default=[], metavar="ARM",
                   help="arms shipped from their last training checkpoint (their fit unfinished)")
    args = p.parse_args(argv)
    plan = read_plan(args.run)
    if plan is None or plan.study != "zoo":
        print(f"zoo_export: {args.run} is not a run of the zoo study", file=sys.stderr)
        return 2
    rows = genbench.load(args.run)
    entries, states = [], {}
    for t in plan.trials:
        if t.arm == REAL_ARM or t.seed != 0:
            continue
        ckpt = RunDir(args.run).checkpoint(t.trial_id)
        trained = t.budget_steps
        if t.arm in args.partial:
            states[t.arm], trained = from_resume(plan, t, args.run)
        elif not ckpt.is_file():
            print(f"zoo_export: {t.arm} has no checkpoint at {ckpt}: finish the run first "
                  "(or --partial it)", file=sys.stderr)
            return 2
        else:
            states[t.arm] = torch.load(ckpt, map_location="cpu", weights_only=True)
        fit = rows[(rows.trial_id == t.trial_id) & rows.setting_json.isna()]
        value = dict(zip(fit.metric, fit.value.astype(float)))
        entries.append(zoo.Entry(
            name=t.arm, method=t.method, file="", sha256="", config=t.config,
            data=plan.data, resolution=plan.resolution,
            made_by={"commit": sorted((fit if len(fit) else rows).git_sha.dropna().unique().tolist()),
                     "command": f"genbench run zoo --scale {plan.scale}",
                     "study": "zoo", "scale": plan.scale, "arm": t.arm, "seed": 0,
                     "budget_steps": t.budget_steps, "trained_steps": trained,
                     "images_seen": float(fit.images_seen.dropna().max()) if fit.images_seen.notna().any() else None,
                     "train_s": value.get("train_s"), "final_loss": value.get("final_loss"),
                     "device": sorted(fit.device.dropna().unique().tolist())}))
    args.into.mkdir(parents=True, exist_ok=True)
    zoo.export(entries, states, args.into)  # the files first: the measurement reads them
    measured = measure([e.name for e in entries], args.into, N_CHECK)
    entries = [zoo.Entry(**{**e.__dict__, "metrics": measured[e.name]})
               for e in zoo.entries_in(args.into).values()]
    manifest = zoo.export(entries, states, args.into)
    for e in zoo.entries_in(args.into).values():
        m, nan = e.metrics, float("nan")
        print(f"{e.name:<12} {e.method:<12} {e.path.stat().st_size / 1e6:5.2f} MB  fid_domain "
              f"{m['values'].get('fid_domain', nan):8.1f} (real {m['real'].get('fid_domain', nan):.1f} "
              f"at {m['n_samples']})  {e.sha256[:12]}")
    print(f"manifest: {manifest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
