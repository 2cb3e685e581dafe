"""`mmoe-np docs-figures` redraws every figure of docs/ with the package's own plotting code: the files it writes, their
pixel sizes, the numbers the softmax figure shares with the text, and its errors."""
import re
import struct
from pathlib import Path

import numpy as np
import pytest

from mmoe_np import cli
from mmoe_np.experiments import figures

DOCS = Path(__file__).resolve().parents[1] / "docs"
SIZES = {"mmoe-graph.png": (1200, 1230), "three-models.png": (1200, 810), "softmax-vjp.png": (1200, 960)}


def png_size(path: Path) -> tuple[int, int]:
    """(width, height) from a PNG's header, checking that it is one."""
    head = path.read_bytes()[:24]
    assert head[:8] == b"\x89PNG\r\n\x1a\n" and head[12:16] == b"IHDR", f"{path.name} is not a PNG"
    return struct.unpack(">II", head[16:24])


def test_the_command_writes_every_docs_figure(tmp_path, capsys):
    out = tmp_path / "new" / "figures"  # created if missing
    assert cli.main(["docs-figures", "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == sorted(figures.DOCS_FIGURES) == sorted(SIZES)
    for name, size in SIZES.items():
        path = out / name
        assert path.stat().st_size > 20_000, name  # drawn, not blank
        assert png_size(path) == size, name       # 8 in wide at 150 dpi: ~800 px in a README keeps 9 pt legible
        assert str(path) in printed


def test_the_committed_figures_are_the_ones_docs_links(tmp_path):
    linked = set()
    for page in DOCS.glob("*.md"):
        linked |= set(re.findall(r"\]\(figures/([^)]+)\)", page.read_text(encoding="utf-8")))
    assert linked == set(figures.DOCS_FIGURES)
    for name in figures.DOCS_FIGURES:
        assert png_size(DOCS / "figures" / name) == SIZES[name], name


def test_the_softmax_figure_draws_the_numbers_of_the_tutorial_and_of_backprop_md():
    s, dg = figures.SOFTMAX_LOGITS, figures.SOFTMAX_UPSTREAM
    tutorial = (DOCS / "tutorial.md").read_text(encoding="utf-8")
    assert f"s = np.array([{', '.join(map(str, s))}])" in tutorial
    assert f"dg = np.array([{', '.join(map(str, dg))}])" in tutorial
    backprop = " ".join((DOCS / "backprop.md").read_text(encoding="utf-8").split())
    assert f"logits `({', '.join(f'{v:g}' for v in s)})`" in backprop
    assert f"`dg` = `({', '.join(f'{v:g}' for v in dg)})`" in backprop
    g = np.exp(s) / np.exp(s).sum()
    assert abs(np.sum(g * (np.asarray(dg) - np.dot(dg, g)))) < 1e-15  # the figure's "sums to 0"


@pytest.mark.parametrize("logits, upstream", [((1.0, 0.0), (0.1, 0.2, 0.3)), ((1.0, 0.0, -1.0), (0.1, 0.2))])
def test_the_softmax_figure_needs_three_experts(logits, upstream, tmp_path):
    with pytest.raises(ValueError, match="logits and upstream must have 3 entries"):
        figures.draw_softmax_vjp(tmp_path / "f.png", logits, upstream)
    assert not list(tmp_path.iterdir())


def test_an_out_that_is_a_file_is_an_error_naming_the_flag(tmp_path, capsys):
    taken = tmp_path / "taken"
    taken.write_text("not a folder")
    assert cli.main(["docs-figures", "--out", str(taken)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("mmoe-np docs-figures: error: --out") and "Traceback" not in err
