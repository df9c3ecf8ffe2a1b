"""Declared studies, one file each: `STUDY = Study(...)` plus a docstring with the command and
the expected runtime at each scale. `genbench list` shows them; `genbench run NAME` runs one.
"""
