"""Declared ablation studies (after big_vision's `configs/*.py` with `runlocal` and Ray Tune
examples' `--smoke-test`).

A study file under `studies/` defines `STUDY = Study(...)`: a method, a data set, a base config,
a train grid (each cell is one fit) and a sample grid (each setting re-samples the same fitted
model), explicit seeds, quality metrics, per-trial resources, and named scales: `smoke` runs on
a 2-core CPU in minutes, `full` is the paper-sized run for GPUs.

`Study.resolve(scale, sets)` checks every key and value against the method's `Config` and
`Knobs` dataclasses and returns a `Plan`: the exact trials (cell x seed) and sample settings
that will run. Nothing runs, and nothing is written, until a plan resolves.
"""

from __future__ import annotations

import dataclasses
import importlib
import importlib.util
import itertools
import json
import pkgutil
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness import data as datasets
from harness.config import build_config, canonical_json, coerce, config_hash, parse_value, to_dict
from harness.errors import GenbenchError
from harness.method import get_method

Grid = dict[str, list[Any]] | list[dict[str, Any]]


@dataclass(frozen=True)
class Resources:
    """What one trial asks Ray for; a GPU fraction shares a GPU but does not cap its memory."""

    cpu: float = 1.0  # CPU cores per trial
    gpu: float = 0.0  # GPUs per trial (0.25 packs four trials on one GPU); ignored without GPUs


@dataclass(frozen=True)
class Scale:
    """How big a study runs: budget, sample count, and overrides of the study's declaration."""

    budget_steps: int  # optimiser steps per fit
    n_samples: int  # samples drawn per sample setting (and measured)
    config: dict[str, Any] = field(default_factory=dict)  # method config overrides
    seeds: tuple[int, ...] | None = None  # None = the study's seeds
    train_grid: Grid | None = None  # None = the study's train grid
    sample_grid: Grid | None = None  # None = the study's sample grid
    sample_config: dict[str, Any] = field(default_factory=dict)  # sampling knob overrides
    log_every: int = 50  # loss curve resolution in steps
    eval_every: int = 0  # quality metrics along training every this many steps; 0 = off
    eval_samples: int = 0  # samples per evaluation along training; 0 = n_samples
    resources: Resources | None = None  # None = the study's resources


