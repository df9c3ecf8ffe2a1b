"""benchmarks/readme_figures.py: the README's quickstart figure and quoted claim lines come from
a run's tables (here the regression baseline's, which has fid_domain, NFE and claims)."""

import importlib.util
from pathlib import Path

from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "benchmarks" / "baselines" / "regression"


def _script():
    spec = importlib.util.spec_from_file_location("readme_figures", ROOT / "benchmarks" / "readme_figures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_figure_and_the_claim_lines_come_from_the_run(tmp_path, capsys):
    script = _script()
    assert script.main([str(BASELINE), "--img", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = [x for x in out.splitlines() if x.startswith("claim ")]
    assert lines == script.claim_lines(BASELINE) and len(lines) == 2
    assert lines[0].startswith("claim reproduced    nfe: ddpm: sampler=ddim, steps=20 better")
    with Image.open(tmp_path / script.FIGURE) as im:
        im.verify()
    readme = tmp_path / "README.md"
    readme.write_text("intro\n" + "\n".join(lines) + "\n")
    assert script.main([str(BASELINE), "--check", "--readme", str(readme)]) == 0
    readme.write_text(lines[0].replace("p=0", "p=0.5") + "\n")  # a line typed, not made
    assert script.main([str(BASELINE), "--check", "--readme", str(readme)]) == 1
    assert "the README quotes a line this run does not give" in capsys.readouterr().err
