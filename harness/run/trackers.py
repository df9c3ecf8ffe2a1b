"""Experiment trackers a run reports to (`genbench run --log NAME[=WHERE]`, repeatable), so curves
and results reach the tools labs already look at: TensorBoard, MLflow and Weights & Biases.

Each ended trial is sent once, by the driver, from what the trial wrote to the run directory
(its curve file and its result rows): the same for Ray Tune and `--in-process` runs, and no
tracker package is ever needed by a worker. What a trial sends: its curves along training
(every logged step), its final metrics (per sample setting, and the fit's own), its config with
its arm, train-grid cell and seed, and the git commit, study, scale and trial id as tags.

- `tensorboard[=DIR]`: event files under DIR (default OUT/tensorboard), one run per trial
  (`torch.utils.tensorboard.SummaryWriter`; `pip install 'genbench[tensorboard]'`).
- `mlflow[=URI]`: one MLflow run per trial in the experiment named after the study, at the
  tracking URI (default `sqlite:///OUT/mlflow.db`; `pip install 'genbench[mlflow]'`).
- `wandb[=PROJECT]`: one W&B run per trial in PROJECT (default: the study's name), offline
  under OUT/wandb: no login and no network, uploaded later with `wandb sync OUT/wandb/offline-*`
  (`pip install 'genbench[wandb]'`). A user who has logged in and set `WANDB_MODE=online`
  gets online runs instead; genbench never asks for a key.

Ray Tune has logger callbacks for the same trackers; they are not used because they see what a
trial reports to Tune, not its Parquet rows, and do not run for `--in-process` runs.

Trackers are optional extras: a tracker whose package is missing is refused in one line before
any work starts. A tracker that fails while the run goes on is said once and then left alone:
the Parquet tables stay the record.
"""

from __future__ import annotations

import glob
import json
import re
import time
from pathlib import Path
from typing import Any

import pandas as pd

from genbench.harness.config import grid_text
from genbench.harness.errors import GenbenchError, first_line, unknown
from genbench.harness.store.rundir import RunDir, safe_name

EXTRAS = {"tensorboard": "tensorboard", "mlflow": "mlflow", "wandb": "wandb"}  # tracker -> its package


def parse(specs: list[str]) -> list[tuple[str, str]]:
    """`--log` values as (tracker, where) pairs; unknown names and missing packages fail in
    one line (before any work starts)."""
    import importlib.util

    out = []
    for spec in specs:
        name, _, where = spec.partition("=")
        if name not in EXTRAS:
            raise GenbenchError(unknown("tracker", name, EXTRAS, where=" for --log"))
        if importlib.util.find_spec(EXTRAS[name]) is None:
            raise GenbenchError(f"--log {name} needs the {EXTRAS[name]} package: "
                                f"pip install 'genbench[{name}]'")
        out.append((name, where))
    return out


class Trackers:
    """The trackers of one run: `send(trial)` as each trial ends, `close()` at the end."""

    def __init__(self, specs: list[tuple[str, str]], out: Path, plan, echo):
        self.out, self.plan, self.echo = Path(out), plan, echo
        self.sinks: list[Any] = []
        for name, where in specs:
            try:
                self.sinks.append(SINKS[name](where, self.out, plan))
            except Exception as err:  # noqa: BLE001 - an unreachable store: one line, no trial run
                raise GenbenchError(f"--log {name}{'=' + where if where else ''}: cannot open it: "
                                    f"{type(err).__name__}: {first_line(err)}") from None
        self.sent: set[str] = set()
        self.broken: set[str] = set()
        self.trials = {t.trial_id: t for t in plan.trials}
        self._current: pd.DataFrame | None = None  # the run's rows, read once if needed

    def send(self, trial_id: str, rows: pd.DataFrame | None = None) -> None:
        """Send one ended trial to every tracker (once); `rows`: its current rows, where the
        caller has them (else read from its own results files)."""
        if not self.sinks or trial_id in self.sent:
            return
        trial = self.trials.get(trial_id)
        if trial is None:
            return
        self.sent.add(trial_id)
        curve_file = RunDir(self.out).curve_file(trial_id)
        try:
            curves = pd.read_parquet(curve_file) if curve_file.is_file() else pd.DataFrame()
            if rows is None:
                rows = self._rows(trial_id)
        except Exception as err:  # noqa: BLE001 - a file it cannot read: said, the run goes on
            self.echo(f"--log: trial {trial_id} not sent: {type(err).__name__}: {first_line(err)}")
            return
        for sink in self.sinks:
            if sink.name in self.broken:
                continue
            try:
                sink.send(trial, curves, rows)
            except Exception as err:  # noqa: BLE001 - a tracker never stops the run
                self.broken.add(sink.name)
                self.echo(f"--log {sink.name}: {type(err).__name__}: {first_line(err)}; not sent "
                          "again in this run (the results are in Parquet as always)")

    def close(self) -> None:
        for sink in self.sinks:
            try:
                said = sink.close()
            except Exception:  # noqa: BLE001 - closing what failed already
                continue
            if said and sink.name not in self.broken and self.sent:
                self.echo(said)


    def _rows(self, trial_id: str) -> pd.DataFrame:
        """The rows of one trial: its own small results files (as it ends, before the driver
        compacts them; the folder holds at most about a thousand), else the run's current
        rows, read once."""
        from genbench.harness.store.results import read_current, read_file

        own = sorted(RunDir(self.out).results.glob(f"{glob.escape(trial_id)}.*.parquet"))
        if own:
            return pd.concat([read_file(f).to_pandas() for f in own], ignore_index=True)
        if self._current is None:
            self._current, _ = read_current(self.out, self.plan)
        return self._current[self._current.trial_id == trial_id]


