"""genbench: ablation studies and regression benchmarks of generative image models, swept with
Ray Tune into Parquet tables, with reports, regression gates and claims.

What users write and call is here; the rest (`genbench.harness`, `genbench.methods`,
`genbench.studies`, `genbench.reports`) is internal and may move between versions.

    from genbench import Arm, Claim, Scale, Study          # a study file
    from genbench import Method, register                  # a method of one's own
    import genbench
    rows = genbench.run("quickstart", sets={"seeds": [0]})  # the command line's `run`, in Python

Names load on first use (PEP 562), so `import genbench` costs neither torch nor Ray.
"""

from __future__ import annotations

import importlib

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    # declaring studies
    "Study": "genbench.harness.plan.study",
    "Arm": "genbench.harness.plan.study",
    "Scale": "genbench.harness.plan.study",
    "Resources": "genbench.harness.plan.plan",
    "Claim": "genbench.harness.verdicts.claims",
    "Plan": "genbench.harness.plan.plan",
    # writing methods
    "Method": "genbench.harness.method",
    "register": "genbench.harness.method",
    "TrainData": "genbench.harness.method",
    "Budget": "genbench.harness.method",
    "Observation": "genbench.harness.method",
    "PerSampleNoise": "genbench.harness.seeding",
    # typed configs: a method's frozen dataclass built from overrides, and back
    "build_config": "genbench.harness.config",
    "to_dict": "genbench.harness.config",
    "GenbenchError": "genbench.harness.errors",
    # the Python API
    "run": "genbench.harness.api",
    "load": "genbench.harness.api",
    "plan": "genbench.harness.api",
    "claims": "genbench.harness.api",
    "compare": "genbench.harness.api",
    "history": "genbench.harness.api",
    "report": "genbench.harness.api",
    "status": "genbench.harness.api",
}

__all__ = ["__version__", *_EXPORTS]


def __getattr__(name: str):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'genbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # once
    return value


def __dir__() -> list[str]:
    return sorted(__all__)
