"""CGC and PLE (mmoe_np.models.ple): gradients of every parameter and X against central differences (float64,
random shapes, 1-3 tasks, 1-3 levels), CGC without task experts is MMoE, forward values against a naive loop,
replicas, the model contract, and bad arguments."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np.models.ple import CGC, PLE
from mmoe_np.testing import (KINK_MARGIN, assert_gradients_close, data, hidden_units, jitter, off_kinks, seeds,
                             task_lists, tower_units)


@st.composite
def ple_cases(draw, cls=PLE, max_levels=3):
    d, tasks = draw(st.integers(1, 4)), draw(task_lists(3))
    options = dict(n_shared_experts=draw(st.integers(1, 3)), n_task_experts=draw(st.integers(0, 2)),
                   expert_units=draw(hidden_units(2, 3)), tower_units=draw(tower_units(2, 3)))
    if cls is PLE:
        options["n_levels"] = draw(st.integers(1, max_levels))
    seed = draw(seeds())
    model = jitter(cls(d, tasks, seed=seed, **options), seed)
    X, Y = data(draw(st.integers(1, 5)), d, tasks, seed)
    assume(off_kinks(model, X, KINK_MARGIN))
    return model, X, Y


@given(case=ple_cases())
def test_ple_gradients_of_every_parameter_and_x(case):
    assert_gradients_close(*case)


@given(case=ple_cases(CGC))
def test_cgc_gradients_of_every_parameter_and_x(case):
    assert_gradients_close(*case)


@given(case=ple_cases(), n_replicas=st.integers(1, 3))
def test_stacked_replicas_match_one_model_each(case, n_replicas):
    model, X, Y = case
    singles = [jitter(model.copy(), s, 0.05) for s in range(n_replicas)]
    stacked = mn.stack_models(singles)
    loss, grads, dX = stacked.loss_and_grads(X, Y, input_grad=True)
    total_dX = 0
    for r, single in enumerate(singles):
        l_r, g_r, dX_r = single.loss_and_grads(X, Y, input_grad=True)
        np.testing.assert_allclose(loss[r], l_r, rtol=1e-12)
        for name in g_r:
            np.testing.assert_allclose(grads[name][r], g_r[name], rtol=1e-10, atol=1e-13)
        total_dX = total_dX + dX_r
    np.testing.assert_allclose(dX, total_dX, rtol=1e-10, atol=1e-13)


@given(d=st.integers(1, 4), tasks=task_lists(3), S=st.integers(1, 4), units=hidden_units(2, 3),
       towers=tower_units(2, 3), seed=seeds(), n=st.integers(1, 6))
def test_cgc_without_task_experts_is_mmoe(d, tasks, S, units, towers, seed, n):
    cgc = CGC(d, tasks, n_shared_experts=S, n_task_experts=0, expert_units=units, tower_units=towers, seed=seed)
    mmoe = mn.MMoE(d, tasks, n_experts=S, expert_units=units, tower_units=towers, seed=seed)
    renamed = {name.replace("shared_experts.0.", "experts.").replace("gates.0.", "gates."): p
               for name, p in cgc.params.items()}
    assert renamed.keys() == mmoe.params.keys()
    for name, p in mmoe.params.items():  # the same draws in the same order: bit for bit
        assert np.array_equal(renamed[name], p), name
    X, Y = data(n, d, tasks, seed)
    np.testing.assert_allclose(cgc.forward(X), mmoe.forward(X), rtol=1e-12, atol=1e-12)
    loss_c, grads_c, dX_c = cgc.loss_and_grads(X, Y, input_grad=True)
    loss_m, grads_m, dX_m = mmoe.loss_and_grads(X, Y, input_grad=True)
    np.testing.assert_allclose(loss_c, loss_m, rtol=1e-12)
    for name, g in grads_c.items():
        key = name.replace("shared_experts.0.", "experts.").replace("gates.0.", "gates.")
        np.testing.assert_allclose(g, grads_m[key], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(dX_c, dX_m, rtol=1e-10, atol=1e-12)


def relu(a):
    return np.maximum(a, 0)


def naive_mlp(x, layers):
    for W, b in layers:
        x = relu(x @ W + b)
    return x


def naive_tower(m, model, k):
    layers = model.mlp_layers("towers")
    for l, (W, b) in enumerate(layers):
        m = m @ W[k] + b[k]
        if l < len(layers) - 1:
            m = relu(m)
    return m[:, 0]


def naive_ple(model, X):
    """PLE row by row, expert by expert, straight from Tang et al.'s equations."""
    S, T, K = model.n_shared_experts, model.n_task_experts, model.n_tasks
    p = model.params
    inputs_task, input_shared = [X] * K, X
    for l in range(model.n_levels):
        shared = [naive_mlp(input_shared, [(W[j], b[j]) for W, b in model.mlp_layers(f"shared_experts.{l}")])
                  for j in range(S)]
        own = [[naive_mlp(inputs_task[k], [(W[k, t], b[k, t]) for W, b in model.mlp_layers(f"task_experts.{l}")])
                for t in range(T)] for k in range(K)]
        new_task = []
        for k in range(K):
            z = inputs_task[k] @ p[f"gates.{l}.W"][k] + p[f"gates.{l}.b"][k]
            g = np.exp(z - z.max(1, keepdims=True))
            g /= g.sum(1, keepdims=True)
            experts = shared + own[k]
            new_task.append(sum(g[:, [j]] * experts[j] for j in range(S + T)))
        if l < model.n_levels - 1:
            z = input_shared @ p[f"gates.{l}.shared.W"][0] + p[f"gates.{l}.shared.b"][0]
            g = np.exp(z - z.max(1, keepdims=True))
            g /= g.sum(1, keepdims=True)
            every = shared + [f for k in range(K) for f in own[k]]
            input_shared = sum(g[:, [j]] * every[j] for j in range(S + K * T))
        inputs_task = new_task
    return np.column_stack([naive_tower(inputs_task[k], model, k) for k in range(K)])


