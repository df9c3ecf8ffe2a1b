"""Typed, frozen configuration dataclasses (after nanoGPT's `GPTConfig` and EDM's
`training_options.json`): overrides go through `dataclasses.replace`, an unknown field or an
invalid value fails before anything runs and names the valid choices, and every config
serialises to canonical JSON with a stable hash.
"""

from __future__ import annotations

import ast
import dataclasses
import difflib
import functools
import hashlib
import json
import numbers
import types
import typing
from typing import Any, Literal, Union

from genbench.harness.errors import GenbenchError, unknown as unknown_line


@functools.lru_cache(maxsize=None)  # (a class's hints, once: 25,000 cells build configs)
def _field_types(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls)


def coerce(value: Any, tp: Any, *, name: str) -> Any:
    """Check `value` against the annotation `tp`, converting where it is unambiguous
    (int -> float, list -> tuple); raise GenbenchError naming the field and valid values."""
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if tp is Any:
        return value
    if origin is Literal:
        if value in args:
            return value
        near = difflib.get_close_matches(value, [a for a in args if isinstance(a, str)], n=1) \
            if isinstance(value, str) else []
        hint = f" (did you mean {near[0]!r}?)" if near else ""
        raise GenbenchError(f"invalid value {value!r} for {name}{hint}; valid: {', '.join(map(repr, args))}")
    if origin in (Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        errors = []
        for arg in args:
            if arg is type(None):
                continue
            try:
                return coerce(value, arg, name=name)
            except GenbenchError as err:
                errors.append(str(err))
        raise GenbenchError(errors[0] if len(errors) == 1 else
                            f"invalid value {value!r} for {name}; expected {_type_name(tp)}")
    if origin is tuple:
        if not isinstance(value, (list, tuple)):
            raise GenbenchError(f"invalid value {value!r} for {name}; expected {_type_name(tp)}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(coerce(v, args[0], name=name) for v in value)
        if len(args) != len(value):
            raise GenbenchError(f"invalid value {value!r} for {name}; expected {_type_name(tp)}")
        return tuple(coerce(v, a, name=name) for v, a in zip(value, args))
    if tp is bool:
        if isinstance(value, bool):
            return value
        raise GenbenchError(f"invalid value {value!r} for {name}; expected true or false")
    if tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        raise GenbenchError(f"invalid value {value!r} for {name}; expected an integer")
    if tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        raise GenbenchError(f"invalid value {value!r} for {name}; expected a number")
    if tp is str:
        if isinstance(value, str):
            return value
        raise GenbenchError(f"invalid value {value!r} for {name}; expected a string")
    # checked only, returned as given: dicts, lists and declared dataclasses (Scale, Arm, ...)
    if origin is dict or tp is dict:
        if not isinstance(value, dict):
            raise GenbenchError(f"invalid value {_short(value)} for {name}; expected a dict")
        for k, v in value.items() if args else ():
            coerce(k, args[0], name=f"a key of {name}")
            coerce(v, args[1], name=f"{name}[{k!r}]")
    elif origin is list or tp is list:
        if not isinstance(value, (list, tuple)):
            raise GenbenchError(f"invalid value {_short(value)} for {name}; expected a list")
        for v in value if args else ():
            coerce(v, args[0], name=f"an item of {name}")
    elif isinstance(tp, type) and dataclasses.is_dataclass(tp) and not isinstance(value, tp):
        raise GenbenchError(f"invalid value {_short(value)} for {name}; expected "
                            f"{tp.__name__}(...)")
    return value


def _short(value: Any, limit: int = 60) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def check_fields(obj: Any, what: str) -> None:
    """Check every field of the dataclass instance `obj` against its annotation (`coerce`), so
    that a declaration of the wrong shape fails in one line naming `what.field`."""
    hints = _field_types(type(obj))
    for f in dataclasses.fields(obj):
        coerce(getattr(obj, f.name), hints[f.name], name=f"{what}.{f.name}")


def _type_name(tp: Any) -> str:
    if typing.get_args(tp):  # tuple[str, ...], not tuple
        return str(tp).replace("typing.", "")
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def build_config(cls: type, overrides: dict[str, Any], *, what: str = "option") -> Any:
    """`cls(**defaults | overrides)` with every key and value checked against `cls`."""
    hints = _field_types(cls)
    valid = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in overrides if k not in valid]
    if unknown:
        raise GenbenchError(unknown_line(what, unknown[0], valid))
    values = {k: coerce(v, hints[k], name=k) for k, v in overrides.items()}
    try:
        cfg = cls(**values)
    except (ValueError, TypeError) as err:
        raise GenbenchError(f"invalid {what}: {err}") from None
    return cfg


def to_dict(cfg: Any) -> dict[str, Any]:
    """A config dataclass as a plain JSON-able dict."""
    return json.loads(canonical_json(dataclasses.asdict(cfg)))


def canonical_json(obj: Any) -> str:
    """Sorted, compact JSON: equal configs give equal strings."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), default=list)


def grid_text(values: Any, base: str = "(base)") -> str:
    """Grid values as people read them, the one spelling of every page, table and console line:
    "steps=50, clip_x0=True" from a dict or its JSON text (lists as JSON; an integer that pandas
    turned into a float, as an integer); `base` for no values (the base config); "" for none
    at all (None, NaN: a fit's row has no sample setting)."""
    if isinstance(values, str):
        values = json.loads(values) if values else None
    if not isinstance(values, dict):
        return ""
    return ", ".join(f"{k}={axis_value(v)}" for k, v in values.items()) or base


def axis_value(v: Any) -> str:
    """One grid value as `grid_text` spells it."""
    if isinstance(v, (list, dict)):
        return json.dumps(v)
    if isinstance(v, numbers.Real) and not isinstance(v, numbers.Integral) and float(v).is_integer():
        return str(int(v))  # (numpy's floats too)
    return str(v)


def config_hash(obj: Any) -> str:
    """First 12 hex digits of the sha256 of `canonical_json(obj)`."""
    return hashlib.sha256(canonical_json(obj).encode()).hexdigest()[:12]


def parse_value(text: str) -> Any:
    """A `--set KEY=VALUE` value: a Python/JSON literal (1, 0.5, true, none, [1,2]), a list of
    bare words ([fid_domain,kid_domain]) or a string."""
    lowered = {"true": True, "false": False, "none": None, "null": None}
    if text.lower() in lowered:
        return lowered[text.lower()]
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
        pass  # not a literal ({[1]: 2} is one that cannot be built): a string or a word list
    if len(text) >= 2 and text[0] == "[" and text[-1] == "]":  # [fid_domain, kid_domain]
        return [parse_value(part.strip()) for part in text[1:-1].split(",") if part.strip()]
    return text
