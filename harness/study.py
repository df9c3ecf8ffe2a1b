"""Declared ablation studies (after big_vision's `configs/*.py` with `runlocal` and Ray Tune
examples' `--smoke-test`).

A study file defines `STUDY = Study(...)`: a data set, explicit seeds, quality metrics, per-trial
resources, named scales (`smoke` runs on a 2-core CPU in minutes, `full` is the paper-sized run
for GPUs), and one or more arms. An arm is a method with its own base config, train grid (each
cell is one fit) and sample grid (each setting re-samples the same fitted model). A study with
one method declares it directly (`method=`, `config=`, grids); a study that compares families
lists `arms=(Arm(...), ...)`, which share the data, seeds, metrics and budget (in optimiser
steps, or in images seen with `budget_kimg` as StyleGAN and EDM count it).

`Study.resolve(scale, sets)` checks every key and value against each arm's `Config` and
`Knobs` dataclasses and returns a `Plan`: the exact trials (arm x cell x seed) and sample
settings that will run. Nothing runs, and nothing is written, until a plan resolves.
"""

from __future__ import annotations

import dataclasses
import importlib
import itertools
import json
import math
import pkgutil
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness import data as datasets
from harness.claims import Catalog, Claim, as_claim, plan_points, resolve
from harness.config import (build_config, canonical_json, check_fields, coerce, config_hash,
                             parse_value, to_dict)
from harness.errors import GenbenchError, first_line
from harness.method import get_method
from harness.registry import exec_file, import_code
from harness.tasks import get_task

Grid = dict[str, list[Any]] | list[dict[str, Any]]
TOP_KEYS = ("budget_steps", "budget_kimg", "n_samples", "log_every", "eval_every", "eval_samples",
            "seeds", "data", "resolution", "metrics", "cpu", "gpu", "trial_timeout_s")
MAX_SEED = 2**62  # |seed| is below it: torch's seeds are 64-bit, with room for derived ones (seed + 1)


@dataclass(frozen=True)
class Resources:
    """What one trial asks Ray for; a GPU fraction shares a GPU but does not cap its memory."""

    cpu: float = 1.0  # CPU cores per trial
    gpu: float = 0.0  # GPUs per trial (0.25 packs four trials on one GPU); ignored without GPUs

    def __str__(self) -> str:
        return f"{self.cpu:g} CPU, {self.gpu:g} GPU"


# an arm's resources: fixed, or chosen per train cell from its full config (a wider net, more GPU)
ArmResources = typing.Union[Resources, typing.Callable[[dict[str, Any]], Resources], None]


@dataclass(frozen=True)
class Scale:
    """How big a study runs: budget, sample count, and overrides of the study's declaration."""

    n_samples: int  # samples drawn per sample setting (and measured)
    budget_steps: int = 0  # optimiser steps per fit, or
    budget_kimg: float = 0.0  # thousands of training images per fit (steps = kimg*1000/batch_size)
    config: dict[str, Any] = field(default_factory=dict)  # config overrides (KEY or ARM.KEY)
    seeds: tuple[int, ...] | None = None  # None = the study's seeds
    train_grid: Grid | None = None  # None = the study's train grid (single-method studies)
    sample_grid: Grid | None = None  # None = the study's sample grid (single-method studies)
    sample_config: dict[str, Any] = field(default_factory=dict)  # knob overrides (KEY or ARM.KEY)
    log_every: int = 50  # loss curve resolution in steps
    eval_every: int = 0  # quality metrics along training every this many steps; 0 = off
    eval_samples: int = 0  # samples per evaluation along training; 0 = n_samples
    resources: Resources | None = None  # None = the study's resources
    data: str = ""  # "" = the study's data set (e.g. the embedded digits at smoke scale)
    # None = the study's claims; a scale whose grid values differ restates them in its own
    claims: tuple[Claim | str, ...] | None = None
    trial_timeout_s: float | None = None  # None = the study's


