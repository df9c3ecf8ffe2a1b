"""The error rate of a run's verdicts over its looks: a fixed-sample test (one look, every
claim tested once at alpha, Holm across them) or `--until-decided`'s group-sequential design
(a look after each planned round of seeds, alpha spent over them), and the record of the looks
taken, kept in the run directory (`OUT/looks.json`) so that `genbench claims OUT` later replays
exactly the decisions the run printed.

Several claims and several looks at once: Holm's step-down procedure carried over looks as
Maurer and Bretz (2013) carry a graphical multiple test over a group-sequential design. Each
comparison not yet decided tests at each look against the nominal level its own boundary
gives it at alpha / (comparisons not yet decided); a comparison decided at a look frees its
share, the others are tested again at the larger share, and so on until none is decided. With
one look this is Holm's method (Holm 1979); with one comparison, the group-sequential test of
`genbench.harness.verdicts.stats.sequential_levels` (Lan & DeMets 1983).

Pure Python over `genbench.harness.verdicts.stats`: no torch, no pandas.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from genbench.harness.verdicts import stats
from genbench.harness.errors import GenbenchError
from genbench.harness.store.rundir import RunDir

SPENDING = "O'Brien-Fleming type (Lan & DeMets 1983)"


@dataclass(frozen=True)
class Design:
    """How a run's claims spend their error rate: `max_seeds` None is one fixed-sample look;
    a number, `--until-decided --max-seeds N` (looks at `stats.planned_looks`)."""

    alpha: float = 0.05
    max_seeds: int | None = None

    @property
    def sequential(self) -> bool:
        return self.max_seeds is not None

    def level(self, looks: tuple[int, ...], alpha: float) -> float:
        """The two-sided nominal level of the last of `looks` (the seeds each look had, two or
        more) for a comparison whose share of the error rate is `alpha`."""
        if not self.sequential:
            return alpha
        return stats.sequential_levels(looks, max(self.max_seeds, looks[0]), alpha)[-1]

    def text(self) -> str:
        if not self.sequential:
            return f"one look at alpha {self.alpha:g}, Holm across comparisons"
        return (f"--until-decided up to {self.max_seeds} seeds: alpha {self.alpha:g} spent over "
                f"the looks, {SPENDING}, Holm across comparisons")

    def to_dict(self) -> dict[str, Any]:
        return {"alpha": self.alpha, "max_seeds": self.max_seeds, "spending": SPENDING}


@dataclass
class Hypothesis:
    """One comparison at one look: its information, its one-sided p-values (reproduced: beyond
    the claim's threshold in its direction; contradicted: beyond zero the other way)."""

    key: str
    n: int  # seeds behind the test (pairs; the smaller side for Welch); < 2: no test
    p_rep: float
    p_con: float
    past: tuple[int, ...] = ()  # the information of its earlier looks (tested, undecided)
    decided: str | None = None  # its verdict where an earlier look decided it
    # set by `step_down`
    verdict: str = "inconclusive"
    level: float = float("nan")  # the two-sided nominal level it was tested against last
    looks: tuple[int, ...] = ()  # the looks it was tested at, this one included

    @property
    def testable(self) -> bool:
        return self.n >= 2 and math.isfinite(self.p_rep) and math.isfinite(self.p_con)


def step_down(hyps: list[Hypothesis], design: Design) -> None:
    """Decide the comparisons of one look, in place (Holm over the looks, as the module says).
    The family counts every comparison that can be tested now or, in a sequential design, at a
    later look; a decided one (now or before) leaves it."""
    family = [h for h in hyps if h.decided or h.testable or design.sequential]
    rejected = {h.key for h in family if h.decided}
    for h in hyps:
        if h.decided:
            h.verdict = h.decided
        elif h.testable:
            h.looks = h.past if h.past and h.past[-1] == h.n else (*h.past, h.n)
    while True:
        share = design.alpha / max(1, len(family) - len(rejected))
        new = []
        for h in family:
            if h.key in rejected or not h.testable:
                continue
            h.level = design.level(h.looks, share)
            if min(h.p_rep, h.p_con) <= h.level / 2:
                h.verdict = "reproduced" if h.p_rep <= h.p_con else "contradicted"
                new.append(h.key)
        if not new:
            return
        rejected.update(new)


def share(hyps: list[Hypothesis], design: Design) -> float:
    """The error rate each undecided comparison holds after a look (alpha over those left)."""
    family = [h for h in hyps if h.decided or h.testable or design.sequential]
    left = sum(h.verdict == "inconclusive" for h in family)
    return design.alpha / max(1, left)


@dataclass
class Looks:
    """The looks a run's `--until-decided` took: its design, and per look and comparison the
    seeds it used and the verdict it gave (OUT/looks.json)."""

    design: Design
    looks: list[dict[str, dict[str, Any]]] = field(default_factory=list)

    @classmethod
    def read(cls, out_dir: Path) -> "Looks | None":
        """The run's record, or None where it has none (a run without `--until-decided`); a
        record genbench cannot read fails in one line."""
        path = RunDir(out_dir).looks
        if not path.is_file():
            return None
        try:
            d = json.loads(path.read_text())
            design = Design(float(d["design"]["alpha"]), int(d["design"]["max_seeds"]))
            looks = [{str(k): {"seeds": [int(s) for s in v["seeds"]], "verdict": str(v["verdict"])}
                      for k, v in look["comparisons"].items()} for look in d["looks"]]
        except (OSError, ValueError, KeyError, TypeError) as err:
            raise GenbenchError(f"{path} is not a record of looks genbench can read ({err}); "
                                "move it aside to judge the run as one fixed-sample look") from None
        return cls(design, looks)

    def write(self, out_dir: Path) -> None:
        from genbench.harness.store.files import atomic_write_bytes

        d = {"design": self.design.to_dict(),
             "looks": [{"comparisons": look} for look in self.looks]}
        atomic_write_bytes(RunDir(out_dir).looks, json.dumps(d, indent=1).encode())

    def last_seeds(self) -> dict[str, list[int]]:
        """Per comparison, the seeds of the last look it was part of."""
        out: dict[str, list[int]] = {}
        for look in self.looks:
            out.update({k: v["seeds"] for k, v in look.items()})
        return out


def check_same_design(looks: Looks, design: Design, where: str) -> None:
    """A run's design is fixed at its first look: resuming it with another is refused."""
    if looks.design.max_seeds != design.max_seeds or looks.design.alpha != design.alpha:
        raise GenbenchError(
            f"{where} took its looks with --max-seeds {looks.design.max_seeds} (alpha "
            f"{looks.design.alpha:g}); its error rate holds only for that design: rerun with "
            f"--max-seeds {looks.design.max_seeds}, or give a new --out")
