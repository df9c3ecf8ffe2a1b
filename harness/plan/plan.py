"""The plan as pure data: what `genbench run` will do, serialisable to JSON (study.json,
plans/<plan_id>.json, each Tune trial's config), with the keys that identify its work.

A `Plan` holds the resolved trials (one fit: an arm's train cell at one seed, `Trial`) and
sample settings (`SampleSetting`), the run-wide settings (data, resolution, metrics, task...)
and the claims it tests. Its keys: a trial's `trial_id` (the ledger's key of a fit), a setting's
`sampling_key` (with the fit's, the key of a sample setting's rows) and `cell_key` (what joins the
seeds of one cell, and runs at different commits). Resolving a study into a plan is
`genbench.harness.plan.resolve`; declaring one is `genbench.harness.plan.study`.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
from dataclasses import dataclass
from typing import Any

from genbench.harness.config import canonical_json, config_hash, grid_text
from genbench.harness.plan.tasks import get_task
from genbench.harness.metrics import STATUS_METRICS


@dataclass(frozen=True)
class Resources:
    """What one trial asks Ray for; a GPU fraction shares a GPU but does not cap its memory."""

    cpu: float = 1.0  # CPU cores per trial
    gpu: float = 0.0  # GPUs per trial (0.25 packs four trials on one GPU); ignored without GPUs

    def __str__(self) -> str:
        return f"{self.cpu:g} CPU, {self.gpu:g} GPU"


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
    # a pretrained starting point instead of training: {"ref": zoo name, path or URI, "sha256"}
    pretrained: dict[str, str] | None = None

    @property
    def name(self) -> str:
        """How the console calls it: arm, train-grid values and seed ("ddpm T=500 s0"); the
        trial id names its files."""
        return " ".join(filter(None, (self.arm or self.method, grid_text(self.cell, base=""),
                                      f"s{self.seed}")))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Trial":
        """The inverse of `dataclasses.asdict` (plans in JSON, Tune configs); a plan of an
        older version lacks fields that take these defaults."""
        d = {**_OLD_TRIAL, **{k: v for k, v in d.items() if k in cls.__dataclass_fields__}}
        return cls(**{**d, "arm": d["arm"] or "",
                      "resources": Resources(**(d.get("resources") or {}))})


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
    # how it was asked for: the `--set` overrides as given, and the arms `--arm` kept (none:
    # every arm); with the study and scale, what reproduces the run ("Rerun a cell")
    sets: tuple[tuple[str, Any], ...] = ()
    only_arms: tuple[str, ...] = ()

    def to_json(self) -> str:
        return self._json

    @functools.cached_property  # (the plan is frozen: study.json and plan_id write it once)
    def _json(self) -> str:
        return json.dumps(self.as_dict(), indent=2, sort_keys=True, default=list)

    def as_dict(self) -> dict[str, Any]:
        """The plan as study.json holds it, without copying (`dataclasses.asdict` deep-copies
        every trial's config: 35 s for 100,000 trials); read it, do not change it."""
        def flat(obj) -> dict[str, Any]:
            return {f.name: getattr(obj, f.name) for f in dataclasses.fields(obj)}

        d = flat(self)
        d["resources"] = flat(self.resources)
        d["trials"] = [{**flat(t), "resources": flat(t.resources)} for t in self.trials]
        d["samples"] = [flat(s) for s in self.samples]
        return d

    @classmethod
    def from_json(cls, text: str) -> "Plan":
        return cls.from_dict(json.loads(text))

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Plan":
        """The plan a study.json holds, written by this version or an older one: fields it
        lacks take their defaults (`OLD_DEFAULTS` for those without one), fields this version
        does not know are left out. Raises KeyError, TypeError or ValueError on a JSON value
        that is not a plan."""
        known = {f.name for f in dataclasses.fields(cls)}
        d = {**OLD_DEFAULTS, **{k: v for k, v in d.items() if k in known}}
        d["resources"] = Resources(**d.get("resources") or {})
        d["trials"] = tuple(Trial.from_dict(t) for t in d["trials"])
        d["samples"] = tuple(SampleSetting(**{k: v for k, v in s.items()
                                              if k in SampleSetting.__dataclass_fields__})
                             for s in d["samples"])
        for name in ("metrics", "imports", "merged", "claims", "claims_left_out", "only_arms"):
            d[name] = tuple(d.get(name, ()))
        d["sets"] = tuple((k, v) for k, v in d.get("sets", ()))
        return cls(**d)

    @functools.cached_property
    def _cell_json(self) -> dict[str, str]:  # config hash -> its cell's canonical JSON
        out: dict[str, str] = {}
        for t in self.trials:
            if t.config_hash not in out:
                out[t.config_hash] = canonical_json(t.cell)
        return out

    def cell_json(self, trial: Trial) -> str:
        """The canonical JSON of a trial's train cell (`{}` for none), as rows' `cell_json`
        holds it: derived once per cell (the seeds of a config share it)."""
        return self._cell_json.get(trial.config_hash) or canonical_json(trial.cell)

    def cell_seeds(self) -> dict[tuple[str, str], set[int]]:
        """The seeds of each train cell: (arm, cell JSON) -> seeds, in plan order."""
        out: dict[tuple[str, str], set[int]] = {}
        for t in self.trials:
            out.setdefault((t.arm, self.cell_json(t)), set()).add(t.seed)
        return out

    @functools.cached_property
    def points(self) -> tuple:
        """Every point of the plan: each arm's train cells with each of its sample settings
        (`genbench.harness.verdicts.points.Point`), in plan order; what claims name."""
        from genbench.harness.verdicts.points import Point

        cells = dict.fromkeys((t.arm, self.cell_json(t)) for t in self.trials)
        settings = [(s.arm, canonical_json(s.cell)) for s in self.samples]
        return tuple(Point(arm, cell, setting) for arm, cell in cells
                     for s_arm, setting in settings if s_arm in (None, arm))

    def catalog(self, facts: tuple[str, ...] = ()):
        """What the plan measures (`genbench.harness.verdicts.points.Catalog`): each sample
        setting's metrics (costs, its task's, the quality metrics) and each fit's costs, with
        their directions; `facts`, names without one (a method's own)."""
        from genbench.harness.metrics import COST_METRICS, SETTING_COST_METRICS, higher_is_better
        from genbench.harness.verdicts.points import Catalog

        measured = {m: ("setting", higher_is_better(m)) for m in self.measured()}
        if self.trials:
            measured.update({m: ("fit", higher) for m, (higher, _) in COST_METRICS.items()
                             if m not in SETTING_COST_METRICS and m not in STATUS_METRICS})

        def known() -> tuple[str, ...]:  # (loading the registries costs imports: on demand)
            from genbench.harness.metrics import metric_names

            return (*measured, *metric_names())

        return Catalog(measured, known=known, facts=tuple(facts))

    def stored_claims(self) -> list:
        """The claims the plan tests (`genbench.harness.verdicts.claims.Claim`); one this
        version cannot read fails in one line."""
        from genbench.harness.errors import GenbenchError
        from genbench.harness.verdicts.claims import Claim

        out = []
        for c in self.claims:
            try:
                out.append(Claim(**c))
            except (TypeError, GenbenchError) as err:
                raise GenbenchError(f"study.json holds a claim genbench cannot read ({c!r}): "
                                    f"{err}") from None
        return out

    def shared_json(self) -> str:
        """What every trial of the plan shares, as JSON: the plan without its trials. A worker
        gets it once with its own trial beside it (`for_trial`), so a trial of a 100,000-trial
        plan parses kilobytes, not the whole plan."""
        return json.dumps(dataclasses.replace(self, trials=()).as_dict(), sort_keys=True,
                          default=list)

    @classmethod
    def for_trial(cls, shared_json: str, plan_id: str, trial: Trial) -> "Plan":
        """The plan as one trial sees it: the shared part (`shared_json`), its own trial, and
        the id of the whole plan, which its rows name."""
        plan = dataclasses.replace(cls.from_json(shared_json), trials=(trial,))
        plan.__dict__["plan_id"] = plan_id  # (a cached property: the whole plan's, kept)
        return plan

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

    @functools.cached_property  # (the plan is frozen: hashing 100,000 trials once is enough)
    def plan_id(self) -> str:
        """Hash of the whole plan (its canonical JSON: compact, so 100,000 trials hash in a
        second): rows name the plan that wrote them (plans/<plan_id>.json)."""
        return config_hash(self.as_dict())

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
        from genbench.harness.metrics import SETTING_COST_METRICS

        return (*SETTING_COST_METRICS, *get_task(self.task).metrics, *self.metrics)

    def sampling_key(self, trial: Trial, setting: SampleSetting) -> str:
        """Ledger key of drawing `setting`'s samples from `trial`'s fit: everything that changes
        the samples or how they are measured, except the metric list (see `genbench.harness.run.ledger`):
        `config_hash({"fit": trial_id, "knobs": ..., "n_samples": ..., "task": ..., "mask": ...,
        "obs_noise": ..., "ref_split": ...})`, whose canonical JSON is "fit" first (the keys
        sort so), then the setting's part, written once per setting."""
        text = '{"fit":' + json.dumps(trial.trial_id) + self._setting_json[(setting.arm, setting.key)]
        return hashlib.sha256(text.encode()).hexdigest()[:12]

    @functools.cached_property
    def _setting_json(self) -> dict[tuple[str, str], str]:
        return {(s.arm, s.key): "," + canonical_json(
            {"knobs": s.knobs, "n_samples": self.n_samples, "task": self.task, "mask": self.mask,
             "obs_noise": self.obs_noise, "ref_split": self.ref_split})[1:] for s in self.samples}

    def cross_pairs(self) -> list[tuple[Trial, Trial]]:
        """(trial, partner) pairs for methods with `cross_metrics`: within each train cell of
        an arm, every seed is paired with the next seed (the last with the first), so each
        fit is judged against one fit it never saw. Cells with one seed have no pair."""
        from genbench.harness.method import get_method

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
        the train cell and sample setting, and the hash of the checkpoint a pretrained arm starts
        from. Unlike the trial id it ignores the rest of the config and the seed, so it joins
        the seeds of one cell and runs of different commits."""
        key = {"study": self.study, "scale": self.scale, "arm": trial.arm,
               "method": trial.method, "cell": trial.cell,
               "setting": None if setting is None else setting.cell}
        if trial.pretrained:  # another checkpoint is another point (not in older keys: unchanged)
            key["pretrained"] = trial.pretrained["sha256"]
        return config_hash(key)


# what a study.json written before a field existed means by its absence
_OLD_TRIAL: dict[str, Any] = {"arm": "", "method": "", "cell": {}, "config": {}, "config_hash": "",
                              "budget_steps": 0}
OLD_DEFAULTS: dict[str, Any] = {"data": "", "resolution": 0, "log_every": 50, "n_samples": 0,
                                "metrics": (), "ref_split": "train", "missing_assets": "error",
                                "eval_every": 0, "eval_samples": 0, "task": "generate",
                                "mask": "center", "obs_noise": 0.0, "figures": False,
                                "resources": {}, "samples": ()}


def read_plan(out_dir) -> Plan | None:
    """The latest plan that ran in `out_dir` (its study.json), written by this version or an
    older one; None when absent, unreadable or not a plan (a JSON value of another shape)."""
    from genbench.harness.store.rundir import RunDir

    try:
        return Plan.from_json(RunDir(out_dir).study_json.read_text())
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
