"""User-facing errors of genbench: each one is reported as a single line and a non-zero exit."""


class GenbenchError(Exception):
    """Bad input (unknown name, malformed value, missing file): reported before work starts."""


class DivergedError(GenbenchError):
    """Training produced a non-finite loss; the trial stops and is recorded as diverged."""

    def __init__(self, step: int, loss: float):
        super().__init__(f"training diverged at step {step}: loss={loss}")
        self.step = step
        self.loss = loss