@dataclass(frozen=True)
class Study:
    name: str  # the file name under studies/
    method: str  # registered method name
    data: str  # data set name (see `genbench list`)
    scales: dict[str, Scale]  # at least "smoke" and "full"
    config: dict[str, Any] = field(default_factory=dict)  # base method config
    train_grid: Grid = field(default_factory=dict)  # axes over Config fields: one fit per cell
    sample_grid: Grid = field(default_factory=dict)  # axes over Knobs: re-sample, no retrain
    sample_config: dict[str, Any] = field(default_factory=dict)  # base sampling knobs
    seeds: tuple[int, ...] = (0,)  # training seeds, one trial per cell and seed
    metrics: tuple[str, ...] = ()  # quality metrics (cost metrics are always recorded)
    ref_split: str = "train"  # reference split of the data set for quality metrics
    missing_assets: Literal["error", "skip"] = "error"  # absent Inception weights: fail or skip
    task: Literal["generate", "inpaint"] = "generate"  # inpaint: restore masked test images
    mask: Literal["center", "half", "random", "none"] = "center"  # inpaint: see harness.tasks
    obs_noise: float = 0.0  # inpaint: std of the measurement noise n in y = A(x) + n
    figures: bool = False  # save the method's figures (e.g. forward/backward process)
    resources: Resources = Resources()
    resolution: int | None = None  # None = the data set's native resolution
    description: str = ""  # one line for `genbench list`

    def resolve(self, scale: str = "smoke", sets: dict[str, Any] | None = None) -> "Plan":
        """The trials and sample settings of this study at `scale`, with `--set` overrides."""
        if scale not in self.scales:
            raise GenbenchError(f"unknown scale {scale!r} for study {self.name!r}; "
                                f"valid: {', '.join(self.scales)}")
        sc = self.scales[scale]
        method_cls = get_method(self.method)
        config_fields = [f.name for f in dataclasses.fields(method_cls.Config)]
        knob_fields = [f.name for f in dataclasses.fields(method_cls.Knobs)]
        base = {**self.config, **sc.config}
        train_grid = _expand(self.train_grid if sc.train_grid is None else sc.train_grid)
        sample_grid = _expand(self.sample_grid if sc.sample_grid is None else sc.sample_grid)
        top = {"budget_steps": sc.budget_steps, "n_samples": sc.n_samples,
               "log_every": sc.log_every, "eval_every": sc.eval_every,
               "eval_samples": sc.eval_samples or sc.n_samples,
               "seeds": self.seeds if sc.seeds is None else sc.seeds,
               "data": self.data, "resolution": self.resolution}
        res = sc.resources or self.resources
        res_sets: dict[str, float] = {}
        knob_sets: dict[str, Any] = {**self.sample_config, **sc.sample_config}
        for key, value in (sets or {}).items():
            target, name = _route(key, config_fields, knob_fields, list(top) + ["cpu", "gpu"])
            if target == "config":  # a grid axis set on the command line is pinned
                base[name] = value
                train_grid = [{**c, name: value} if name in c else c for c in train_grid]
            elif target == "knobs":
                knob_sets[name] = value
                sample_grid = [{**c, name: value} if name in c else c for c in sample_grid]
            elif name in ("cpu", "gpu"):
                res_sets[name] = value
            else:
                top[name] = value
        train_grid, sample_grid = _dedupe(train_grid), _dedupe(sample_grid)
        seeds = top["seeds"]
        seeds = (seeds,) if isinstance(seeds, int) else tuple(seeds)
        merged: list[str] = []  # what resolved to the same work, for `genbench plan`
        if len(set(seeds)) < len(seeds):
            merged.append(f"seeds {list(seeds)} repeat a seed: each seed runs once")
            seeds = tuple(dict.fromkeys(seeds))
        for name, low in (("budget_steps", 1), ("n_samples", 1), ("log_every", 1),
                          ("eval_every", 0), ("eval_samples", 1)):
            if not isinstance(top[name], int) or isinstance(top[name], bool) or top[name] < low:
                raise GenbenchError(f"invalid value {top[name]!r} for {name}; "
                                    f"expected an integer >= {low}")
        if top["eval_every"] % top["log_every"]:
            raise GenbenchError(f"eval_every ({top['eval_every']}) must be a multiple of "
                                f"log_every ({top['log_every']})")
        if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) for s in seeds):
            raise GenbenchError(f"invalid value {top['seeds']!r} for seeds; expected integers")
        resolution = datasets.resolution_of(top["data"], top["resolution"])  # fails on unknown names
        hints = typing.get_type_hints(Study)
        for name in ("missing_assets", "task", "mask", "obs_noise"):
            coerce(getattr(self, name), hints[name], name=name)
        if self.ref_split not in datasets.SPLITS:
            raise GenbenchError(f"unknown ref_split {self.ref_split!r}; valid: {', '.join(datasets.SPLITS)}")
        resources = dataclasses.replace(res, **{k: coerce(v, float, name=k) for k, v in res_sets.items()})
        from harness.metrics import check_metric_names
        check_metric_names(self.metrics)

        num_classes = datasets.info(top["data"]).num_classes
        settings: list[SampleSetting] = []
        typed_knobs = []
        for cell in sample_grid:
            _check_axes(cell, knob_fields, "sample grid axis", self.method)
            knobs = build_config(method_cls.Knobs, {**knob_sets, **cell},
                                 what=f"sampling knob of {self.method}")
            same = [s for s in settings if s.knobs == to_dict(knobs)]
            if same:
                merged.append(f"sample setting {cell} is the same as {same[0].cell}: merged")
                continue
            typed_knobs.append(knobs)
            settings.append(SampleSetting(key=_label(cell), cell=cell, knobs=to_dict(knobs)))
        # what changes a fit's rows, curves and checkpoint: its identity and the ledger's key
        fit_spec = {"study": self.name, "scale": scale, "method": self.method, "data": top["data"],
                    "resolution": resolution, "budget_steps": top["budget_steps"],
                    "log_every": top["log_every"]}
        if top["eval_every"]:  # quality along training uses the first setting and the metrics
            fit_spec.update(eval_every=top["eval_every"], eval_samples=top["eval_samples"],
                            eval_metrics=list(self.metrics), eval_knobs=settings[0].knobs)
        trials: list[Trial] = []
        for cell in train_grid:
            _check_axes(cell, config_fields, "train grid axis", self.method)
            config = build_config(method_cls.Config, {**base, **cell},
                                  what=f"config field of {self.method}")
            for knobs in typed_knobs:  # combinations that cannot run fail now, not after training
                method_cls.check(config, knobs, task=self.task, num_classes=num_classes)
            cfg = to_dict(config)
            chash = config_hash({**fit_spec, "config": cfg})
            same = [t for t in trials if t.config_hash == chash]
            if same:
                merged.append(f"train cell {cell} gives the same config as {same[0].cell}: merged")
                continue
            for seed in seeds:
                trials.append(Trial(trial_id=f"{chash[:8]}-s{seed}", cell=cell, config=cfg,
                                    config_hash=chash, seed=seed))
        return Plan(study=self.name, scale=scale, method=self.method, data=top["data"],
                    resolution=resolution, budget_steps=top["budget_steps"],
                    log_every=top["log_every"], n_samples=top["n_samples"],
                    metrics=tuple(self.metrics), ref_split=self.ref_split,
                    missing_assets=self.missing_assets, eval_every=top["eval_every"],
                    eval_samples=top["eval_samples"], task=self.task, mask=self.mask,
                    obs_noise=self.obs_noise, figures=self.figures, resources=resources,
                    trials=tuple(trials), samples=tuple(settings), merged=tuple(merged))


