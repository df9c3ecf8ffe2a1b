"""The points of a study that claims name, and claims resolved against them: a side
(`steps=50`, `arm=gan`, `ddpm: steps=250, clip_x0=False`) selects points of a plan (an arm's
train cell and sample setting); `all` pairs the points of two sides that agree on every other
axis, `mean` averages each side; a bad claim is refused in one line when the plan resolves,
before anything runs (docs/statistics.md, "What a claim says")."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import Any, Callable

from genbench.harness.config import axis_value, canonical_json, grid_text, parse_value
from genbench.harness.errors import GenbenchError, unknown
from genbench.harness.verdicts.claims import Claim, as_claim

# -- sides and the points they select ----------------------------------------------------------

@dataclass(frozen=True)
class Point:
    """A point of a study: an arm's train cell and sample setting (`setting_json` None: the fit
    itself, for metrics measured once per fit)."""

    arm: str
    cell_json: str  # canonical JSON of the train-grid values
    setting_json: str | None  # canonical JSON of the sample-grid values

    def coords(self) -> dict[str, Any]:
        """The point's grid values (read them, do not change them: they are shared)."""
        return _coords(self.cell_json, self.setting_json)

    def label(self, with_arm: bool = True) -> str:
        axes = grid_text(self.coords(), base="")
        if not with_arm:
            return axes or "(base)"
        return f"{self.arm}: {axes}" if axes else self.arm


@functools.lru_cache(maxsize=1 << 18)  # (claims ask each point's values many times)
def _coords(cell_json: str, setting_json: str | None) -> dict[str, Any]:
    return {**json.loads(cell_json), **json.loads(setting_json or "{}")}


@dataclass(frozen=True)
class Side:
    text: str
    arm: str | None
    values: tuple[tuple[str, Any], ...]

    def matches(self, point: Point) -> bool:
        if self.arm is not None and point.arm != self.arm:
            return False
        coords = point.coords()
        return all(k in coords and _same(coords[k], v) for k, v in self.values)


