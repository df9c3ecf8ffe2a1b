"""Resolving a declared study into a plan (after EDM's `train.py` option checks and
big_vision's config overrides): Study + scale + `--set` overrides + claims -> `Plan`.

Every key and value is checked against each arm's typed `Config` and `Knobs` dataclasses, each
method's own `check`, the data set and the metric registry, in named steps that each fail in one
line on bad input; grids expand into trials and settings, work that resolves to the same key
merges (and is listed), and the claims resolve against the points of the plan. Nothing runs,
and nothing is written, until a plan resolves.
"""

from __future__ import annotations

import dataclasses
import itertools
import math
from typing import Any

from genbench.harness import data as datasets
from genbench.harness.verdicts.claims import Claim, as_claim
from genbench.harness.verdicts.points import resolve
from genbench.harness.config import (build_config, canonical_json, coerce, config_hash,
                                     to_dict)
from genbench.harness.errors import GenbenchError, count, unknown
from genbench.harness.method import get_method
from genbench.harness.plan.plan import Plan, Resources, SampleSetting, Trial
from genbench.harness.plan.study import TOP_KEYS, Arm, Grid, Study
from genbench.harness.plan.tasks import get_task

MAX_SEED = 2**62  # |seed| is below it: torch's seeds are 64-bit, with room for derived ones (seed + 1)


def resolve_study(study: Study, scale: str = "smoke", sets: dict[str, Any] | None = None,
                  claims: tuple[Claim | str, ...] = (), arms: tuple[str, ...] = ()) -> Plan:
    """The trials and sample settings of `study` at `scale`, with `--set` overrides `sets`, and
    its claims with `claims` (`--claim`) added, each checked against the plan; of the arms
    named in `arms` (`--arm`) only, when any."""
    return _Resolver(study, scale, sets or {}, tuple(arms)).plan(claims)


