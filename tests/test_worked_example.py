"""examples/worked_example.py and docs/worked-example.md: the hand formulas give the model's numbers, and the page
shows exactly the tables the script prints (so no number on it can drift from the code)."""
import runpy
import shutil
from pathlib import Path

import numpy as np
import pytest

from test_tutorial import run_markdown

ROOT = Path(__file__).resolve().parents[1]
EXAMPLE = ROOT / "examples" / "worked_example.py"
PAGE = ROOT / "docs" / "worked-example.md"


@pytest.fixture(scope="module")
def example():
    return runpy.run_path(str(EXAMPLE))  # not as __main__: the functions and constants


def test_the_example_runs_checks_itself_and_passes_the_gradient_check(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    assert "all 6 parameter gradients and dX agree" in out
    assert "PASS: max rel. error" in out and "FAIL" not in out
    assert "smallest |ReLU input| 1.000e-01" in out  # z_1[2] = -0.1: no step of 1e-5 crosses a kink


def test_the_page_shows_the_tables_the_example_prints(example):
    stages, _ = example["by_hand"](example["build_model"](), example["X"], example["Y"])
    tables = example["markdown"](stages)
    shown = example["tables_in"](PAGE.read_text(encoding="utf-8"))
    assert list(shown) == [str(n) for n in range(1, 9)]
    for stage, table in tables.items():
        assert shown[stage] == table, (f"docs/worked-example.md, stage {stage}, is out of date; run python "
                                       f"examples/worked_example.py --update docs/worked-example.md")


def test_the_hand_formulas_give_the_models_outputs_and_gradients(example):
    model = example["build_model"]()
    X, Y = example["X"], example["Y"]
    stages, grads = example["by_hand"](model, X, Y)
    values = {row.symbol: row.value for rows in stages.values() for row in rows}
    np.testing.assert_allclose([values["y_1"], values["y_2"]], model.forward(X)[0], rtol=1e-12)
    np.testing.assert_allclose(np.stack([values["g_1"], values["g_2"]]), model.gate_weights(X)[0], rtol=1e-12)
    loss, task_losses = model.losses(X, Y)
    np.testing.assert_allclose([values["L"], values["L_1"], values["L_2"]], [loss, *task_losses], rtol=1e-12)
    model_loss, model_grads, dX = model.loss_and_grads(X, Y, input_grad=True)
    assert set(grads) == set(model_grads) | {"X"}
    for name, grad in {**model_grads, "X": dX}.items():
        np.testing.assert_allclose(grads[name], grad, rtol=1e-12, atol=1e-15, err_msg=name)
    # what the page's prose says about these numbers
    assert values["z_1"][1] < 0 and np.all(grads["experts.0.W"][0][:, 1] == 0)  # a dead unit gets no gradient
    for k in (1, 2):
        assert abs(values[f"ds_{k}"].sum()) < 1e-15  # a softmax VJP sums to zero
    central = values["(L(+h) - L(-h)) / 2h"]
    assert abs(central - values["dc_1"][1]) < 1e-6  # central differences agree with the hand gradient
    assert round(float(central), 4) == round(float(values["dc_1"][1]), 4)  # to every digit the page shows


def test_the_weights_are_short_decimals_and_the_page_uses_them(example):
    for key, value in example["WEIGHTS"].items():
        assert np.array_equal(np.round(value, 1), value), key
    ns = run_markdown(PAGE)  # runs the page's code blocks and compares the output block under them
    model = example["build_model"]()
    for key in model.params:
        np.testing.assert_array_equal(ns["model"].params[key], model.params[key], err_msg=key)
    np.testing.assert_array_equal(ns["X"], example["X"])
    np.testing.assert_array_equal(ns["Y"], example["Y"])


def test_update_rewrites_a_stale_table_and_refuses_a_page_without_markers(example, tmp_path):
    stale = tmp_path / "page.md"
    shutil.copy(PAGE, stale)
    text = stale.read_text(encoding="utf-8")
    stale.write_text(text.replace("`[0.5498, 0.4502]`", "`[0.55, 0.45]`"), encoding="utf-8")
    stages, _ = example["by_hand"](example["build_model"](), example["X"], example["Y"])
    tables = example["markdown"](stages)
    assert example["update"](stale, tables) is True
    assert stale.read_text(encoding="utf-8") == text
    assert example["update"](stale, tables) is False
    bare = tmp_path / "bare.md"
    bare.write_text("# no tables here\n", encoding="utf-8")
    with pytest.raises(ValueError, match=r"bare.md: no marker for stage\(s\) \['1'"):
        example["update"](bare, tables)