@dataclass(frozen=True)
class Trial:
    """One fit: a train-grid cell at one seed."""

    trial_id: str  # "<config hash>-s<seed>": the ledger's key of this fit
    cell: dict[str, Any]  # the train-grid values of this cell
    config: dict[str, Any]  # the full method config
    config_hash: str  # hash of study, scale, method, data, resolution, config and budget
    seed: int


@dataclass(frozen=True)
class SampleSetting:
    """One sampling of a fitted model: a sample-grid cell."""

    key: str  # file-name-safe label, e.g. "steps-50" ("default" for an empty grid)
    cell: dict[str, Any]  # the sample-grid values of this setting
    knobs: dict[str, Any]  # the full knobs


@dataclass(frozen=True)
class Plan:
    """A resolved study: everything a trial needs, serialisable to JSON (study.json)."""

    study: str
    scale: str
    method: str
    data: str
    resolution: int  # side length the data is loaded (and metrics are computed) at
    budget_steps: int
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
    merged: tuple[str, ...] = ()  # cells, settings and seeds that resolved to the same work

    def to_json(self) -> str:
        return json.dumps(dataclasses.asdict(self), indent=2, sort_keys=True, default=list)

    @property
    def plan_id(self) -> str:
        """Hash of the whole plan: rows name the plan that wrote them (plans/<plan_id>.json)."""
        return config_hash(self.to_json())

    def measured(self) -> tuple[str, ...]:
        """Every metric a sample setting must have rows for: cost, task and quality metrics."""
        from harness.metrics import SETTING_COST_METRICS, TASK_METRICS

        task = tuple(TASK_METRICS) if self.task == "inpaint" else ()
        return (*SETTING_COST_METRICS, *task, *self.metrics)

    def sampling_key(self, trial: Trial, setting: SampleSetting) -> str:
        """Ledger key of drawing `setting`'s samples from `trial`'s fit: everything that changes
        the samples or how they are measured, except the metric list (see `harness.ledger`)."""
        return config_hash({"fit": trial.trial_id, "knobs": setting.knobs,
                            "n_samples": self.n_samples, "task": self.task, "mask": self.mask,
                            "obs_noise": self.obs_noise, "ref_split": self.ref_split})

    def cell_key(self, trial: Trial, setting: SampleSetting | None = None) -> str:
        """Stable key of a point of the study: study, scale, method and the grid values of the
        train cell and sample setting. Unlike the trial id it ignores the rest of the config
        and the seed, so it joins the seeds of one cell and runs of different commits."""
        return config_hash({"study": self.study, "scale": self.scale, "method": self.method,
                            "cell": trial.cell, "setting": None if setting is None else setting.cell})

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        d = json.loads(text)
        d["resources"] = Resources(**d["resources"])
        d["trials"] = tuple(Trial(**t) for t in d["trials"])
        d["samples"] = tuple(SampleSetting(**s) for s in d["samples"])
        d["metrics"] = tuple(d["metrics"])
        d["merged"] = tuple(d.get("merged", ()))
        return cls(**d)