@dataclass(frozen=True)
class Arm:
    """One method of a study, with its own config and grids; the study's data, seeds, metrics,
    scales and budget are shared by every arm."""

    name: str  # the arm's name in rows (`arm`), `--set NAME.KEY=...` and reports
    method: str  # registered method name
    config: dict[str, Any] = field(default_factory=dict)  # base method config
    train_grid: Grid = field(default_factory=dict)  # axes over Config fields: one fit per cell
    sample_grid: Grid = field(default_factory=dict)  # axes over Knobs: re-sample, no retrain
    sample_config: dict[str, Any] = field(default_factory=dict)  # base sampling knobs
    # None = the study's (or scale's) resources; a callable gets each cell's full config
    resources: ArmResources = None


@dataclass(frozen=True)
class Study:
    name: str  # the file name under studies/
    data: str  # data set name (see `genbench list`)
    scales: dict[str, Scale]  # at least "smoke" and "full"
    method: str = ""  # a single-method study's method (or give `arms`)
    config: dict[str, Any] = field(default_factory=dict)  # its base config
    train_grid: Grid = field(default_factory=dict)  # its axes over Config fields: one fit per cell
    sample_grid: Grid = field(default_factory=dict)  # its axes over Knobs: re-sample, no retrain
    sample_config: dict[str, Any] = field(default_factory=dict)  # its base sampling knobs
    arms: tuple[Arm, ...] = ()  # several methods side by side (instead of method/config/grids)
    seeds: tuple[int, ...] = (0,)  # training seeds, one trial per cell and seed
    metrics: tuple[str, ...] = ()  # quality metrics (cost metrics are always recorded)
    imports: tuple[str, ...] = ()  # modules to import in every worker (methods not installed)
    ref_split: str = "train"  # reference split of the data set for quality metrics
    missing_assets: Literal["error", "skip"] = "error"  # absent Inception weights: fail or skip
    task: str = "generate"  # see harness.tasks: generate | inpaint (restore masked test images)
    mask: str = "center"  # inpaint: see harness.tasks
    obs_noise: float = 0.0  # inpaint: std of the measurement noise n in y = A(x) + n
    figures: bool = False  # save the method's figures (e.g. forward/backward process)
    trial_timeout_s: float = 0.0  # stop a trial that runs longer (a `timeout` failure); 0 = never
    resources: Resources = Resources()  # per trial, unless an arm or the scale says otherwise
    resolution: int | None = None  # None = the data set's native resolution
    description: str = ""  # one line for `genbench list`
    # the results of its paper or problem set the study tests (harness.claims): Claim(...)s or
    # their one-line texts, "fid_domain: steps=50 better than steps=10"
    claims: tuple[Claim | str, ...] = ()
    source: str = ""  # how workers import this study: "studies.NAME" or "path:/abs/file.py"

    def check_declaration(self) -> None:
        """Every field of the study, its arms and scales has its declared type (arms are
        `Arm`s, scales `Scale`s, grids dicts of lists, ...), and there is a scale; else one
        line naming the field. Before anything else reads the study."""
        check_fields(self, "Study")
        _check_name(self.name, "study name", "it names the folder results/<study>/<scale>")
        for i, arm in enumerate(self.arms):
            check_fields(arm, f"Study.arms[{i}]")
            _check_name(arm.name, "arm name", "it names rows, --set ARM.KEY and files")
        for name, sc in self.scales.items():
            check_fields(sc, f"Study.scales[{name!r}]")
            _check_name(name, "scale name", "it names the folder results/<study>/<scale>")
        if not self.scales:
            raise GenbenchError(f"study {self.name!r} declares no scales; give it "
                                "scales={'smoke': Scale(...), ...}")

    def all_arms(self) -> tuple[Arm, ...]:
        """The arms of the study; a single-method study is one arm named after its method."""
        if self.arms and (self.method or self.config or self.train_grid or self.sample_grid):
            raise GenbenchError(f"study {self.name!r} gives both arms and method/config/grids; "
                                "put those inside the arms")
        if self.arms:
            names = [a.name for a in self.arms]
            if len(set(names)) < len(names):
                raise GenbenchError(f"study {self.name!r} repeats an arm name: {names}")
            return self.arms
        if not self.method:
            raise GenbenchError(f"study {self.name!r} declares neither method nor arms")
        return (Arm(self.method, self.method, self.config, self.train_grid, self.sample_grid,
                    self.sample_config),)

    def resolve(self, scale: str = "smoke", sets: dict[str, Any] | None = None,
                claims: tuple[Claim | str, ...] = ()) -> "Plan":
        """The trials and sample settings of this study at `scale`, with `--set` overrides, and
        its claims with `claims` (`--claim`) added, each checked against the plan."""
        return _Resolver(self, scale, sets or {}).plan(claims)


