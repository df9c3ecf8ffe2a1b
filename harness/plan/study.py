"""Declared ablation studies (after big_vision's `configs/*.py` with `runlocal` and Ray Tune
examples' `--smoke-test`).

A study file defines `STUDY = Study(...)`: a data set, explicit seeds, quality metrics, per-trial
resources, named scales (`smoke` runs on a 2-core CPU in minutes, `full` is the paper-sized run
for GPUs), and one or more arms. An arm is a method with its own base config, train grid (each
cell is one fit) and sample grid (each setting re-samples the same fitted model). A study with
one method declares it directly (`method=`, `config=`, grids); a study that compares families
lists `arms=(Arm(...), ...)`, which share the data, seeds, metrics and budget (in optimiser
steps, or in images seen with `budget_kimg` as StyleGAN and EDM count it).

`genbench.plan(study, scale=..., sets=...)` (`genbench.harness.plan.resolve.resolve_study` below
it) returns the `Plan` (`genbench.harness.plan.plan`) of what will run, checking every key and
value first. This module only declares, and loads study files.
"""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from genbench.harness.verdicts.claims import Claim
from genbench.harness.config import check_fields, parse_value
from genbench.harness.errors import GenbenchError, first_line, unknown
from genbench.harness.plan.plan import Resources
from genbench.harness.registry import exec_file, import_code

Grid = dict[str, list[Any]] | list[dict[str, Any]]
# the run-wide settings a Scale or --set may change (the plan's fields of the same names)
TOP_KEYS = ("budget_steps", "budget_kimg", "n_samples", "log_every", "eval_every", "eval_samples",
            "seeds", "data", "resolution", "metrics", "cpu", "gpu", "trial_timeout_s", "pretrained")


_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")


def check_name(name: str, what: str, why: str) -> None:
    """A name that becomes part of a path: letters, digits, `_`, `.`, `-`, no `..`; else one
    line saying so before anything reads the study."""
    if not _NAME.fullmatch(name) or ".." in name:
        raise GenbenchError(f"{what} {name!r} is not a plain name: use letters, digits, '_', '.' "
                            f"and '-', not starting with '.' or '-' ({why})")


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
    # None = the study's and arms' own starting points; else a zoo name, path or URI for every
    # arm ("" = train from scratch), or {ARM: REF} for some (`genbench.harness.store.zoo`)
    pretrained: str | dict[str, str] | None = None


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
    # a starting point instead of training: a zoo model ("ddpm_linear"), or a genbench fit
    # checkpoint's path or URI; its config is the checkpoint's and its fit a load
    pretrained: str = ""


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
    task: str = "generate"  # see genbench.harness.plan.tasks: generate | inpaint (restore masked test images)
    mask: str = "center"  # inpaint: see genbench.harness.plan.tasks
    obs_noise: float = 0.0  # inpaint: std of the measurement noise n in y = A(x) + n
    figures: bool = False  # save the method's figures (e.g. forward/backward process)
    trial_timeout_s: float = 0.0  # stop a trial that runs longer (a `timeout` failure); 0 = never
    resources: Resources = Resources()  # per trial, unless an arm or the scale says otherwise
    resolution: int | None = None  # None = the data set's native resolution
    description: str = ""  # one line for `genbench list`
    # the results of its paper or problem set the study tests (genbench.harness.verdicts.claims): Claim(...)s or
    # their one-line texts, "fid_domain: steps=50 better than steps=10"
    claims: tuple[Claim | str, ...] = ()
    source: str = ""  # how workers import this study: "genbench.studies.NAME" or "path:/abs/file.py"
    pretrained: str = ""  # a single-method study's starting point (see Arm.pretrained)

    def check_declaration(self) -> None:
        """Every field of the study, its arms and scales has its declared type (arms are
        `Arm`s, scales `Scale`s, grids dicts of lists, ...), and there is a scale; else one
        line naming the field. Before anything else reads the study."""
        check_fields(self, "Study")
        check_name(self.name, "study name", "it names the folder results/<study>/<scale>")
        for i, arm in enumerate(self.arms):
            check_fields(arm, f"Study.arms[{i}]")
            check_name(arm.name, "arm name", "it names rows, --set ARM.KEY and files")
            if arm.name == "real":  # (genbench.harness.store.results.REAL_ARM)
                raise GenbenchError(f"study {self.name!r}: the arm name 'real' is reserved for "
                                    "the real-data floor every study measures; rename the arm")
        for name, sc in self.scales.items():
            check_fields(sc, f"Study.scales[{name!r}]")
            check_name(name, "scale name", "it names the folder results/<study>/<scale>")
        if not self.scales:
            raise GenbenchError(f"study {self.name!r} declares no scales; give it "
                                "scales={'smoke': Scale(...), ...}")

    def all_arms(self) -> tuple[Arm, ...]:
        """The arms of the study; a single-method study is one arm named after its method."""
        if self.arms and (self.method or self.config or self.train_grid or self.sample_grid
                          or self.pretrained):
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
                    self.sample_config, pretrained=self.pretrained),)


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
    from genbench import studies

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
            raise GenbenchError(unknown("study", name_or_path, study_names())
                                + " (or a path to a study file)")
        source = f"genbench.studies.{name_or_path}"
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