def _same(a: Any, b: Any) -> bool:
    """Grid values equal as the command line writes them: 5 == 5.0, False == false."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return float(a) == float(b)
    if isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _same_key(a: Any) -> Any:
    """A hashable key under which values `_same` calls equal are equal."""
    if isinstance(a, bool):
        return ("bool", a)
    if isinstance(a, (int, float)):
        return ("number", float(a))
    if isinstance(a, (list, tuple)):
        return ("list", tuple(_same_key(x) for x in a))
    try:
        hash(a)
        return ("value", a)
    except TypeError:
        return ("json", json.dumps(a, sort_keys=True, default=str))


def _split_top(text: str) -> list[str]:
    """Split on commas outside brackets: `ch_mult=[1,2], steps=5` -> two items."""
    parts, depth, cur = [], 0, ""
    for ch in text:
        depth += ch in "[(" and 1 or (-1 if ch in "])" else 0)
        if ch == "," and depth == 0:
            parts.append(cur)
            cur = ""
        else:
            cur += ch
    return [p.strip() for p in [*parts, cur] if p.strip()]


def parse_side(text: str, claim: str) -> Side:
    """`"ddpm: steps=250, clip_x0=False"`, `"arm=gan"`, `"T=500"` -> a Side."""
    arm, rest = None, text.strip()
    head, colon, tail = rest.partition(":")
    if colon and "=" not in head:
        arm, rest = head.strip(), tail.strip()
    values = []
    for item in _split_top(rest):
        key, eq, value = item.partition("=")
        if not eq or not key.strip():
            raise GenbenchError(f"claim {claim!r}: side {text!r}: expected AXIS=VALUE items "
                                f"(or ARM: AXIS=VALUE, arm=NAME), got {item!r}")
        key, value = key.strip(), parse_value(value.strip())
        if key == "arm":
            if arm is not None and arm != str(value):
                raise GenbenchError(f"claim {claim!r}: side {text!r} names two arms")
            arm = str(value)
        else:
            values.append((key, value))
    if arm is None and not values:
        raise GenbenchError(f"claim {claim!r}: side {text!r} selects nothing")
    return Side(text.strip(), arm, tuple(values))


def row_points(rows) -> list[Point]:
    """The points results rows measured (a run without a plan, or made before claims)."""
    if rows is None or rows.empty:
        return []
    keys = rows[["arm", "cell_json", "setting_json"]].drop_duplicates()
    return [Point(str(a), c, s) for a, c, s in keys.itertuples(index=False)
            if isinstance(c, str) and isinstance(s, str)]


# -- resolving claims against a plan ---------------------------------------------------------

@dataclass(frozen=True)
class Resolved:
    """A claim with the points each side selects: one comparison, or (`all`) one per pair."""

    claim: Claim
    level: str  # "setting": measured per sample setting; "fit": once per fit
    comparisons: tuple[tuple[tuple[Point, ...], tuple[Point, ...]], ...]
    multi_arm: bool


@dataclass(frozen=True)
class Catalog:
    """What the claims of a run may name: each metric measured, with its level and direction;
    the names known to have no direction (method facts)."""

    measured: dict[str, tuple[str, bool | None]]  # metric -> ("setting" | "fit", higher is better)
    # every metric name genbench knows (registries), measured or not; a function of none is
    # called only to word an error (loading the registries costs imports)
    known: tuple[str, ...] | Callable[[], tuple[str, ...]] = ()
    facts: tuple[str, ...] = ()  # names without a good direction (a method's own facts)

    def is_known(self, metric: str) -> bool:
        return metric in (self.known() if callable(self.known) else self.known)


def resolve(claims, points: list[Point], catalog: Catalog) -> list[Resolved]:
    """Check every claim against the points and metrics of a run; one line naming what is
    wrong for the first bad one: an unknown metric, one the run does not measure, one without a
    direction, a side that names no axis, matches no point, or several without `combine`."""
    from genbench.harness.store.results import REAL_ARM

    out = []
    multi_arm = len({p.arm for p in points} - {REAL_ARM}) > 1  # (the floor is no arm of a study's own)
    for c in map(as_claim, claims):
        out.append(_resolve_one(c, points, catalog, multi_arm))
    texts = [r.claim.text for r in out]
    if len(set(texts)) < len(texts):
        dup = next(t for t in texts if texts.count(t) > 1)
        raise GenbenchError(f"claim {dup!r} is given twice")
    return out


def _resolve_one(c: Claim, points: list[Point], catalog: Catalog, multi_arm: bool) -> Resolved:
    name = c.text
    if c.metric not in catalog.measured:
        if c.metric in catalog.facts:
            raise GenbenchError(f"claim {name!r}: {c.metric} has no good direction (a method's "
                                "fact, neither better higher nor lower); claims take a metric "
                                f"with one: {', '.join(_measured_names(catalog))}")
        if catalog.is_known(c.metric):
            raise GenbenchError(f"claim {name!r}: the study does not measure {c.metric}; it "
                                f"measures {', '.join(_measured_names(catalog))} (--set metrics=[...] "
                                "adds a quality metric)")
        measured = _measured_names(catalog)
        raise GenbenchError(f"claim {name!r}: " + unknown("metric", c.metric, measured).replace(
            "; valid:", "; the study measures"))
    level = catalog.measured[c.metric][0]  # (a direction of None: no rows yet to tell it)
    if level == "fit":  # measured once per fit: a point is an arm's train cell
        points = list({Point(p.arm, p.cell_json, None): None for p in points})
    better, than = parse_side(c.better, name), parse_side(c.than, name)
    sides = []
    for side in (better, than):
        sides.append(_select(side, points, name, level, c.combine, multi_arm))
    b, t = sides
    if set(b) & set(t):
        raise GenbenchError(f"claim {name!r}: both sides select {sorted(set(b) & set(t), key=str)[0].label()}")
    if c.combine == "all":
        comparisons = _pairs(b, t, better, than, name)
    else:
        comparisons = ((tuple(b), tuple(t)),)
    return Resolved(c, level, comparisons, multi_arm)


def _measured_names(catalog: Catalog) -> list[str]:
    return list(catalog.measured)


def _select(side: Side, points: list[Point], name: str, level: str, combine: str,
            multi_arm: bool) -> list[Point]:
    arms = sorted({p.arm for p in points})
    if side.arm is not None and side.arm not in arms:
        raise GenbenchError(f"claim {name!r}: side {side.text!r}: no arm {side.arm!r}; arms: "
                            f"{', '.join(arms)}")
    pool = [p for p in points if side.arm is None or p.arm == side.arm]
    axes: dict[str, list] = {}
    seen: set[tuple[str, Any]] = set()
    for p in pool:
        for k, v in p.coords().items():
            axes.setdefault(k, [])
            if (k, _same_key(v)) not in seen:  # (a set: a huge grid is not quadratic)
                seen.add((k, _same_key(v)))
                axes[k].append(v)
    for key, _ in side.values:
        if key not in axes:
            where = "train-grid axes (it is measured once per fit)" if level == "fit" else "axes"
            known = ", ".join(f"{k} ({', '.join(map(axis_value, v))})" for k, v in axes.items()) or "none"
            raise GenbenchError(f"claim {name!r}: side {side.text!r}: no axis {key!r}"
                                + (f" in arm {side.arm!r}" if side.arm else "")
                                + f"; {where}: {known}")
    hit = [p for p in pool if side.matches(p)]
    if not hit:
        known = "; ".join(f"{k} takes {', '.join(map(axis_value, axes[k]))}" for k, _ in side.values)
        raise GenbenchError(f"claim {name!r}: side {side.text!r} matches no point of the plan "
                            f"({known})")
    if len(hit) > 1 and combine == "one":
        shown = "; ".join(p.label(multi_arm) for p in hit[:4]) + ("; ..." if len(hit) > 4 else "")
        raise GenbenchError(f"claim {name!r}: side {side.text!r} is ambiguous: it matches "
                            f"{len(hit)} points ({shown}); name one, or end the claim with (all) "
                            "(every pair must hold) or (mean) (the points' mean)")
    return hit


def _pairs(b: list[Point], t: list[Point], better: Side, than: Side, name: str):
    """`all`: each point of one side against the point of the other that agrees on every axis
    neither side names (one point against many when a side has one)."""
    if len(b) == 1 or len(t) == 1:
        return tuple(((x,), (y,)) for x in b for y in t)
    named = {k for k, _ in (*better.values, *than.values)}
    named_arm = better.arm is not None or than.arm is not None

    def rest(p: Point) -> str:
        key = {k: v for k, v in p.coords().items() if k not in named}
        return canonical_json([None if named_arm else p.arm, key])

    tb: dict[str, list[Point]] = {}
    for y in t:
        tb.setdefault(rest(y), []).append(y)
    pairs = []
    for x in b:
        ys = tb.get(rest(x), [])
        if len(ys) != 1:
            raise GenbenchError(f"claim {name!r}: cannot pair {x.label()} with one point of "
                                f"{than.text!r} ({len(ys)} agree on the other axes); use (mean)")
        pairs.append(((x,), (ys[0],)))
    if len({p[1] for p in pairs}) != len(t):
        raise GenbenchError(f"claim {name!r}: the points of {better.text!r} and {than.text!r} "
                            "do not pair one to one; use (mean)")
    return tuple(pairs)
