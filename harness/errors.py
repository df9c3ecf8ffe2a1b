"""User-facing errors of genbench: each one is reported as a single line and a non-zero exit; an
unknown name says the closest valid one ("did you mean") and lists them all. With the wording
they share with the console's other lines (`count`: "1 trial", "3 trials")."""

import difflib
from typing import Iterable


def first_line(err: BaseException, default: str = "") -> str:
    """The first non-empty line of an error's message (a library's can run to many lines),
    else `default`."""
    return (str(err).strip().splitlines() or [default])[0]


class GenbenchError(Exception):
    """Bad input (unknown name, malformed value, missing file): reported before work starts."""


class DivergedError(GenbenchError):
    """Training produced a non-finite loss; the trial stops and is recorded as diverged."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"training diverged at step {step}: loss={loss}")
        self.step = step
        self.loss = loss


def count(n: int | float, noun: str, plural: str | None = None) -> str:
    """`n` and its noun in the number it takes: "1 trial", "0 trials", "2 waves"."""
    return f"{n:g} {noun if n == 1 else plural or noun + 's'}"


def unknown(what: str, name: object, valid: Iterable[str], listed: str | None = None,
            where: str = "") -> str:
    """The one line for an unknown `what` called `name` (`where`: " for study 'x'"): the closest
    valid name when one is near (difflib's ratio >= 0.6, as Python's own "did you mean"
    suggestions), then every valid one (`listed` when the list is said otherwise)."""
    valid = [str(v) for v in valid]
    near = difflib.get_close_matches(str(name), valid, n=1) if isinstance(name, str) else []
    hint = f" (did you mean {near[0]!r}?)" if near else ""
    return f"unknown {what} {name!r}{where}{hint}; valid: {listed if listed is not None else ', '.join(valid)}"
