"""Every built-in generative method, one file each; importing this package registers them.

Methods import torch, `harness.method`, `harness.config` and `harness.seeding` only, never Ray
or `harness.runner`.
"""

from methods import ddpm, dummy  # noqa: F401