class _Resolver:
    """Study + scale + `--set` -> Plan, in named steps (each fails in one line on bad input)."""

    def __init__(self, study: Study, scale: str, sets: dict[str, Any], only: tuple[str, ...] = ()):
        study.check_declaration()
        if scale not in study.scales:
            raise GenbenchError(unknown("scale", scale, study.scales, where=f" for study {study.name!r}"))
        self.study, self.scale_name, self.sc = study, scale, study.scales[scale]
        self.sets, self.only = sets, tuple(dict.fromkeys(only))
        self.arms = study.all_arms()
        names = [a.name for a in self.arms]
        for name in self.only:
            if name not in names:
                raise GenbenchError(unknown("arm", name, names, where=f" of study {study.name!r}"))

        self.classes = {a.name: get_method(a.method) for a in self.arms}
        # each arm's starting point: the arm's own, the scale's, then --set (in _apply_sets)
        self.pretrained = {a.name: a.pretrained for a in self.arms}
        if isinstance(self.sc.pretrained, str):
            self.pretrained = dict.fromkeys(self.pretrained, self.sc.pretrained)
        elif isinstance(self.sc.pretrained, dict):
            for name, ref in self.sc.pretrained.items():
                if name not in self.pretrained:
                    raise GenbenchError(unknown("arm", name, names,
                                                where=f" in Scale.pretrained of scale {scale!r}"))
                self.pretrained[name] = ref
        self.merged: list[str] = []
        self.typed_knobs: dict[str, list] = {}

    # -- steps ----------------------------------------------------------------------------
    def plan(self, extra_claims: tuple[Claim | str, ...] = ()) -> "Plan":
        study, sc = self.study, self.sc
        arm_config = {a.name: dict(a.config) for a in self.arms}
        arm_knobs = {a.name: dict(a.sample_config) for a in self.arms}
        train_grids, sample_grids = self._grids()
        self._route(sc.config, arm_config, arm_knobs, knobs=False, what="Scale.config key")
        self._route(sc.sample_config, arm_config, arm_knobs, knobs=True, what="Scale.sample_config key")
        top = {"budget_steps": sc.budget_steps, "budget_kimg": sc.budget_kimg,
               "n_samples": sc.n_samples, "log_every": sc.log_every, "eval_every": sc.eval_every,
               "eval_samples": sc.eval_samples or sc.n_samples,
               "seeds": study.seeds if sc.seeds is None else sc.seeds, "data": sc.data or study.data,
               "resolution": study.resolution, "metrics": study.metrics,
               "trial_timeout_s": study.trial_timeout_s if sc.trial_timeout_s is None
               else sc.trial_timeout_s}
        res = sc.resources or study.resources
        set_knobs = self._apply_sets(top, arm_config, arm_knobs, train_grids, sample_grids)
        self.res_sets = {k: coerce(top.pop(k), float, name=k) for k in ("cpu", "gpu") if k in top}
        res = _check_resources(dataclasses.replace(res, **self.res_sets), "the study")
        seeds = self._check_top(top)
        top["data"] = datasets.canonical(top["data"])  # fails on unknown names
        resolution = datasets.resolution_of(top["data"], top["resolution"])
        datasets.check_available(top["data"])
        meta = datasets.info(top["data"])
        metrics = self._check_metrics(top["metrics"], meta)
        for arm in self.arms:  # image methods on image data, point methods on point data
            out = self.classes[arm.name].output
            if out != meta.kind:
                raise GenbenchError(f"method {arm.method!r} generates {out} and data set "
                                    f"{meta.name!r} holds {meta.kind}")
        task = self._check_study_fields()
        task.check(data=top["data"], resolution=resolution, n_samples=top["n_samples"],
                   mask=study.mask)
        trials, settings = [], []
        for arm in self.arms:  # (every arm resolves, so keys, names and ids are the study's;
            if self.only and arm.name not in self.only:  # --arm keeps the trials of some)
                continue
            arm_settings = self._settings(arm, arm_knobs[arm.name], sample_grids[arm.name],
                                          set_knobs[arm.name])
            settings += arm_settings
            trials += self._trials(arm, arm_config[arm.name], train_grids[arm.name], arm_settings,
                                   seeds, top, resolution, meta, metrics, res)
        if metrics and study.task == "generate":  # the real-data floor beside every number
            real_settings, real_trials = self._real_arm(seeds, top, resolution, meta)
            settings += real_settings
            trials += real_trials
        imports = tuple(study.imports) + ((study.source,) if study.source else ())
        plan = Plan(study=study.name, scale=self.scale_name, data=top["data"],
                    resolution=resolution, log_every=top["log_every"], n_samples=top["n_samples"],
                    metrics=metrics, ref_split=study.ref_split,
                    missing_assets=study.missing_assets, eval_every=top["eval_every"],
                    eval_samples=top["eval_samples"], task=study.task, mask=study.mask,
                    obs_noise=study.obs_noise, figures=study.figures, resources=res,
                    trial_timeout_s=top["trial_timeout_s"],
                    trials=tuple(trials), samples=tuple(settings), imports=imports,
                    merged=tuple(self.merged), sets=tuple(self.sets.items()), only_arms=self.only)
        own = [as_claim(c) for c in (study.claims if sc.claims is None else sc.claims)]
        extra = [as_claim(c) for c in extra_claims]
        if not own and not extra:
            return plan
        # what the plan measures, and the methods' facts (no direction: claims refuse them)
        catalog = plan.catalog(tuple(m for cls in self.classes.values()
                                     for m in (*cls.cross_metrics, *cls.facts)))
        points = list(plan.points)
        kept, left_out = [], []
        for c in own:  # a study's claim fails now, in one line, before anything runs, unless
            try:       # --set changed what it names (a pinned axis, other metrics): then it
                resolve([c], points, catalog)  # is left out of this run, and said so
                kept.append(c)
            except GenbenchError as err:
                if not self.sets and not self.only:
                    raise
                left_out.append(f"{c.text} ({str(err).removeprefix(f'claim {c.text!r}: ')})")
        resolve([*kept, *extra], points, catalog)  # --claim: always strict
        return dataclasses.replace(plan, claims=tuple(c.to_dict() for c in (*kept, *extra)),
                                   claims_left_out=tuple(left_out))

    def _grids(self) -> tuple[dict[str, list[dict]], dict[str, list[dict]]]:
        """Each arm's train and sample grid as a list of cells (a scale may replace the grids
        of a single-method study)."""
        sc = self.sc
        if len(self.arms) > 1 and (sc.train_grid is not None or sc.sample_grid is not None):
            raise GenbenchError(f"study {self.study.name!r}: a Scale's grids apply to single-method "
                                "studies; give arms their own grids")
        train = {a.name: _expand(a.train_grid if sc.train_grid is None else sc.train_grid)
                 for a in self.arms}
        sample = {a.name: _expand(a.sample_grid if sc.sample_grid is None else sc.sample_grid)
                  for a in self.arms}
        return train, sample

    def _targets(self, key: str, *, knobs: bool | None) -> list[tuple[str, str, str]]:
        """(arm, "config" | "knobs", field) that a config/knob key changes: `ARM.KEY` one arm,
        `config.KEY` / `sample.KEY` every arm with such a field, a plain KEY every arm that has
        it as a config field or a knob (ambiguous within one arm: say which)."""
        arm_names = [a.name for a in self.arms]
        head, _, rest = key.partition(".")
        arms = self.arms
        if rest and head in arm_names:
            arms, key = [a for a in self.arms if a.name == head], rest
        kind = None if knobs is None else ("knobs" if knobs else "config")
        if key.startswith("config."):
            kind, key = "config", key.removeprefix("config.")
        elif key.startswith("sample."):
            kind, key = "knobs", key.removeprefix("sample.")
        out = []
        for arm in arms:
            cls = self.classes[arm.name]
            hits = [k for k, dc in (("config", cls.Config), ("knobs", cls.Knobs))
                    if (kind is None or k == kind) and key in _field_names(dc)]
            if len(hits) > 1:
                prefix = f"{arm.name}." if len(self.arms) > 1 else ""
                raise GenbenchError(f"ambiguous key {key!r}: write {prefix}config.{key} or "
                                    f"{prefix}sample.{key}")
            out += [(arm.name, hits[0], key)] if hits else []
        return out

    def _route(self, values: dict[str, Any], arm_config, arm_knobs, *, knobs: bool,
               what: str) -> None:
        """Apply a scale's config or knob overrides to the arms they name."""
        for key, value in values.items():
            targets = self._targets(key, knobs=knobs)
            if not targets:
                if key in TOP_KEYS:
                    raise GenbenchError(f"{key!r} is not a {what} but a field of Scale: "
                                        f"Scale({key}=...)")
                raise GenbenchError(self._unknown(key, what, top=False))
            for arm, kind, name in targets:
                (arm_config if kind == "config" else arm_knobs)[arm][name] = value

    def _apply_sets(self, top, arm_config, arm_knobs, train_grids, sample_grids):
        """`--set` overrides: top-level keys, or config fields and knobs of the arms that have
        them. A grid axis set on the command line is pinned to that value."""
        set_knobs: dict[str, set[str]] = {a.name: set() for a in self.arms}
        for key, value in self.sets.items():
            head, dot, rest = key.partition(".")
            if key == "pretrained" or (dot and rest == "pretrained"):
                if dot and head not in {a.name for a in self.arms}:
                    raise GenbenchError(unknown("arm", head, [a.name for a in self.arms],
                                                where=f" in --set {key}"))
                for arm in self.arms:
                    if not dot or arm.name == head:
                        self.pretrained[arm.name] = coerce(value, str, name=key)
                continue
            if key in TOP_KEYS:
                if self._targets(key, knobs=None):
                    raise GenbenchError(f"ambiguous key {key!r}: it is a study setting and a "
                                        f"method field; write config.{key} or sample.{key}")
                top[key] = value
                if key == "budget_steps":
                    top["budget_kimg"] = 0.0
                elif key == "budget_kimg":
                    top["budget_steps"] = 0
                continue
            targets = self._targets(key, knobs=None)
            if not targets:
                raise GenbenchError(self._unknown(key, "key"))
            for arm, kind, name in targets:
                grids = sample_grids if kind == "knobs" else train_grids
                (arm_knobs if kind == "knobs" else arm_config)[arm][name] = value
                grids[arm] = [{**c, name: value} if name in c else c for c in grids[arm]]
                if kind == "knobs":
                    set_knobs[arm].add(name)
        return set_knobs

    def _unknown(self, key: str, what: str, top: bool = True) -> str:
        """Unknown `key`: the valid ones, the study settings (`TOP_KEYS`) where `top`."""
        names = {a.name: (_field_names(self.classes[a.name].Config),
                          _field_names(self.classes[a.name].Knobs)) for a in self.arms}
        fields = "; ".join(f"{arm}: config {', '.join(c)}, knobs {', '.join(k)}"
                           for arm, (c, k) in names.items())
        every = [*(TOP_KEYS if top else ()), *(n for c, k in names.values() for n in (*c, *k))]
        return unknown(what, key, every, (f"{', '.join(TOP_KEYS)}; " if top else "") + fields)

    def _check_top(self, top: dict[str, Any]) -> tuple[int, ...]:
        for name, low in (("n_samples", 1), ("log_every", 1), ("eval_every", 0), ("eval_samples", 1),
                          ("budget_steps", 0)):
            if not isinstance(top[name], int) or isinstance(top[name], bool) or top[name] < low:
                raise GenbenchError(f"invalid value {top[name]!r} for {name}; "
                                    f"expected an integer >= {low}")
        top["budget_kimg"] = coerce(top["budget_kimg"], float, name="budget_kimg")
        top["trial_timeout_s"] = coerce(top["trial_timeout_s"], float, name="trial_timeout_s")
        if not math.isfinite(top["trial_timeout_s"]) or top["trial_timeout_s"] < 0:
            raise GenbenchError(f"invalid value {top['trial_timeout_s']!r} for trial_timeout_s; "
                                "expected seconds >= 0 (0: no timeout)")
        if not math.isfinite(top["budget_kimg"]):
            raise GenbenchError(f"invalid value {top['budget_kimg']!r} for budget_kimg; "
                                "expected a finite number")
        trained = [a for a in self.arms if not self.pretrained[a.name]
                   and (not self.only or a.name in self.only)]
        if (top["budget_steps"] > 0) == (top["budget_kimg"] > 0) and (
                trained or top["budget_steps"] > 0):
            raise GenbenchError(f"study {self.study.name!r} scale {self.scale_name!r}: give exactly "
                                "one of budget_steps and budget_kimg (> 0)"
                                + (" for its arms that train" if len(trained) < len(self.arms) else ""))
        if top["eval_every"] % top["log_every"]:
            raise GenbenchError(f"eval_every ({top['eval_every']}) must be a multiple of "
                                f"log_every ({top['log_every']})")
        top["data"] = coerce(top["data"], str, name="data")
        seeds = top["seeds"]
        seeds = (seeds,) if isinstance(seeds, int) else tuple(seeds) if isinstance(
            seeds, (list, tuple)) else ()
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool)
                                and abs(s) < MAX_SEED for s in seeds):
            raise GenbenchError(f"invalid value {top['seeds']!r} for seeds; expected integers "
                                "of magnitude below 2**62")
        if len(set(seeds)) < len(seeds):
            self.merged.append(f"seeds {list(seeds)} repeat a seed: each seed runs once")
        return tuple(dict.fromkeys(seeds))

    def _check_metrics(self, metrics: Any, meta: datasets.DatasetInfo) -> tuple[str, ...]:
        """The quality metrics, known and fitting the data: metrics that need labels are
        refused on an unlabelled data set, naming the ones that apply."""
        from genbench.harness.metrics import QUALITY_METRICS, check_metric_names

        if isinstance(metrics, str):
            metrics = (metrics,)
        metrics = tuple(coerce(metrics, tuple[str, ...], name="metrics"))
        check_metric_names(metrics)
        wrong = [m for m in metrics if (QUALITY_METRICS.get(m).space == "exact") != (meta.kind == "points")]
        if wrong:
            fits = [n for n, m in QUALITY_METRICS.items()
                    if (m.space == "exact") == (meta.kind == "points")]
            raise GenbenchError(f"{', '.join(wrong)} cannot measure {meta.kind} ({meta.name}); "
                                f"metrics that apply: {', '.join(fits)}")
        if not meta.num_classes:
            need = [m for m in metrics if QUALITY_METRICS.get(m).needs_labels]
            if need:
                fits = [n for n, m in QUALITY_METRICS.items() if not m.needs_labels
                        and (m.space == "exact") == (meta.kind == "points")]
                raise GenbenchError(f"{', '.join(need)} need a labelled data set and {meta.name} "
                                    f"has no labels; metrics that apply: {', '.join(fits)} "
                                    "(--set metrics=[...])")
        return tuple(dict.fromkeys(metrics))

    def _check_study_fields(self):
        study = self.study  # its field types are checked first thing (`check_fields`)
        if study.ref_split not in datasets.SPLITS:
            raise GenbenchError(unknown("ref_split", study.ref_split, datasets.SPLITS))
        return get_task(study.task)

    def _settings(self, arm: Arm, knob_base: dict[str, Any], grid: list[dict[str, Any]],
                  set_knobs: set[str]) -> list["SampleSetting"]:
        """The arm's sample settings; settings with equal knobs merge, and a knob the chosen
        sampler ignores cannot be an axis or a --set."""
        cls = self.classes[arm.name]
        settings: list[SampleSetting] = []
        self.typed_knobs[arm.name] = []  # each setting's Knobs, for the method's plan-time check
        ignored_everywhere, pinned = set(set_knobs), 0
        for cell in grid:
            _check_axes(cell, _field_names(cls.Knobs), "sample grid axis", arm.method)
            knobs = build_config(cls.Knobs, {**knob_base, **cell},
                                 what=f"sampling knob of {arm.method}")
            ignored = cls.ignored_knobs(knobs)
            for axis in cell:
                if axis in ignored:
                    raise GenbenchError(f"sample grid axis {axis!r} of arm {arm.name!r} is ignored "
                                        f"by {ignored[axis][0]}; it is used by {ignored[axis][1]}")
            ignored_everywhere &= set(ignored)
            same = [s for s in settings if s.knobs == to_dict(knobs)]
            if same and same[0].cell == cell:  # the grid's axis is pinned by --set: said once
                pinned += 1
                continue
            if same:
                self.merged.append(f"{arm.name}: sample setting {cell} is the same as "
                                   f"{same[0].cell}: merged")
                continue
            settings.append(SampleSetting(key=_label(arm.name if len(self.arms) > 1 else "", cell),
                                          arm=arm.name, cell=cell, knobs=to_dict(knobs)))
            self.typed_knobs[arm.name].append(knobs)
        if pinned:
            axes = sorted({k for c in grid for k in c} & set_knobs)
            self.merged.append(f"{arm.name}: --set {', '.join(axes)} pins the sample grid: its "
                               f"{count(len(grid), 'setting')} are {count(len(settings), 'setting')}")
        if ignored_everywhere:
            name = sorted(ignored_everywhere)[0]
            knobs = build_config(cls.Knobs, {**knob_base, **grid[0]}, what="knob")
            by, users = cls.ignored_knobs(knobs)[name]
            raise GenbenchError(f"--set {name}: ignored by {by} in every sample setting of "
                                f"{arm.name!r}; it is used by {users}")
        return settings

    def _trials(self, arm: Arm, config_base: dict[str, Any], grid: list[dict[str, Any]],
                settings: list["SampleSetting"], seeds: tuple[int, ...], top: dict[str, Any],
                resolution: int, meta: datasets.DatasetInfo, metrics: tuple[str, ...],
                default: Resources) -> list["Trial"]:
        """The arm's fits: one per train cell and seed; cells with equal configs merge."""
        cls = self.classes[arm.name]
        shape = ((meta.channels,) if meta.kind == "points"
                 else (meta.channels, resolution, resolution))  # one example, as fit() sees it
        if self.study.figures:
            _check_figures(cls)
        trials: list[Trial] = []
        first: dict[str, dict[str, Any]] = {}  # config hash -> the cell that gave it first
        if self.pretrained[arm.name]:  # the values asked for are valid ones, whatever they meet
            build_config(cls.Config, config_base, what=f"config field of {arm.method}")
        start = self._starting_point(arm, config_base, grid)
        for cell in grid:
            _check_axes(cell, _field_names(cls.Config), "train grid axis", arm.method)
            config = build_config(cls.Config, start.config if start else {**config_base, **cell},
                                  what=f"config field of {arm.method}")
            cls.check_shape(config, shape)  # what cannot run fails now, not after training
            for knobs in self.typed_knobs[arm.name]:
                cls.check(config, knobs, task=self.study.task, num_classes=meta.num_classes)
            cfg = to_dict(config)
            steps = 0 if start else _budget_steps(top, cls.images_per_step(config), arm)
            # what changes a fit's rows, curves and checkpoint: its identity and the ledger key
            spec = {"study": self.study.name, "scale": self.scale_name, "arm": arm.name,
                    "method": arm.method, "data": top["data"], "resolution": resolution,
                    "budget_steps": steps, "log_every": top["log_every"], "config": cfg}
            if start:  # the checkpoint's content: another file is another fit
                spec["pretrained"] = start.key()
            if top["eval_every"]:  # quality along training: the arm's first setting, the metrics
                spec.update(eval_every=top["eval_every"], eval_samples=top["eval_samples"],
                            eval_metrics=list(metrics), eval_knobs=settings[0].knobs)
            chash = config_hash(spec)
            if chash in first:
                self.merged.append(f"{arm.name}: train cell {cell} gives the same config as "
                                   f"{first[chash]}: merged")
                continue
            first[chash] = cell
            res = self._resources(arm, cfg, default)
            for seed in seeds:
                trials.append(Trial(trial_id=f"{chash[:8]}-s{seed}", arm=arm.name,
                                    method=arm.method, cell=cell, config=cfg, config_hash=chash,
                                    seed=seed, budget_steps=steps, resources=res,
                                    pretrained=start.key() if start else None))
        return trials

    def _real_arm(self, seeds: tuple[int, ...], top: dict[str, Any], resolution: int,
                  meta: datasets.DatasetInfo) -> tuple[list["SampleSetting"], list["Trial"]]:
        """The reserved arm `real` (`genbench.harness.metrics.realdata`): at each seed, as many held-out
        real examples as each setting samples, measured by the same metrics; no training."""
        from genbench.harness.store.results import REAL_ARM

        method = REAL_ARM if meta.kind == "images" else "real_points"
        split = "train" if self.study.ref_split == "test" else "test"
        cfg = {"split": split}
        spec = {"study": self.study.name, "scale": self.scale_name, "arm": REAL_ARM,
                "method": method, "data": top["data"], "resolution": resolution, "config": cfg}
        chash = config_hash(spec)
        setting = SampleSetting(key="held-out", arm=REAL_ARM, cell={}, knobs={})
        trials = [Trial(trial_id=f"{chash[:8]}-s{seed}", arm=REAL_ARM, method=method, cell={},
                        config=cfg, config_hash=chash, seed=seed, budget_steps=1,  # (a load)
                        resources=Resources(cpu=1, gpu=0)) for seed in seeds]
        return [setting], trials

    def _starting_point(self, arm: Arm, config_base: dict[str, Any],
                        grid: list[dict[str, Any]]):
        """The arm's pretrained starting point (`genbench.harness.store.zoo`), checked: a model of
        the arm's method, no train grid, no config that differs from the checkpoint's (its
        config is the one it was trained with); None where the arm trains."""
        ref = self.pretrained[arm.name]
        if not ref:
            return None
        from genbench.harness.store import zoo

        start = zoo.resolve(ref)
        where = f"arm {arm.name!r} starts from {ref!r}"
        if start.method is not None and start.method != arm.method:
            raise GenbenchError(f"{where}, a {start.method} model; the arm's method is {arm.method}")
        if grid != [{}]:
            raise GenbenchError(f"{where}: a train grid ({grid[0]}, ...) needs training; sample "
                                f"axes only, or --set {arm.name}.pretrained= to train")
        differs = {k: v for k, v in config_base.items() if start.config.get(k, v) != v
                   and not (isinstance(v, (list, tuple)) and list(v) == list(start.config.get(k, v)))}
        if differs:
            k = next(iter(differs))
            raise GenbenchError(f"{where}, trained with {k}={start.config.get(k)!r}; the arm asks "
                                f"{k}={differs[k]!r} (a pretrained arm's config is its checkpoint's; "
                                f"--set {arm.name}.pretrained= trains instead)")
        return start

    def _resources(self, arm: Arm, cfg: dict[str, Any], default: Resources) -> Resources:
        """A cell's resources: the arm's (fixed, or from its config), else the study's or the
        scale's; `--set cpu=/gpu=` (and `--gpus-per-trial`) override every trial."""
        if self.sc.resources is not None or arm.resources is None:
            return default  # a scale's resources are the whole study's at that scale
        res = arm.resources(dict(cfg)) if callable(arm.resources) else arm.resources
        if not isinstance(res, Resources):
            raise GenbenchError(f"arm {arm.name!r}: resources must be a Resources (or a function "
                                f"of the config returning one), got {res!r}")
        return _check_resources(dataclasses.replace(res, **self.res_sets), f"arm {arm.name!r}")


