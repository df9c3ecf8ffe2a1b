"""Open registries of methods, data sets and metrics (after pytest's `pytest11` plugins and
`importlib.metadata` entry points).

Each registry maps a name to an object. Installed packages extend it through an entry point
group (`genbench.methods`, `genbench.datasets`, `genbench.metrics`); genbench's own built-ins
are declared the same way in `pyproject.toml`, so the engine never imports `methods/`. Loading
an entry point imports its module, whose `@register(...)` decorators add its objects; an entry
point that names an object that did not register itself is registered under the entry point's
name.

Registering the same object again (a study file imported a second time) replaces the first
quietly; two different objects under one name fail in one line naming both.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
from importlib import metadata
from pathlib import Path
from typing import Any, Generic, TypeVar

from genbench.harness.errors import GenbenchError, first_line, unknown

T = TypeVar("T")


def origin(obj: Any) -> str:
    """Where an object was defined: `module.QualName` (its source file for study files)."""
    module = getattr(obj, "__module__", "?")
    name = getattr(obj, "__qualname__", None) or getattr(obj, "name", None) or type(obj).__name__
    mod = sys.modules.get(module)
    path = getattr(mod, "__file__", None)
    if module.startswith("_genbench_study_") and path:
        return f"{path}:{name}"
    return f"{module}.{name}"


class Registry(Generic[T]):
    """Name -> object, filled by decorators and by the entry points of `group`."""

    def __init__(self, kind: str, group: str):
        self.kind = kind  # "method", "data set", "metric": for messages
        self.group = group
        self._items: dict[str, T] = {}
        self._sources: dict[str, str] = {}  # name -> where its object was defined
        self._loaded: set[tuple[str, str]] = set()  # entry points already imported
        self._eps: dict[str, metadata.EntryPoint] | None = None  # installed, by name

    def add(self, name: str, obj: T, source: str | None = None) -> T:
        """Register `obj` under `name`; `source` (default `origin(obj)`) tells a second
        registration of the same code from a clash."""
        source = source or origin(obj)
        old = self._sources.get(name)
        if old is not None and old != source:
            raise GenbenchError(f"{self.kind} {name!r} is registered twice: by {old} and by {source}")
        self._items[name] = obj
        self._sources[name] = source
        return obj

    def _scan(self) -> dict[str, metadata.EntryPoint]:
        """The installed entry points of this group, by name (read once, and again on a miss
        of `get`: a package installed while a worker process lives is found then)."""
        self._eps = {ep.name: ep for ep in metadata.entry_points(group=self.group)}
        return self._eps

    def _load(self, ep: metadata.EntryPoint) -> None:
        if (ep.name, ep.value) in self._loaded:
            return
        self._loaded.add((ep.name, ep.value))
        try:
            obj = ep.load()
        except Exception as err:  # a broken plugin: one line, naming it
            raise GenbenchError(f"cannot load {self.kind} {ep.name!r} from entry point "
                                f"{ep.value} ({self.group}): {type(err).__name__}: {err}") from None
        if ep.name not in self._items and not isinstance(obj, type(sys)):
            self.add(ep.name, obj)

    def _find(self, name: str, rescan: bool) -> bool:
        """Import what may define `name`, lazily: its own entry point, else the module entry
        points (imported for the names they register), else, with `rescan`, the same after
        reading the installed entry points again."""
        for fresh in (False, True) if rescan else (False,):
            eps = self._scan() if fresh or self._eps is None else self._eps
            if name in eps:
                self._load(eps[name])
            for ep in sorted(eps.values(), key=lambda e: e.name):
                if name in self._items:
                    return True
                if ep.attr is None:  # a module: what it registers has names of its own
                    self._load(ep)
            if name in self._items:
                return True
        return False

    def load_entry_points(self) -> None:
        """Import every entry point of this group not loaded yet (reading them again)."""
        for ep in sorted(self._scan().values(), key=lambda e: e.name):
            self._load(ep)

    def get(self, name: str) -> T:
        if name not in self._items and not self._find(name, rescan=True):
            raise GenbenchError(unknown(self.kind, name, self.names())
                                + f" (one of your own: @register it in the study file, name its "
                                f"module in Study(imports=...), or install a package declaring "
                                f"it under the {self.group!r} entry point)")
        return self._items[name]

    def __contains__(self, name: str) -> bool:
        return name in self._items or self._find(name, rescan=False)

    def names(self) -> list[str]:
        """Every name, without importing what the entry points of objects name (`genbench
        list` loads no method); module entry points are imported for what they register."""
        eps = self._scan()
        for ep in sorted(eps.values(), key=lambda e: e.name):
            if ep.attr is None:
                self._load(ep)
        return sorted(set(self._items) | {n for n, ep in eps.items() if ep.attr is not None})

    def items(self) -> list[tuple[str, T]]:
        self.load_entry_points()
        return sorted(self._items.items())


def import_code(refs: tuple[str, ...] | list[str]) -> None:
    """Import what a plan needs beyond the installed entry points: module names
    (`my_lab.methods`) and study files (`path:/abs/study.py`), in every process that runs a
    trial, before methods are looked up. A study file's folder is importable first, as
    `python study.py` makes it, so that the modules it names may lie beside it."""
    for ref in refs:
        if ref.startswith("path:"):
            importable(Path(ref.removeprefix("path:")).parent)
    for ref in refs:
        if ref.startswith("path:"):
            exec_file(Path(ref.removeprefix("path:")))
        else:
            try:
                importlib.import_module(ref)
            except Exception as err:
                raise GenbenchError(f"cannot import {ref!r} named by the study: "
                                    f"{type(err).__name__}: {first_line(err)}") from None


def importable(folder: Path) -> None:
    """Put `folder` first on `sys.path` (once), as Python does for the folder of the script it
    runs: a study file imports the helpers and packages that lie beside it, in the driver and
    in every worker that executes it."""
    folder = str(folder)
    if folder not in sys.path:
        sys.path.insert(0, folder)
        importlib.invalidate_caches()


def exec_file(path: Path) -> Any:
    """Execute a Python file as module `_genbench_study_<stem>` (re-executing it is harmless:
    its registrations replace themselves), with its folder importable (`importable`). Errors
    become one line naming the file."""
    importable(path.parent)
    name = f"_genbench_study_{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise GenbenchError(f"{path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except SyntaxError as err:
        sys.modules.pop(name, None)
        raise GenbenchError(f"{path}:{err.lineno}: syntax error: {err.msg}") from None
    except GenbenchError as err:
        sys.modules.pop(name, None)
        raise GenbenchError(f"{path}: {first_line(err)}") from None
    except (Exception, SystemExit) as err:  # a file that calls sys.exit() is not a study either
        sys.modules.pop(name, None)
        tb = err.__traceback__
        line = None
        while tb is not None:  # the innermost frame inside the study file
            if tb.tb_frame.f_code.co_filename == str(path):
                line = tb.tb_lineno
            tb = tb.tb_next
        where = f"{path}:{line}" if line else str(path)
        raise GenbenchError(f"{where}: {type(err).__name__}: {first_line(err)}") from None
    return module
