"""genbench's built-in generative methods, one file each, and the code they share (schedules,
samplers, nets). Each is declared as an entry point in `pyproject.toml` (group
`genbench.methods`), which is how the harness finds them: it never imports this package.

Methods import torch and the harness's `method`, `config`, `seeding`, `errors` (and, for data
facts, `mixture`) only, never Ray or the run layer (`tests/test_layers.py` checks it).
"""
