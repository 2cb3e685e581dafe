"""The examples run as written (they contain their own assertions) and say what they claim to."""
import runpy
from pathlib import Path

import pytest

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def test_backprop_by_hand_agrees_with_the_model(capsys):
    runpy.run_path(str(EXAMPLES / "backprop_by_hand.py"), run_name="__main__")
    out = capsys.readouterr().out
    assert "loss, all 8 parameter gradients and dX agree" in out


def test_quickstart_trains(capsys):
    runpy.run_path(str(EXAMPLES / "quickstart.py"), run_name="__main__")
    out = capsys.readouterr().out
    accuracy = float(out.split("binary task accuracy:")[1].split()[0])
    assert accuracy > 0.9
    auc = float(out.split("binary task AUC:")[1].split()[0])
    assert 0.95 < auc <= 1
    assert "task 2 mean gate weights" in out


@pytest.mark.parametrize("path", sorted(EXAMPLES.glob("*.py")), ids=lambda p: p.name)
def test_every_example_is_tested(path):
    # tested here, or by a test file of its own that runs it by name (e.g. test_verify_example.py)
    tests = [t for t in Path(__file__).parent.glob("test_*.py") if t.name != Path(__file__).name]
    assert path.name in {"backprop_by_hand.py", "quickstart.py"} or any(path.name in t.read_text() for t in tests), \
        f"add a test for {path.name}"


def test_readme_python_snippet_runs_as_written(capsys):
    readme = (EXAMPLES.parent / "README.md").read_text()
    snippet = readme.split("```python\n", 1)[1].split("```", 1)[0]
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    out = capsys.readouterr().out
    assert "max rel. error" in out and "FAILS" not in out  # the printed gradient report
    assert namespace["gates"].shape == (1000, 2, 8) and namespace["out"].shape == (1000, 2)
    assert set(namespace["grads"]) == set(namespace["model"].params)