class _Resolver:
    """Study + scale + `--set` -> Plan, in named steps (each fails in one line on bad input)."""

    def __init__(self, study: Study, scale: str, sets: dict[str, Any]):
        study.check_declaration()
        if scale not in study.scales:
            raise GenbenchError(f"unknown scale {scale!r} for study {study.name!r}; "
                                f"valid: {', '.join(study.scales)}")
        self.study, self.scale_name, self.sc = study, scale, study.scales[scale]
        self.sets = sets
        self.arms = study.all_arms()
        self.classes = {a.name: get_method(a.method) for a in self.arms}
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
        for arm in self.arms:
            arm_settings = self._settings(arm, arm_knobs[arm.name], sample_grids[arm.name],
                                          set_knobs[arm.name])
            settings += arm_settings
            trials += self._trials(arm, arm_config[arm.name], train_grids[arm.name], arm_settings,
                                   seeds, top, resolution, meta, metrics, res)
        imports = tuple(study.imports) + ((study.source,) if study.source else ())
        plan = Plan(study=study.name, scale=self.scale_name, data=top["data"],
                    resolution=resolution, log_every=top["log_every"], n_samples=top["n_samples"],
                    metrics=metrics, ref_split=study.ref_split,
                    missing_assets=study.missing_assets, eval_every=top["eval_every"],
                    eval_samples=top["eval_samples"], task=study.task, mask=study.mask,
                    obs_noise=study.obs_noise, figures=study.figures, resources=res,
                    trial_timeout_s=top["trial_timeout_s"],
                    trials=tuple(trials), samples=tuple(settings), imports=imports,
                    merged=tuple(self.merged))
        own = [as_claim(c) for c in (study.claims if sc.claims is None else sc.claims)]
        extra = [as_claim(c) for c in extra_claims]
        if not own and not extra:
            return plan
        points, catalog = plan_points(dataclasses.asdict(plan)), self._catalog(plan)
        kept, left_out = [], []
        for c in own:  # a study's claim fails now, in one line, before anything runs, unless
            try:       # --set changed what it names (a pinned axis, other metrics): then it
                resolve([c], points, catalog)  # is left out of this run, and said so
                kept.append(c)
            except GenbenchError as err:
                if not self.sets:
                    raise
                left_out.append(f"{c.text} ({str(err).removeprefix(f'claim {c.text!r}: ')})")
        resolve([*kept, *extra], points, catalog)  # --claim: always strict
        return dataclasses.replace(plan, claims=tuple(c.to_dict() for c in (*kept, *extra)),
                                   claims_left_out=tuple(left_out))

    def _catalog(self, plan: "Plan") -> Catalog:
        """The metrics the plan measures, per sample setting or per fit, with their directions;
        the names genbench knows; the methods' facts, which have no direction."""
        from harness.metrics import COST_METRICS, SETTING_COST_METRICS, higher_is_better, metric_names
        from harness.results import STATUS_METRICS

        measured = {m: ("setting", higher_is_better(m)) for m in plan.measured()}
        measured.update({m: ("fit", higher_is_better(m)) for m in COST_METRICS
                         if m not in SETTING_COST_METRICS and m not in STATUS_METRICS})
        facts = tuple(m for cls in self.classes.values() for m in (*cls.cross_metrics, *cls.facts))
        return Catalog(measured, known=tuple(metric_names()), facts=facts)

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
        fields = "; ".join(f"{a.name}: config {', '.join(_field_names(self.classes[a.name].Config))}"
                           f", knobs {', '.join(_field_names(self.classes[a.name].Knobs))}"
                           for a in self.arms)
        return f"unknown {what} {key!r}; valid: " + (f"{', '.join(TOP_KEYS)}; " if top else "") + fields

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
        if (top["budget_steps"] > 0) == (top["budget_kimg"] > 0):
            raise GenbenchError(f"study {self.study.name!r} scale {self.scale_name!r}: give exactly "
                                "one of budget_steps and budget_kimg (> 0)")
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
        from harness.metrics import QUALITY_METRICS, check_metric_names

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
            raise GenbenchError(f"unknown ref_split {study.ref_split!r}; "
                                f"valid: {', '.join(datasets.SPLITS)}")
        return get_task(study.task)

    def _settings(self, arm: Arm, knob_base: dict[str, Any], grid: list[dict[str, Any]],
                  set_knobs: set[str]) -> list["SampleSetting"]:
        """The arm's sample settings; settings with equal knobs merge, and a knob the chosen
        sampler ignores cannot be an axis or a --set."""
        cls = self.classes[arm.name]
        settings: list[SampleSetting] = []
        self.typed_knobs[arm.name] = []  # each setting's Knobs, for the method's plan-time check
        ignored_everywhere = set(set_knobs)
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
            if same:
                self.merged.append(f"{arm.name}: sample setting {cell} is the same as "
                                   f"{same[0].cell}: merged")
                continue
            settings.append(SampleSetting(key=_label(arm.name if len(self.arms) > 1 else "", cell),
                                          arm=arm.name, cell=cell, knobs=to_dict(knobs)))
            self.typed_knobs[arm.name].append(knobs)
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
        for cell in grid:
            _check_axes(cell, _field_names(cls.Config), "train grid axis", arm.method)
            config = build_config(cls.Config, {**config_base, **cell},
                                  what=f"config field of {arm.method}")
            cls.check_shape(config, shape)  # what cannot run fails now, not after training
            for knobs in self.typed_knobs[arm.name]:
                cls.check(config, knobs, task=self.study.task, num_classes=meta.num_classes)
            cfg = to_dict(config)
            steps = _budget_steps(top, cfg, arm)
            # what changes a fit's rows, curves and checkpoint: its identity and the ledger key
            spec = {"study": self.study.name, "scale": self.scale_name, "arm": arm.name,
                    "method": arm.method, "data": top["data"], "resolution": resolution,
                    "budget_steps": steps, "log_every": top["log_every"], "config": cfg}
            if top["eval_every"]:  # quality along training: the arm's first setting, the metrics
                spec.update(eval_every=top["eval_every"], eval_samples=top["eval_samples"],
                            eval_metrics=list(metrics), eval_knobs=settings[0].knobs)
            chash = config_hash(spec)
            same = [t for t in trials if t.config_hash == chash]
            if same:
                self.merged.append(f"{arm.name}: train cell {cell} gives the same config as "
                                   f"{same[0].cell}: merged")
                continue
            res = self._resources(arm, cfg, default)
            for seed in seeds:
                trials.append(Trial(trial_id=f"{chash[:8]}-s{seed}", arm=arm.name,
                                    method=arm.method, cell=cell, config=cfg, config_hash=chash,
                                    seed=seed, budget_steps=steps, resources=res))
        return trials

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


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def _check_name(name: str, what: str, why: str) -> None:
    """A name that becomes part of a path: letters, digits, `_`, `.`, `-`, no `..`; else one
    line saying so before anything reads the study."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise GenbenchError(f"{what} {name!r} is not a plain name: use letters, digits, '_', '.' "
                            f"and '-', not starting with '.' or '-' ({why})")


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


def _budget_steps(top: dict[str, Any], cfg: dict[str, Any], arm: Arm) -> int:
    """Optimiser steps of a fit: budget_steps, or budget_kimg thousand images / batch_size."""
    if top["budget_steps"]:
        return top["budget_steps"]
    if "batch_size" not in cfg:
        raise GenbenchError(f"budget_kimg needs a batch_size config field; arm {arm.name!r} "
                            f"(method {arm.method}) has none: give it budget_steps")
    return max(1, math.ceil(top["budget_kimg"] * 1000 / cfg["batch_size"]))


@dataclass(frozen=True)
class Trial:
    """One fit: an arm's train-grid cell at one seed."""

    trial_id: str  # "<config hash>-s<seed>": the ledger's key of this fit
    arm: str  # the study arm it belongs to
    method: str  # registered method name
    cell: dict[str, Any]  # the train-grid values of this cell
    config: dict[str, Any]  # the full method config
    config_hash: str  # hash of study, scale, arm, method, data, resolution, config and budget
    seed: int
    budget_steps: int  # optimiser steps (from budget_steps, or budget_kimg and batch_size)
    resources: Resources = Resources()  # what Ray reserves for it (see Arm.resources)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trial":
        """The inverse of `dataclasses.asdict` (plans in JSON, Tune configs)."""
        return cls(**{**d, "resources": Resources(**d.get("resources", {}))})


