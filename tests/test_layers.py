"""The layers of docs/architecture.md, enforced: methods never reach the Ray layer, reports never
need torch or the methods, and the engine knows methods only through the registry."""

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

# package -> module prefixes that no file in it may import (anywhere, functions included)
FORBIDDEN = {
    "methods": ("ray", "harness.runner", "harness.trial", "harness.ledger"),
    "reports": ("torch", "methods"),
    "harness": ("methods",),
}


def imports_of(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{a.name}" for a in node.names)
    return names


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_layers(package):
    files = sorted((ROOT / package).rglob("*.py"))
    assert files, package
    for f in files:
        for name in imports_of(f):
            for bad in FORBIDDEN[package]:
                assert name != bad and not name.startswith(bad + "."), \
                    f"{f.relative_to(ROOT)} imports {name} ({package}/ must not import {bad})"


def test_the_checker_sees_imports_inside_functions(tmp_path):
    f = tmp_path / "m.py"
    f.write_text("def g():\n    from ray import tune\n    import harness.runner\n")
    assert {"ray", "ray.tune", "harness.runner"} <= imports_of(f)
