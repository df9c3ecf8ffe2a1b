"""Claims, as a study declares them: what its paper found, to be tested against what the run
measures (after
Dodge et al. 2019, "Show your work", and Bouthillier et al. 2021, "Accounting for variance in
machine learning benchmarks": pre-registered comparisons, decided over seeds, with their
uncertainty).

A claim names a metric, the side claimed better, the side it is better than, and optionally a
minimum effect:

    Claim("fid_domain", better="steps=50", than="steps=10", source="DDIM, Table 1")
    "fid_domain: steps=50 better than steps=10"            (the same claim as one line)
    "fid_domain: T=1000 better than T=500 by 5%"           (by=0.05: relative to T=500's mean)
    "class_match: guidance=5 better than guidance=0 (all)" (every clip_x0 value must hold)

A side selects points of the plan (an arm's train cell and sample setting) by grid values
and/or arm: `steps=50`, `arm=gan`, `ddpm: steps=250, clip_x0=False`, `T=500`. A side that
matches several points needs `combine`: `all` pairs the points of the two sides that agree on
every other axis and requires each pair to hold; `mean` compares, seed by seed, the mean of
each side's points. "Better" follows the metric's own direction (`higher_is_better`).

Where the sides and their points resolve: `genbench.harness.verdicts.points`; how a run decides
them: `genbench.harness.verdicts.judge`. docs/statistics.md says what each verdict does and does not mean.
"""

from __future__ import annotations

import dataclasses
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from genbench.harness.errors import GenbenchError
from genbench.harness.verdicts import stats

COMBINE = ("one", "all", "mean")
VERDICTS = ("reproduced", "contradicted", "inconclusive")
ALPHA = 0.05  # family-wise error rate of a run's claims
POWER = stats.POWER  # the power `seeds_needed` aims for

_CLAIM_RE = re.compile(
    r"^\s*(?P<metric>[^\s:]+)\s*:\s*(?P<better>.+?)\s+better\s+than\s+(?P<than>.+?)"
    r"(?:\s+by\s+(?P<by>[-+0-9.eE]+)\s*(?P<pct>%)?)?(?:\s*\((?P<combine>all|mean)\))?\s*$")


@dataclass(frozen=True)
class Claim:
    """A result a study tests: on `metric`, the points of `better` beat those of `than`."""

    metric: str  # a metric the study measures, with a good direction
    better: str  # the side claimed better: "steps=50", "arm=gan", "ddpm: steps=250, clip_x0=False"
    than: str  # the side it is claimed better than
    by: float = 0.0  # minimum effect, relative to `than`'s mean (0.05 = 5 %)
    by_abs: float | None = None  # or in the metric's own units (instead of `by`)
    combine: Literal["one", "all", "mean"] = "one"  # sides of several points: every pair, or means
    source: str = ""  # where the claim comes from: paper and table or figure, or problem set

    def __post_init__(self) -> None:
        for name in ("metric", "better", "than", "source"):
            if not isinstance(getattr(self, name), str):
                raise GenbenchError(f"claim: {name} must be a string, got {getattr(self, name)!r}")
        if not self.metric.strip() or not self.better.strip() or not self.than.strip():
            raise GenbenchError("claim: give a metric and both sides (better=, than=)")
        for name in ("by", "by_abs"):
            v = getattr(self, name)
            if v is None and name == "by_abs":
                continue
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v < 0:
                raise GenbenchError(f"claim {self.text!r}: {name} must be a number >= 0, got {v!r}")
        if self.by_abs is not None and self.by:
            raise GenbenchError(f"claim {self.text!r}: give by (relative) or by_abs, not both")
        if self.combine not in COMBINE:
            raise GenbenchError(f"claim {self.text!r}: invalid combine {self.combine!r}; "
                                f"valid: {', '.join(COMBINE)}")

    @property
    def text(self) -> str:
        """The claim as one line: `fid_domain: steps=50 better than steps=10 by 5% (all)`."""
        by = (f" by {self.by_abs:g}" if self.by_abs is not None
              else f" by {self.by * 100:g}%" if self.by else "")
        combine = f" ({self.combine})" if self.combine != "one" else ""
        return f"{self.metric}: {self.better} better than {self.than}{by}{combine}"

    @classmethod
    def parse(cls, text: str, source: str = "") -> "Claim":
        """The claim written as one line (`Claim.text`); a malformed line fails in one line."""
        m = _CLAIM_RE.match(text) if isinstance(text, str) else None
        if not m:
            raise GenbenchError(f"malformed claim {text!r}; expected 'METRIC: SIDE better than "
                                "SIDE [by N% | by N] [(all) | (mean)]', e.g. "
                                "'fid_domain: steps=50 better than steps=10'")
        by_text = m["by"]
        try:
            by = float(by_text) if by_text is not None else 0.0
        except ValueError:
            raise GenbenchError(f"malformed claim {text!r}: 'by {by_text}' is not a number") from None
        kw: dict[str, Any] = ({"by": by / 100} if m["pct"] else {"by_abs": by}) if by_text else {}
        return cls(m["metric"], m["better"].strip(), m["than"].strip(),
                   combine=m["combine"] or "one", source=source, **kw)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def as_claim(value: Any) -> Claim:
    """A `Claim`, or its one-line text."""
    return value if isinstance(value, Claim) else Claim.parse(value)