def _check_resources(res: Resources, who: str) -> Resources:
    """Resources Ray can schedule: cpu > 0 (or 0 with a GPU), gpu >= 0, a GPU fraction above 1
    only in whole GPUs (Ray's rule)."""
    cpu, gpu = coerce(res.cpu, float, name="cpu"), coerce(res.gpu, float, name="gpu")
    if cpu < 0 or gpu < 0 or (cpu == 0 and gpu == 0) or not (math.isfinite(cpu) and math.isfinite(gpu)):
        raise GenbenchError(f"{who}: invalid resources per trial ({res}); expected cpu >= 0 and "
                            "gpu >= 0, not both 0")
    if gpu > 1 and gpu != int(gpu):
        raise GenbenchError(f"{who}: gpu={gpu:g} per trial: above 1, Ray takes whole GPUs only")
    return Resources(cpu, gpu)


def _budget_steps(top: dict[str, Any], per_step: int | None, arm: Arm) -> int:
    """Optimiser steps of a fit: budget_steps, or budget_kimg thousand images over the images
    one step sees (the method's `images_per_step`)."""
    if top["budget_steps"]:
        return top["budget_steps"]
    if not per_step:
        raise GenbenchError(f"budget_kimg needs a method that trains on minibatches; arm "
                            f"{arm.name!r} (method {arm.method}) declares no images_per_step: "
                            "give it budget_steps")
    return max(1, math.ceil(top["budget_kimg"] * 1000 / per_step))


