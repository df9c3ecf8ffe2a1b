"""genbench harness: the engine that runs declared ablation studies of generative models.

It knows methods only through the registry in `harness.method`; `harness.runner` is the only
module that imports Ray.
"""

__version__ = "0.1.0"