@given(case=ple_cases())
def test_forward_matches_a_naive_loop(case):
    model, X, _ = case
    np.testing.assert_allclose(model.forward(X), naive_ple(model, X), rtol=1e-10, atol=1e-12)


def test_parameters_and_shapes():
    m = PLE(5, ("regression", "binary"), n_levels=2, n_shared_experts=3, n_task_experts=2, expert_units=(4, 6),
            tower_units=(2,))
    shapes = {k: v.shape for k, v in m.params.items()}
    assert shapes["shared_experts.0.0.W"] == (3, 5, 4) and shapes["shared_experts.1.0.W"] == (3, 6, 4)
    assert shapes["task_experts.0.1.W"] == (2, 2, 4, 6) and shapes["task_experts.1.1.b"] == (2, 2, 6)
    assert shapes["gates.0.W"] == (2, 5, 5) and shapes["gates.1.W"] == (2, 6, 5)
    assert shapes["gates.0.shared.W"] == (1, 5, 7) and "gates.1.shared.W" not in shapes
    assert shapes["towers.0.W"] == (2, 6, 2)
    g = m.gate_weights(np.ones((3, 5)))
    assert g.shape == (3, 2, 5)
    np.testing.assert_allclose(g.sum(-1), 1.0)
    assert m.gate_weights(np.ones((3, 5)), level=0).shape == (3, 2, 5)
    with pytest.raises(ValueError, match="level"):
        m.gate_weights(np.ones((3, 5)), level=2)


def test_config_round_trip_and_input_grad_does_not_change_parameter_gradients():
    for m in (PLE(4, ("regression",) * 3, n_levels=3, seed=3), CGC(4, ("binary", "regression"), seed=2)):
        again = type(m)(**m.config())
        assert all(np.array_equal(again.params[k], v) for k, v in m.params.items())
        X, Y = data(5, 4, m.tasks, 0)
        _, g1 = m.loss_and_grads(X, Y)
        _, g2, _ = m.loss_and_grads(X, Y, input_grad=True)
        assert all(np.array_equal(g1[k], g2[k]) for k in g1)
        m32 = m.copy("float32")
        _, g32 = m32.loss_and_grads(X.astype(np.float32), Y.astype(np.float32))
        assert all(g32[k].dtype == np.float32 and g32[k].shape == v.shape for k, v in m.params.items())
    assert "n_levels" not in CGC(4, ("binary",)).config()


@pytest.mark.parametrize("kwargs, name", [({"n_levels": 0}, "n_levels"), ({"n_shared_experts": 0}, "n_shared_experts"),
                                          ({"n_task_experts": -1}, "n_task_experts"),
                                          ({"expert_units": ()}, "expert_units"), ({"bogus": 1}, "bogus")])
def test_bad_arguments_name_themselves(kwargs, name):
    with pytest.raises(ValueError, match=name):
        PLE(3, ("regression",), **kwargs)
