"""genbench as a user installs it: the wheel, in a fresh virtual environment, used from a project
that has its own `methods/` and `reports/` packages (names genbench's folders once took at the
top level of site-packages), with a plugin package declaring a method by entry point and a
study file defining another against the facade. Nothing is installed into the environment
under test: the fresh one borrows its dependencies (torch, Ray, ...) through a path file."""

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import venv
from pathlib import Path

import pytest

from userland import MEAN_IMAGE

pytestmark = pytest.mark.system
ROOT = Path(__file__).resolve().parent.parent
SHIPPED = ("harness", "methods", "studies", "reports", "__init__.py", "__main__.py", "pyproject.toml",
           "README.md")


def _run(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, timeout=kw.pop("timeout", 300), **kw)


@pytest.fixture(scope="module")
def fresh_env(tmp_path_factory):
    """A new venv with genbench's wheel and a plugin package installed, or a one-line skip
    where this machine cannot build one."""
    tmp = tmp_path_factory.mktemp("install")
    src = tmp / "src"
    src.mkdir()
    for name in SHIPPED:  # a copy: building writes build/ and *.egg-info beside the sources
        (shutil.copytree if (ROOT / name).is_dir() else shutil.copy)(
            ROOT / name, src / name, **({"ignore": shutil.ignore_patterns("__pycache__")}
                                        if (ROOT / name).is_dir() else {}))
    wheels = tmp / "wheels"
    built = _run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation",
                  "-w", str(wheels), str(src)])
    if built.returncode != 0:
        pytest.skip(f"cannot build genbench's wheel here: {built.stderr.strip().splitlines()[-1:]}")
    env_dir = tmp / "venv"
    try:
        venv.create(env_dir, with_pip=False)
    except Exception as err:  # noqa: BLE001 - any reason is a reason to skip
        pytest.skip(f"cannot create a virtual environment here: {err}")
    python = env_dir / "bin" / "python"
    site = Path(_run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"])
                .stdout.strip())
    # dependencies from the environment under test, after the fresh one's own site-packages
    (site / "zz_dependencies.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    pkg = tmp / "plugin"
    (pkg / "lab_plugin").mkdir(parents=True)
    (pkg / "lab_plugin" / "__init__.py").write_text(MEAN_IMAGE.format(name="plugin_mean"))
    (pkg / "pyproject.toml").write_text(textwrap.dedent("""
        [build-system]
        requires = ["setuptools>=68"]
        build-backend = "setuptools.build_meta"
        [project]
        name = "lab-plugin"
        version = "0.1"
        [project.entry-points."genbench.methods"]
        plugin_mean = "lab_plugin:MeanImage"
    """))
    wheel = next(wheels.glob("genbench-*.whl"))
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "-q", "install", "--no-deps",
           "--no-build-isolation", "--no-index"]
    for what in (str(wheel), str(pkg)):
        done = _run([*pip, what])
        if done.returncode != 0:
            pytest.skip(f"cannot install {Path(what).name} into a fresh venv: "
                        f"{done.stderr.strip().splitlines()[-1:]}")
    return env_dir


@pytest.fixture
def user_project(tmp_path):
    """A project with packages named like genbench's folders, each failing when imported."""
    for name in ("methods", "reports", "harness", "studies"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text(
            f"raise ImportError('the project\\'s own {name}/ was imported in place of genbench\\'s')\n")
    (tmp_path / "mine.py").write_text(MEAN_IMAGE.format(name="mine_mean") + textwrap.dedent("""
        from genbench import Claim, Scale, Study
        STUDY = Study(name="mine", data="mnist5k", seeds=(0,),
                      arms=(Arm("own", "mine_mean", sample_grid={"noise": [0.1, 0.5]}),
                            Arm("plugin", "plugin_mean")),
                      metrics=("fid_domain",),
                      scales={"smoke": Scale(budget_steps=2, n_samples=32, log_every=1)})
    """).replace("from genbench import Claim, Scale, Study", "from genbench import Arm, Scale, Study"))
    return tmp_path


def test_only_the_genbench_namespace_is_installed(fresh_env):
    site = Path(_run([str(fresh_env / "bin" / "python"), "-c",
                      "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    record = next(site.glob("genbench-*.dist-info")) / "RECORD"
    tops = {line.split("/")[0].split(",")[0] for line in record.read_text().splitlines()
            if not line.startswith("../")}  # (the console script, in the venv's bin/)
    assert tops == {"genbench", next(site.glob("genbench-*.dist-info")).name}, tops
    assert (site / "genbench" / "harness" / "metrics" / "weights").is_dir()  # the shipped extractor


def test_a_user_project_with_its_own_methods_and_reports_runs_a_study(fresh_env, user_project):
    bin_ = fresh_env / "bin"
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    version = _run([str(bin_ / "genbench"), "--version"], cwd=user_project, env=env)
    assert version.returncode == 0 and version.stdout.strip() == "genbench 0.1.0", version.stderr
    bare = _run([str(bin_ / "python"), "-m", "genbench"], cwd=user_project, env=env)
    assert bare.returncode == 0 and "usage: genbench" in bare.stdout and "run" in bare.stdout
    run = _run([str(bin_ / "genbench"), "run", "mine.py", "--out", "out", "--no-report"],
               cwd=user_project, env=env, timeout=600)
    assert run.returncode == 0, run.stdout[-1500:] + run.stderr[-1500:]
    probe = _run([str(bin_ / "python"), "-c", textwrap.dedent("""
        import json, genbench
        from genbench.harness.method import get_method
        rows = genbench.load("out")
        print(json.dumps({"file": genbench.__file__, "arms": sorted(set(rows.arm)),
                          "fid": int((rows.metric == "fid_domain").sum()),
                          "shipped": get_method("ddpm").__module__}))
    """)], cwd=user_project, env=env)
    assert probe.returncode == 0, probe.stderr[-1500:]
    got = json.loads(probe.stdout)
    assert got["file"].startswith(str(fresh_env))  # the wheel's genbench, not the checkout's
    assert got["arms"] == ["own", "plugin", "real"]  # (the real-data floor beside the two)
    assert got["fid"] == 3 + 1
    assert got["shipped"] == "genbench.methods.ddpm"  # the wheel's methods, beside the plugin's
