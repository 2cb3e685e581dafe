"""examples/verify_custom_op.py runs as written: a user's GLU passes every check, and its planted bug fails with the
readable message docs/gradient-testing.md shows."""
import runpy
from pathlib import Path

import numpy as np
import pytest

from mmoe_np import testing as T

EXAMPLE = Path(__file__).resolve().parents[1] / "examples" / "verify_custom_op.py"


def test_the_example_verifies_the_glu_and_shows_the_planted_bug(capsys):
    runpy.run_path(str(EXAMPLE), run_name="__main__")
    out = capsys.readouterr().out
    passing, failing = out.split("4. the same check on the planted bug")
    assert passing.count("PASS: max rel. error") == 2 and "FAIL" not in passing
    assert "25 drawn shapes and seeds: all pass" in passing
    assert "gradients of op glu_forward/glu_backward_with_a_bug do not match central differences" in failing
    assert "FAIL: 3 of 5 arrays (x, V, c)" in failing  # the gate's slope reaches dV, dc and (through V) dx
    for name in ("x", "V", "c"):
        assert f"     {name}[" in failing and "analytic " in failing and "numeric " in failing
    assert "ReLU" not in out  # a GLU has no ReLU: no kink line


def test_the_examples_glu_is_right_and_its_bug_is_wrong_by_hand():
    glu = runpy.run_path(str(EXAMPLE))  # not as __main__: just the functions
    inputs = glu["glu_inputs"](3, 2, 2, 5)
    h, cache = glu["glu_forward"](**inputs)
    x, W, b, V, c = (inputs[k] for k in "xWbVc")
    np.testing.assert_allclose(h, (x @ W + b) / (1 + np.exp(-(x @ V + c))), rtol=1e-12)
    dh = np.ones_like(h)
    right, wrong = glu["glu_backward"](dh, cache), glu["glu_backward_with_a_bug"](dh, cache)
    for name, r, w in zip("xWbVc", right, wrong):  # only the gate's side (V, c and x through V) differs
        assert np.allclose(r, w) == (name in "Wb"), name
    with pytest.raises(AssertionError, match=r"FAIL: 3 of 5 arrays \(x, V, c\)"):
        T.assert_gradients_close((glu["glu_forward"], glu["glu_backward_with_a_bug"]), inputs)
