"""User-facing errors of genbench: each one is reported as a single line and a non-zero exit."""


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