def _tags(plan, trial, rows: pd.DataFrame) -> dict[str, str]:
    sha = rows.git_sha.dropna().iloc[0] if "git_sha" in rows and rows.git_sha.notna().any() else "unknown"
    return {"study": plan.study, "scale": plan.scale, "arm": trial.arm, "method": trial.method,
            "trial_id": trial.trial_id, "seed": str(trial.seed),
            "cell": grid_text(trial.cell), "git_sha": str(sha)}


def _finals(rows: pd.DataFrame) -> list[tuple[str, float, int]]:
    """(key, value, step) of every finite final metric: `metric` for the fit's own rows,
    `metric/setting` for a sample setting's."""
    out = []
    for r in rows.itertuples(index=False):
        value = float(r.value) if r.value is not None else float("nan")
        if value != value or value in (float("inf"), float("-inf")):
            continue
        setting = grid_text(r.setting_json, base="default") if isinstance(r.setting_json, str) else ""
        key = f"{r.metric}/{setting}" if setting else r.metric
        steps = r.train_steps if "train_steps" in rows and pd.notna(r.train_steps) else 0
        out.append((key, value, int(steps)))
    return out


class TensorBoard:
    name = "tensorboard"

    def __init__(self, where: str, out: Path, plan):
        self.root = Path(where).expanduser() if where else RunDir(out).root / "tensorboard"
        self.plan = plan

    def send(self, trial, curves: pd.DataFrame, rows: pd.DataFrame) -> None:
        from torch.utils.tensorboard import SummaryWriter

        writer = SummaryWriter(log_dir=str(self.root / safe_name(f"{trial.name} {trial.trial_id}")))
        try:
            for r in curves.itertuples(index=False):
                writer.add_scalar(f"curves/{r.metric}", float(r.value), int(r.step))
            for key, value, step in _finals(rows):
                writer.add_scalar(f"final/{key}", value, step)
            tags = _tags(self.plan, trial, rows)
            writer.add_text("trial", "\n".join(f"- {k}: {v}" for k, v in tags.items())
                            + f"\n- config: `{json.dumps(trial.config, sort_keys=True)}`")
        finally:
            writer.close()

    def close(self) -> None:
        pass


class MLflow:
    name = "mlflow"
    KEY = re.compile(r"[^A-Za-z0-9_\-. /]")  # what MLflow accepts in metric and param names

    def __init__(self, where: str, out: Path, plan):
        from mlflow.tracking import MlflowClient

        self.uri = where or f"sqlite:///{(RunDir(out).root / 'mlflow.db').resolve()}"
        self.client = MlflowClient(tracking_uri=self.uri)
        self.plan = plan
        found = self.client.get_experiment_by_name(plan.study)
        self.experiment = found.experiment_id if found else self.client.create_experiment(plan.study)

    def key(self, text: str) -> str:
        return self.KEY.sub("_", text.replace("=", "-").replace(", ", "_"))[:250]

    def send(self, trial, curves: pd.DataFrame, rows: pd.DataFrame) -> None:
        from mlflow.entities import Metric, Param

        run = self.client.create_run(self.experiment, run_name=trial.name,
                                     tags=_tags(self.plan, trial, rows))
        now = int(time.time() * 1000)
        metrics = [Metric(self.key(f"curves/{r.metric}"), float(r.value), now, int(r.step))
                   for r in curves.itertuples(index=False)]
        metrics += [Metric(self.key(k), v, now, s) for k, v, s in _finals(rows)]
        params = [Param(self.key(f"config.{k}"), str(v)[:6000]) for k, v in sorted(trial.config.items())]
        params += [Param("seed", str(trial.seed)), Param("arm", trial.arm)]
        for i in range(0, len(params), 100):  # MLflow's batch limits: 100 params, 1000 metrics
            self.client.log_batch(run.info.run_id, params=params[i:i + 100])
        for i in range(0, len(metrics), 1000):
            self.client.log_batch(run.info.run_id, metrics=metrics[i:i + 1000])
        self.client.set_terminated(run.info.run_id)

    def close(self) -> None:
        pass


class WandB:
    name = "wandb"

    def __init__(self, where: str, out: Path, plan):
        import os

        self.project = where or plan.study
        self.root = RunDir(out).root  # runs land in OUT/wandb/
        self.root.mkdir(parents=True, exist_ok=True)
        self.mode = os.environ.get("WANDB_MODE") or "offline"
        self.plan = plan

    def send(self, trial, curves: pd.DataFrame, rows: pd.DataFrame) -> None:
        import wandb

        tags = _tags(self.plan, trial, rows)
        run = wandb.init(mode=self.mode, dir=str(self.root), project=self.project,
                         name=trial.name, group=f"{self.plan.study} [{self.plan.scale}]",
                         job_type=trial.arm, config={"config": trial.config, **tags},
                         tags=[f"{k}:{tags[k]}"[:64] for k in ("arm", "method", "scale", "git_sha")],
                         reinit="create_new", save_code=False,
                         settings=wandb.Settings(silent=True, console="off", x_disable_stats=True,
                                                 disable_git=True))
        try:
            for step, at in curves.groupby("step", sort=True) if len(curves) else ():
                run.log({f"curves/{m}": float(v) for m, v in zip(at.metric, at.value)}, step=int(step))
            for key, value, _ in _finals(rows):
                run.summary[f"final/{key}"] = value
        finally:
            run.finish()

    def close(self) -> str | None:
        import wandb

        wandb.teardown()  # stops the W&B service process the runs started
        if self.mode == "offline":
            return f"W&B runs are offline in {self.root / 'wandb'}: `wandb sync " \
                   f"{self.root / 'wandb'}/offline-run-*` uploads them"
        return None


SINKS = {"tensorboard": TensorBoard, "mlflow": MLflow, "wandb": WandB}