@dataclass(frozen=True)
class SampleSetting:
    """One sampling of an arm's fitted models: a sample-grid cell."""

    key: str  # file-name-safe label, e.g. "steps-50" ("default" for an empty grid)
    arm: str  # the arm whose fits it samples
    cell: dict[str, Any]  # the sample-grid values of this setting
    knobs: dict[str, Any]  # the full knobs


@dataclass(frozen=True)
class Plan:
    """A resolved study: everything a trial needs, serialisable to JSON (study.json)."""

    study: str
    scale: str
    data: str
    resolution: int  # side length the data is loaded (and metrics are computed) at
    log_every: int
    n_samples: int
    metrics: tuple[str, ...]
    ref_split: str
    missing_assets: str
    eval_every: int
    eval_samples: int
    task: str
    mask: str
    obs_noise: float
    figures: bool
    resources: Resources
    trials: tuple[Trial, ...]
    samples: tuple[SampleSetting, ...]
    imports: tuple[str, ...] = ()  # what every worker imports before looking methods up
    merged: tuple[str, ...] = ()  # cells, settings and seeds that resolved to the same work
    claims: tuple[dict[str, Any], ...] = ()  # the claims it tests (`Claim.to_dict()`), checked
    claims_left_out: tuple[str, ...] = ()  # the study's claims --set made inapplicable, and why
    trial_timeout_s: float = 0.0  # a trial that runs longer stops with a `timeout` failure

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=list)

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        d = json.loads(text)
        d["resources"] = Resources(**d["resources"])
        d["trials"] = tuple(Trial.from_dict(t) for t in d["trials"])
        d["samples"] = tuple(SampleSetting(**s) for s in d["samples"])
        for name in ("metrics", "imports", "merged", "claims", "claims_left_out"):
            d[name] = tuple(d.get(name, ()))
        return cls(**d)

    def with_seeds(self, cells: set[tuple[str, str]], seeds: tuple[int, ...]) -> "Plan":
        """This plan with `seeds` added to the train cells `cells` ((arm, canonical JSON of the
        cell)): the trials of the seeds each cell lacks, after its own (`--until-decided`)."""
        trials = list(self.trials)
        have = {(t.arm, canonical_json(t.cell), t.seed) for t in trials}
        for t in self.cells().values():
            key = (t.arm, canonical_json(t.cell))
            if key not in cells:
                continue
            for seed in seeds:
                if (*key, seed) not in have:
                    trials.append(dataclasses.replace(t, seed=seed,
                                                      trial_id=f"{t.config_hash[:8]}-s{seed}"))
                    have.add((*key, seed))
        return dataclasses.replace(self, trials=tuple(trials))

    @property
    def plan_id(self) -> str:
        """Hash of the whole plan: rows name the plan that wrote them (plans/<plan_id>.json)."""
        return config_hash(self.to_json())

    @property
    def arms(self) -> tuple[str, ...]:
        return tuple(dict.fromkeys([t.arm for t in self.trials]))

    def cells(self) -> dict[str, Trial]:
        """Each train cell (config hash) with its first trial, in plan order: what calibration
        times, once per cell."""
        out: dict[str, Trial] = {}
        for t in self.trials:
            out.setdefault(t.config_hash, t)
        return out

    def settings_for(self, trial: Trial) -> tuple[SampleSetting, ...]:
        """The sample settings of the trial's arm."""
        return tuple(s for s in self.samples if s.arm == trial.arm)

    def measured(self) -> tuple[str, ...]:
        """Every metric a sample setting must have rows for: cost, task and quality metrics."""
        from harness.metrics import SETTING_COST_METRICS

        return (*SETTING_COST_METRICS, *get_task(self.task).metrics, *self.metrics)

    def sampling_key(self, trial: Trial, setting: SampleSetting) -> str:
        """Ledger key of drawing `setting`'s samples from `trial`'s fit: everything that changes
        the samples or how they are measured, except the metric list (see `harness.ledger`)."""
        return config_hash({"fit": trial.trial_id, "knobs": setting.knobs,
                            "n_samples": self.n_samples, "task": self.task, "mask": self.mask,
                            "obs_noise": self.obs_noise, "ref_split": self.ref_split})

    def cross_pairs(self) -> list[tuple[Trial, Trial]]:
        """(trial, partner) pairs for methods with `cross_metrics`: within each train cell of
        an arm, every seed is paired with the next seed (the last with the first), so each
        fit is judged against one fit it never saw. Cells with one seed have no pair."""
        from harness.method import get_method

        groups: dict[str, list[Trial]] = {}
        for t in self.trials:
            if get_method(t.method).cross_metrics:
                groups.setdefault(self.cell_key(t), []).append(t)
        pairs = []
        for trials in groups.values():
            trials = sorted(trials, key=lambda t: t.seed)
            if len(trials) > 1:
                pairs += [(t, trials[(i + 1) % len(trials)]) for i, t in enumerate(trials)]
        return pairs

    def cell_key(self, trial: Trial, setting: SampleSetting | None = None) -> str:
        """Stable key of a point of the study: study, scale, arm, method and the grid values of
        the train cell and sample setting. Unlike the trial id it ignores the rest of the config
        and the seed, so it joins the seeds of one cell and runs of different commits."""
        return config_hash({"study": self.study, "scale": self.scale, "arm": trial.arm,
                            "method": trial.method, "cell": trial.cell,
                            "setting": None if setting is None else setting.cell})


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
            raise GenbenchError(f"unknown {what} {k!r} for {method}; valid: {', '.join(valid)}")