def _field_names(dc: type) -> list[str]:
    return [f.name for f in dataclasses.fields(dc)]


def _expand(grid: Grid) -> list[dict[str, Any]]:
    """A dict of axes -> the cartesian product in declaration order; a list -> as given.
    Identical cells are kept once."""
    if isinstance(grid, dict):
        for axis, values in grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise GenbenchError(f"grid axis {axis!r} must be a non-empty list, got {values!r}")
        cells = [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    else:
        cells = [dict(c) for c in grid] or [{}]
    return list({canonical_json(c): c for c in cells}.values())


def _check_figures(cls: type) -> None:
    """`figures(data, *, seed, **knobs)` takes the trial's sampling knobs: a method whose
    figures() does not (written before it did) fails here, not after its fit."""
    import inspect

    params = inspect.signature(cls.figures).parameters.values()
    if not any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params):
        raise GenbenchError(f"method {cls.name!r}: figures() must take the sampling knobs, "
                            "as in figures(self, data, *, seed, **knobs)")


def _check_axes(cell: dict[str, Any], valid: list[str], what: str, method: str) -> None:
    for k in cell:
        if k not in valid:
            raise GenbenchError(unknown(what, k, valid, where=f" for {method}"))


def _label(arm: str, cell: dict[str, Any]) -> str:
    """A file-name-safe label of a sample setting, prefixed by its arm in arms studies."""
    text = "_".join(f"{k}-{v}" for k, v in cell.items()) or "default"
    text = f"{arm}_{text}" if arm else text
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)
