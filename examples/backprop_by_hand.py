"""One MMoE training step, op by op: the forward pass, the backward pass, and a check against the model.

Run it with ``python examples/backprop_by_hand.py``. Every line below is a call to a pure op of ``mmoe_np.ops``;
``docs/backprop.md`` derives each backward pass. The printed shapes follow the data through the network:
B samples, d features, E experts, K tasks, h expert width, t tower width. Every backward op computes a
vector-Jacobian product (VJP): the upstream gradient times its op's Jacobian, without ever building the Jacobian.
For the same pass with every value and gradient as a number, on a model small enough for pencil and paper, see
``examples/worked_example.py`` and ``docs/worked-example.md``.
"""
import numpy as np

import mmoe_np as mn
from mmoe_np import ops

B, d, E, K, h, t = 6, 5, 3, 2, 4, 3
rng = np.random.default_rng(0)
X = rng.standard_normal((B, d))
Y = np.column_stack([rng.standard_normal(B), rng.integers(0, 2, B)]).astype(float)  # a regression and a binary task
model = mn.MMoE(d, ("regression", "binary"), n_experts=E, expert_units=(h,), tower_units=(t,), seed=0)
p = model.params


def show(name: str, a: np.ndarray) -> None:
    print(f"  {name:<34} {str(a.shape):<14}")


print("forward")
x = X[None]                                                                 # (1, B, d): one input for every expert
f, expert_cache = ops.mlp_forward(x, [(p["experts.0.W"], p["experts.0.b"])], relu_last=True)
show("experts f = relu(x W_e + b_e)", f)                                  # (E, B, h): all experts in one matmul
g, gate_cache = ops.gate_forward(x, p["gates.W"], p["gates.b"])
show("gates g = softmax(x W_k + b_k)", g)                                 # (K, B, E): all gates in one matmul
m, mixture_cache = ops.mixture_forward(g, f)
show("mixtures m_k = sum_e g_ke f_e", m)                                  # (K, B, h): one mixture per task
towers = [(p["towers.0.W"], p["towers.0.b"]), (p["towers.1.W"], p["towers.1.b"])]  # (K, ...): one per task
out, tower_cache = ops.towers_forward(m, towers)
show("outputs y_k = h^k(m_k)", out)                                       # (B, K): tower k's output in column k
(loss, per_task), loss_cache = ops.multitask_loss_forward(out, Y, model.tasks, model.task_weights)
print(f"  loss = MSE + BCE = {per_task[0]:.4f} + {per_task[1]:.4f} = {loss:.4f}")

print("backward (the same ops, in reverse)")
dout = ops.multitask_loss_backward(np.ones(()), loss_cache)              # dL/dout: 2 (y - t) / B and (s(z) - t) / B
dm, tower_grads = ops.towers_backward(dout, tower_cache)
show("dm  (from the towers)", dm)
dg, df = ops.mixture_backward(dm, mixture_cache)
show("dg = dm f^T  (per sample)", dg)
show("df = sum_k g_k^T dm_k  (all tasks)", df)
dx_gates, dWg, dbg = ops.gate_backward(dg, gate_cache)                    # the softmax VJP g * (dg - <dg, g>),
#                                                                           then the gate's dense layer
dx_experts, expert_grads = ops.mlp_backward(df, expert_cache)
dX = (dx_experts + dx_gates)[0]                                           # x feeds experts and gates: add
show("dX = dX_experts + dX_gates", dX)

grads = {"experts.0.W": expert_grads[0][0], "experts.0.b": expert_grads[0][1], "gates.W": dWg, "gates.b": dbg,
         "towers.0.W": tower_grads[0][0], "towers.0.b": tower_grads[0][1],
         "towers.1.W": tower_grads[1][0], "towers.1.b": tower_grads[1][1]}

print("the model computes the same thing")
model_loss, model_grads, model_dX = model.loss_and_grads(X, Y, input_grad=True)
assert np.isclose(model_loss, loss)
for name in model_grads:
    assert np.allclose(model_grads[name], grads[name], rtol=1e-12, atol=1e-15), name
assert np.allclose(model_dX, dX, rtol=1e-12, atol=1e-15)
print("  loss, all", len(grads), "parameter gradients and dX agree")

print("and central differences agree with both")
report = mn.check_gradients(model, X, Y)
print("\n".join("  " + line for line in str(report).splitlines()))
assert report.passed(1e-6)