def _label(arm: str, cell: dict[str, Any]) -> str:
    """A file-name-safe label of a sample setting, prefixed by its arm in arms studies."""
    text = "_".join(f"{k}-{v}" for k, v in cell.items()) or "default"
    text = f"{arm}_{text}" if arm else text
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in text)


def parse_sets(pairs: list[str]) -> dict[str, Any]:
    """`["n_feat=32", "seeds=[0,1]"]` -> `{"n_feat": 32, "seeds": [0, 1]}`."""
    out = {}
    for pair in pairs:
        if "=" not in pair:
            raise GenbenchError(f"malformed --set {pair!r}; expected KEY=VALUE")
        k, v = pair.split("=", 1)
        out[k.strip()] = parse_value(v.strip())
    return out


def study_names() -> list[str]:
    """Names of the studies shipped under `studies/`."""
    import studies

    return sorted(m.name for m in pkgutil.iter_modules(studies.__path__) if not m.name.startswith("_"))


def load_study(name_or_path: str) -> Study:
    """A study by name (a module under `studies/`) or by path to a study file. A file that does
    not import, or defines no STUDY, fails in one line naming it."""
    path = Path(name_or_path)
    if name_or_path.endswith(".py") or path.is_file() or "/" in name_or_path:
        if path.is_dir():
            raise GenbenchError(f"{path} is a directory; give a study file (.py) or a study name")
        if not path.is_file():
            raise GenbenchError(f"study file {path} does not exist")
        if path.suffix != ".py":
            raise GenbenchError(f"study file {path} is not a Python file (.py)")
        path = path.resolve()
        module = exec_file(path)
        source = f"path:{path}"
    else:
        if name_or_path not in study_names():
            raise GenbenchError(f"unknown study {name_or_path!r}; valid: {', '.join(study_names())} "
                                "(or a path to a study file)")
        source = f"studies.{name_or_path}"
        try:
            module = importlib.import_module(source)
        except GenbenchError as err:
            raise GenbenchError(f"study {name_or_path}: {err}") from None
        except (Exception, SystemExit) as err:
            raise GenbenchError(f"study {name_or_path} does not import: {type(err).__name__}: "
                                f"{first_line(err)}") from None
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise GenbenchError(f"{name_or_path} defines no `STUDY = Study(...)`")
    study.check_declaration()
    import_code(study.imports)  # its methods register before the plan resolves
    return dataclasses.replace(study, source=source)
