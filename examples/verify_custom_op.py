"""Verify a backward pass you wrote yourself: a gated linear unit (GLU), checked with mmoe_np.testing.

A GLU (Dauphin et al., 2017) gates a linear map with a sigmoid of another one:

    h = a * s,    a = x W + b,    s = sigmoid(x V + c)

    x (B, d), W and V (d, k), b and c (k,)  ->  h (B, k)

Backward, for an upstream gradient dh (B, k), by the chain rule:

    da = dh * s                      (h = a * s, so dh/da = s)
    dg = dh * a * s * (1 - s)        (g = x V + c is the gate's pre-activation; sigmoid' = s (1 - s))
    dx = da W^T + dg V^T             (x feeds both branches: the gradients add)
    dW = x^T da,  db = sum_B da,  dV = x^T dg,  dc = sum_B dg

The op is written as the package's ops are: ``forward(...) -> (out, cache)`` and ``backward(dout, cache) -> grads``.
Run: ``python examples/verify_custom_op.py``.
"""
import numpy as np

from mmoe_np import ops
from mmoe_np import testing as T


def glu_forward(x, W, b, V, c):
    a = x @ W + b
    s = ops.sigmoid(x @ V + c)
    return a * s, (x, W, V, a, s)


def glu_backward(dh, cache):
    x, W, V, a, s = cache
    da = dh * s
    dg = dh * a * s * (1 - s)
    dx = da @ W.T + dg @ V.T
    return dx, x.T @ da, da.sum(axis=0), x.T @ dg, dg.sum(axis=0)


def glu_backward_with_a_bug(dh, cache):
    """The planted bug: the gate's gradient forgets the sigmoid's slope s (1 - s)."""
    x, W, V, a, s = cache
    da = dh * s
    dg = dh * a  # should be dh * a * s * (1 - s)
    dx = da @ W.T + dg @ V.T
    return dx, x.T @ da, da.sum(axis=0), x.T @ dg, dg.sum(axis=0)


def glu_inputs(B, d, k, seed):
    rng = np.random.default_rng(seed)
    return {"x": rng.standard_normal((B, d)), "W": rng.standard_normal((d, k)), "b": rng.standard_normal(k),
            "V": rng.standard_normal((d, k)), "c": rng.standard_normal(k)}


GLU = (glu_forward, glu_backward)

if __name__ == "__main__":
    print("1. the GLU's backward against central differences, every entry of every input")
    report = T.assert_gradients_close(GLU, glu_inputs(B=5, d=4, k=3, seed=0))
    print("\n".join("   " + line for line in str(report).splitlines()))

    print("2. the fast mode (random directions, two forward passes each) on a larger GLU")
    report = T.assert_gradients_close(GLU, glu_inputs(B=64, d=100, k=50, seed=1), fast=True)
    print("   " + str(report).splitlines()[-1])

    print("3. a property test over shapes and seeds (hypothesis, if installed)")
    try:
        from hypothesis import given, settings
        from hypothesis import strategies as st
    except ImportError:
        print("   skipped: pip install mmoe-np[test] to run it")
    else:
        dims = st.integers(1, 4)

        @settings(max_examples=25, deadline=None, derandomize=True)
        @given(B=dims, d=dims, k=dims, data=st.data())
        def glu_gradients_match(B, d, k, data):
            inputs = data.draw(T.op_inputs({"x": (B, d), "W": (d, k), "b": (k,), "V": (d, k), "c": (k,)}))
            T.assert_gradients_close(GLU, inputs)

        glu_gradients_match()
        print("   25 drawn shapes and seeds: all pass")

    print("4. the same check on the planted bug (the gate forgets sigmoid's slope):")
    try:
        T.assert_gradients_close((glu_forward, glu_backward_with_a_bug), glu_inputs(B=5, d=4, k=3, seed=0))
    except AssertionError as failure:
        print("\n".join("   " + line for line in str(failure).splitlines()))
    else:
        raise SystemExit("the planted bug was not caught")
