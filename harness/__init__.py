"""genbench harness: the engine that runs declared ablation studies of generative models.

It knows methods only through their registry (`genbench.harness.method`); the Tune adapter
(`genbench.harness.run.tune`) is the only module that imports Ray Tune. docs/architecture.md draws
its rooms and the rules between them.
"""