def _expand(grid: Grid) -> list[dict[str, Any]]:
    """A dict of axes -> the cartesian product in declaration order; a list -> as given."""
    if isinstance(grid, dict):
        for axis, values in grid.items():
            if not isinstance(values, (list, tuple)) or not values:
                raise GenbenchError(f"grid axis {axis!r} must be a non-empty list, got {values!r}")
        return [dict(zip(grid, combo)) for combo in itertools.product(*grid.values())]
    cells = [dict(c) for c in grid]
    return cells or [{}]


def _dedupe(cells: list[dict[str, Any]]) -> list[dict[str, Any]]:
    seen, out = set(), []
    for c in cells:
        key = canonical_json(c)
        if key not in seen:
            seen.add(key)
            out.append(c)
    return out


def _route(key: str, config_fields: list[str], knob_fields: list[str],
           top: list[str]) -> tuple[str, str]:
    """Which part of a study a `--set` key changes: config., sample. or a top-level field."""
    if key.startswith("config."):
        return "config", key.removeprefix("config.")
    if key.startswith("sample."):
        return "knobs", key.removeprefix("sample.")
    hits = [t for t, names in (("config", config_fields), ("knobs", knob_fields), ("top", top))
            if key in names]
    if len(hits) > 1:
        raise GenbenchError(f"ambiguous key {key!r}: write config.{key} or sample.{key}")
    if not hits:
        raise GenbenchError(f"unknown key {key!r}; valid: {', '.join(top)}, "
                            f"config fields {', '.join(config_fields)}, "
                            f"sampling knobs {', '.join(knob_fields)}")
    return hits[0], key


def _check_axes(cell: dict[str, Any], valid: list[str], what: str, method: str) -> None:
    for k in cell:
        if k not in valid:
            raise GenbenchError(f"unknown {what} {k!r} for {method}; valid: {', '.join(valid)}")


def _label(cell: dict[str, Any]) -> str:
    if not cell:
        return "default"
    text = "_".join(f"{k}-{v}" for k, v in cell.items())
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
    """A study by name (a module under `studies/`) or by path to a study file."""
    path = Path(name_or_path)
    if name_or_path.endswith(".py") or path.is_file():
        if not path.is_file():
            raise GenbenchError(f"study file {path} does not exist")
        spec = importlib.util.spec_from_file_location(f"_genbench_study_{path.stem}", path)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    else:
        if name_or_path not in study_names():
            raise GenbenchError(f"unknown study {name_or_path!r}; valid: {', '.join(study_names())} "
                                "(or a path to a study file)")
        module = importlib.import_module(f"studies.{name_or_path}")
    study = getattr(module, "STUDY", None)
    if not isinstance(study, Study):
        raise GenbenchError(f"{name_or_path} defines no `STUDY = Study(...)`")
    return study
