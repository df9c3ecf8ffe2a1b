"""The rooms of docs/architecture.md and the rules between them, enforced on the source: one
import namespace; methods never reach the run layer; reports never need torch or the methods;
only the Tune adapter imports Ray Tune; the engine's imports form no circle."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
OLD_TOP_LEVEL = ("harness", "methods", "studies", "reports")  # only genbench.* is installed

# package -> the genbench modules its files may import (prefixes); anything else of genbench's
# is a layer violation
ALLOWED = {
    "methods": ("genbench.methods", "genbench.harness.method", "genbench.harness.config",
                "genbench.harness.seeding", "genbench.harness.errors", "genbench.harness.mixture"),
    "reports": ("genbench.reports", "genbench.harness.store", "genbench.harness.verdicts",
                "genbench.harness.plan.plan", "genbench.harness.metrics",
                "genbench.harness.config", "genbench.harness.errors"),
    "studies": ("genbench.studies", "genbench"),  # the facade: `from genbench import Study`
    # the groups of the engine (docs/architecture.md): store is the floor, verdicts read tables
    "harness/store": ("genbench.harness.store", "genbench.harness.config", "genbench.harness.errors",
                      "genbench.harness.metrics"),
    "harness/verdicts": ("genbench.harness.verdicts", "genbench.harness.store",
                         "genbench.harness.metrics", "genbench.harness.config",
                         "genbench.harness.errors"),
}
# package -> module prefixes no file in it may import (anywhere, functions included)
FORBIDDEN = {
    "methods": ("ray",),
    "reports": ("torch",),
    "harness": ("genbench.methods",),  # found through the registry (studies: by package, by name)
    "harness/verdicts": ("torch", "ray"),  # statistics over tables, on any laptop
    "harness/plan": ("genbench.harness.run", "ray"),  # a plan resolves before anything runs
    # the registry of metrics sits below the verdicts that read its scales and directions
    "harness/metrics": ("genbench.harness.verdicts", "genbench.harness.run", "genbench.harness.plan",
                        "genbench.reports"),
}
TUNE_ADAPTER = "harness/run/tune.py"


def imports_of(path: Path, *, top_level_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in (tree.body if top_level_only else ast.walk(tree)):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


def _module(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(("genbench", *parts[:-1], *([] if parts[-1] == "__init__" else parts[-1:])))


def _under(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


@pytest.mark.parametrize("package", sorted(set(ALLOWED) | set(FORBIDDEN)))
def test_layers(package):
    files = sorted((ROOT / package).rglob("*.py"))
    if package == "harness":  # (the engine as a whole; its groups have rules of their own)
        files = [f for f in files if "zoo" not in f.parts]
    assert files, package
    for f in files:
        for name in imports_of(f):
            for bad in FORBIDDEN.get(package, ()):
                assert not _under(name, bad), \
                    f"{f.relative_to(ROOT)} imports {name} ({package}/ must not import {bad})"
            if package in ALLOWED and _under(name, "genbench"):
                ok = ALLOWED[package]
                assert any(_under(name, a) if a != "genbench" else name in ("genbench", *(
                    f"genbench.{n}" for n in _facade_names())) for a in ok), \
                    f"{f.relative_to(ROOT)} imports {name}: {package}/ imports only {', '.join(ok)}"


def _facade_names() -> list[str]:
    import genbench

    return list(genbench.__all__)


def test_only_the_tune_adapter_imports_ray_tune():
    for f in sorted((ROOT / "harness").rglob("*.py")):
        if f.relative_to(ROOT).as_posix() == TUNE_ADAPTER:
            assert "ray.tune" in imports_of(f)
            continue
        hits = [n for n in imports_of(f) if _under(n, "ray.tune")]
        assert not hits, f"{f.relative_to(ROOT)} imports {hits[0]}: only {TUNE_ADAPTER} may"


def test_the_command_line_prints_what_the_api_does():
    """cli.py is argparse and printing over genbench.harness.api: no resolution, run, verdict or
    report logic of its own (what it may import besides the API: formatting helpers and the
    registries `genbench list` and `genbench assets` print)."""
    printing = ("genbench.harness.api", "genbench.harness.errors", "genbench.harness.config",
                "genbench.harness.plan.packing.effective", "genbench.harness.run.progress.duration_text",
                "genbench.harness.data", "genbench.harness.method", "genbench.harness.metrics",
                "genbench.harness.plan.study.study_names", "genbench.harness.plan.study.load_study",
                "genbench.harness.store.zoo")
    names = {n for n in imports_of(ROOT / "harness" / "cli.py") if _under(n, "genbench")}
    modules = {n for n in names if not any(_under(m, n) and m != n for m in names)}  # (leaves)
    bad = sorted(n for n in modules if n not in ("genbench", "genbench.__version__")
                 and not any(_under(n, ok) for ok in printing))
    assert not bad, f"cli.py imports {bad}: behaviour belongs in genbench.harness.api"


def test_the_engine_imports_form_no_circle():
    """Module-level imports of genbench.harness form a DAG, and no import inside a function
    points back to a module that imports the importer (a circle hidden from the interpreter)."""
    files = {_module(f): f for f in (ROOT / "harness").rglob("*.py")}
    graph = {}
    for mod, f in files.items():
        edges = {n for n in imports_of(f) if n in files and n != mod}
        for n in edges - imports_of(f, top_level_only=True):  # imports inside functions
            assert not _reaches(files, n, mod), \
                f"{mod} imports {n} inside a function, and {n} imports {mod}: a hidden circle"
        graph[mod] = {n for n in imports_of(f, top_level_only=True) if n in files and n != mod}
    state: dict[str, int] = {}

    def visit(m, path):
        state[m] = 1
        for n in graph[m]:
            assert state.get(n) != 1, f"import circle: {' -> '.join([*path, n])}"
            if n not in state:
                visit(n, [*path, n])
        state[m] = 2

    for m in graph:
        if m not in state:
            visit(m, [m])


def _reaches(files: dict[str, Path], start: str, goal: str) -> bool:
    seen, todo = set(), [start]
    while todo:
        m = todo.pop()
        if m == goal:
            return True
        if m in seen:
            continue
        seen.add(m)
        todo += [n for n in imports_of(files[m]) if n in files]
    return False


def test_everything_imports_through_the_genbench_namespace():
    for f in sorted(p for d in (*OLD_TOP_LEVEL, "tests", "benchmarks") for p in (ROOT / d).rglob("*.py")):
        for name in imports_of(f):
            assert name.split(".")[0] not in OLD_TOP_LEVEL, \
                f"{f.relative_to(ROOT)} imports {name}: installed, it is genbench.{name}"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from ray import tune\n    import genbench.harness.run.tune\n")
    assert {"ray", "ray.tune", "genbench.harness.run.tune"} <= imports_of(f)
    assert imports_of(f, top_level_only=True) == set()
