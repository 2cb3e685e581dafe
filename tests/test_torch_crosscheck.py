"""Optional cross-check against PyTorch autograd: the same weights must give the same outputs, loss and gradients.

Skipped when torch is not installed (it is not a dependency; ``pip install torch==2.13.0`` to run these).
The PyTorch side is written independently from the paper's equations, with explicit loops over experts and tasks.
"""
import numpy as np
import pytest

import mmoe_np as mn
from modelcheck import data, jitter

torch = pytest.importorskip("torch")
F = torch.nn.functional


def t(a):
    return torch.tensor(np.asarray(a), dtype=torch.float64, requires_grad=True)


def mlp(x, layers, relu_last):
    for i, (W, b) in enumerate(layers):
        x = x @ W + b
        if relu_last or i < len(layers) - 1:
            x = torch.relu(x)
    return x


def torch_loss(model, X, Y):
    """The loss of ``model`` recomputed with autograd tensors; returns (loss, {name: tensor}, X tensor)."""
    P = {name: t(p) for name, p in model.params.items()}
    x, K = t(X), model.n_tasks

    def layers(prefix, index):
        n = sum(1 for name in P if name.startswith(prefix) and name.endswith(".W"))
        return [(P[f"{prefix}.{l}.W"][index], P[f"{prefix}.{l}.b"][index]) for l in range(n)]

    if isinstance(model, mn.SharedBottom):
        n = sum(1 for name in P if name.startswith("bottom") and name.endswith(".W"))
        bottom = mlp(x, [(P[f"bottom.{l}.W"], P[f"bottom.{l}.b"]) for l in range(n)], True)
        reps = [bottom] * K
    elif isinstance(model, mn.SingleTask):
        reps = [mlp(x, layers("hidden", k), True) for k in range(K)]
    else:
        experts = [mlp(x, layers("experts", e), True) for e in range(model.n_experts)]
        reps = []
        for k in range(K):
            gate = 0 if isinstance(model, mn.OMoE) else k
            g = torch.softmax(x @ P["gates.W"][gate] + P["gates.b"][gate], dim=-1)
            reps.append(sum(g[:, e:e + 1] * experts[e] for e in range(model.n_experts)))
    y = torch.tensor(Y, dtype=torch.float64)
    loss = 0
    for k, kind in enumerate(model.tasks):
        out_k = mlp(reps[k], layers("towers", k), False)[:, 0]
        task_loss = F.mse_loss(out_k, y[:, k]) if kind == "regression" else \
            F.binary_cross_entropy_with_logits(out_k, y[:, k])
        loss = loss + float(model.task_weights[k]) * task_loss
    return loss, P, x


MODELS = {
    "SingleTask": lambda: mn.SingleTask(5, ("regression", "binary", "binary"), hidden_units=(6, 4), tower_units=(3,)),
    "SharedBottom": lambda: mn.SharedBottom(5, ("binary", "regression"), bottom_units=(7,), tower_units=(4, 2)),
    "OMoE": lambda: mn.OMoE(5, ("regression", "binary"), n_experts=3, expert_units=(6,), tower_units=(4,)),
    "MMoE": lambda: mn.MMoE(5, ("regression", "binary", "regression"), n_experts=4, expert_units=(6, 3),
                            tower_units=(4,), task_weights=(1.0, 0.5, 2.0)),
}


@pytest.mark.parametrize("name", list(MODELS))
def test_loss_and_gradients_match_autograd(name):
    model = jitter(MODELS[name](), 0)
    X, Y = data(16, 5, model.tasks, 1)
    loss, grads, dX = model.loss_and_grads(X, Y, input_grad=True)
    tloss, P, x = torch_loss(model, X, Y)
    tloss.backward()
    assert loss == pytest.approx(tloss.item(), rel=1e-12)
    for key in model.params:
        np.testing.assert_allclose(grads[key], P[key].grad.numpy(), rtol=1e-10, atol=1e-13, err_msg=key)
    np.testing.assert_allclose(dX, x.grad.numpy(), rtol=1e-10, atol=1e-13)


def test_adam_matches_torch_adam():
    model = mn.MMoE(5, ("regression", "binary"), n_experts=3, expert_units=(4,), tower_units=(3,), seed=2)
    X, Y = data(32, 5, model.tasks, 3)
    P = {name: t(p) for name, p in model.params.items()}
    opt = mn.Adam(model.params, lr=1e-2)
    topt = torch.optim.Adam(list(P.values()), lr=1e-2, betas=(0.9, 0.999), eps=1e-8)
    for _ in range(5):
        _, grads = model.loss_and_grads(X, Y)
        for name, p in P.items():
            p.grad = torch.tensor(grads[name])
        opt.step(grads)
        topt.step()
    for name in P:
        np.testing.assert_allclose(model.params[name], P[name].detach().numpy(), rtol=1e-10, atol=1e-12)
