"""The gate ops of mmoe_np.gating: values against their definitions, backward passes against central differences
(float64, random shapes, with and without leading axes), and the top-k checks kept off ties honestly."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from mmoe_np import gating, ops
from mmoe_np.testing import KINK_MARGIN, assert_gradients_close

dims = st.integers(1, 5)
lead_shapes = st.sampled_from([(), (1,), (3,), (2, 3)])
seeds = st.integers(0, 10**6)
temperatures = st.sampled_from([1.0, 0.5, 2.0, 0.1])


def normal(seed, *shape, scale=1.0):
    return scale * np.random.default_rng(seed).standard_normal(shape)


# ------------------------------------------------------------------------------------------------ temperature
@given(lead=lead_shapes, E=dims, tau=temperatures, seed=seeds)
def test_tempered_softmax_gradients(lead, E, tau, seed):
    assert_gradients_close((gating.tempered_softmax_forward, gating.tempered_softmax_backward),
                           {"z": normal(seed, *lead, E)}, constants={"tau": tau})


def test_tempered_softmax_is_softmax_of_scaled_logits_and_tau_1_is_softmax_bit_for_bit():
    z = normal(0, 4, 6)
    g, _ = gating.tempered_softmax_forward(z, 0.5)
    np.testing.assert_allclose(g, np.exp(2 * z) / np.exp(2 * z).sum(-1, keepdims=True), rtol=1e-12)
    g1, _ = gating.tempered_softmax_forward(z, 1.0)
    assert np.array_equal(g1, ops.softmax(z))
    dg = normal(1, 4, 6)
    assert np.array_equal(gating.tempered_softmax_backward(dg, gating.tempered_softmax_forward(z, 1.0)[1]),
                          ops.softmax_backward(dg, ops.softmax(z)))


# ------------------------------------------------------------------------------------------------ top-k
@given(lead=lead_shapes, E=st.integers(2, 6), data=st.data(), tau=temperatures, seed=seeds)
def test_top_k_softmax_gradients_away_from_ties(lead, E, data, tau, seed):
    k = data.draw(st.integers(1, E))
    z = normal(seed, *lead, E)
    # The selection is piecewise constant: a step cannot change it when the k-th and (k+1)-th logits are further
    # apart than KINK_MARGIN (100 steps). Closer draws are rejected, as ReLU kinks are.
    assume(gating.top_k_margin(z, k) > KINK_MARGIN)
    assert_gradients_close((gating.top_k_softmax_forward, gating.top_k_softmax_backward), {"z": z},
                           constants={"k": k, "tau": tau})


@given(lead=lead_shapes, E=st.integers(1, 6), data=st.data(), seed=seeds)
def test_top_k_keeps_the_k_largest_and_renormalises_over_them(lead, E, data, seed):
    k = data.draw(st.integers(1, E))
    z = normal(seed, *lead, E)
    g, _ = gating.top_k_softmax_forward(z, k)
    assert np.all(np.count_nonzero(g, axis=-1) <= k)
    np.testing.assert_allclose(g.sum(-1), 1.0, rtol=1e-12)
    order = np.sort(z, axis=-1)[..., ::-1]
    threshold = order[..., k - 1:k]
    expected = np.where(z >= threshold, np.exp(z - order[..., :1]), 0.0)
    np.testing.assert_allclose(g, expected / expected.sum(-1, keepdims=True), rtol=1e-12, atol=1e-300)


def test_top_k_equal_to_the_number_of_experts_is_the_softmax_bit_for_bit():
    z = normal(3, 5, 4)
    g, cache = gating.top_k_softmax_forward(z, 4)
    assert np.array_equal(g, ops.softmax(z))
    dg = normal(4, 5, 4)
    assert np.array_equal(gating.top_k_softmax_backward(dg, cache), ops.softmax_backward(dg, ops.softmax(z)))


def test_top_k_gives_dropped_logits_no_gradient_and_measures_ties():
    z = np.array([[3.0, 1.0, 2.0, 0.0]])
    g, cache = gating.top_k_softmax_forward(z, 2)
    assert g[0, 1] == 0 and g[0, 3] == 0
    dz = gating.top_k_softmax_backward(np.array([[1.0, 5.0, -2.0, 7.0]]), cache)
    assert dz[0, 1] == 0 and dz[0, 3] == 0 and abs(dz.sum()) < 1e-15
    assert gating.top_k_margin(z, 2) == 1.0
    assert gating.top_k_margin(np.array([[1.0, 1.0, 0.0]]), 1) == 0.0  # a tie
    assert gating.top_k_margin(z, 4) == float("inf")


def test_top_k_rejects_a_bad_k():
    with pytest.raises(ValueError, match="k"):
        gating.top_k_softmax_forward(np.zeros((2, 3)), 0)


# ------------------------------------------------------------------------------------------------ noisy logits
@given(lead=lead_shapes, E=dims, seed=seeds)
def test_noisy_logits_gradients(lead, E, seed):
    inputs = {"z": normal(seed, *lead, E), "noise_logits": normal(seed + 1, *lead, E, scale=2.0)}
    assert_gradients_close((gating.noisy_logits_forward, gating.noisy_logits_backward), inputs,
                           constants={"eps": normal(seed + 2, *lead, E)})


def test_noisy_logits_add_scaled_noise_and_softplus_is_stable():
    z, zn, eps = normal(0, 3, 4), normal(1, 3, 4), normal(2, 3, 4)
    h, _ = gating.noisy_logits_forward(z, zn, eps)
    np.testing.assert_allclose(h, z + eps * np.log1p(np.exp(zn)), rtol=1e-12)
    big = np.array([-1e4, -30.0, 0.0, 30.0, 1e4])
    np.testing.assert_allclose(gating.softplus(big), [0.0, np.log1p(np.exp(-30.0)), np.log(2), 30.0, 1e4],
                               rtol=1e-12, atol=1e-300)
    draws = gating.gate_noise(np.random.default_rng(5), (2, 3))
    assert np.array_equal(draws, gating.gate_noise(np.random.default_rng(5), (2, 3)))


# ------------------------------------------------------------------------------------------------ gate dropout
@given(lead=lead_shapes, E=dims, p=st.sampled_from([0.0, 0.3, 0.7]), seed=seeds)
def test_gate_dropout_gradients(lead, E, p, seed):
    g = ops.softmax(normal(seed, *lead, E))
    mask = gating.dropout_mask(np.random.default_rng(seed), g.shape, p)
    assert_gradients_close((gating.gate_dropout_forward, gating.gate_dropout_backward), {"g": g},
                           constants={"mask": mask})


@given(lead=lead_shapes, E=dims, p=st.sampled_from([0.1, 0.5, 0.9]), seed=seeds)
def test_dropout_masks_keep_an_expert_and_renormalise_to_one(lead, E, p, seed):
    g = ops.softmax(normal(seed, *lead, 7, E))
    mask = gating.dropout_mask(np.random.default_rng(seed), g.shape, p)
    assert set(np.unique(mask)) <= {0.0, 1.0} and np.all(mask.sum(-1) >= 1)
    out, _ = gating.gate_dropout_forward(g, mask)
    np.testing.assert_allclose(out.sum(-1), 1.0, rtol=1e-12)
    assert np.all(out[mask == 0] == 0)
    np.testing.assert_allclose(out, g * mask / (g * mask).sum(-1, keepdims=True), rtol=1e-12)


def test_dropout_mask_is_reproducible_and_drops_at_rate_p():
    a = gating.dropout_mask(np.random.default_rng(1), (20000, 8), 0.25)
    assert np.array_equal(a, gating.dropout_mask(np.random.default_rng(1), (20000, 8), 0.25))
    assert abs(1 - a.mean() - 0.25) < 0.01
    assert np.all(gating.dropout_mask(np.random.default_rng(1), (5, 3), 0.0) == 1)
    with pytest.raises(ValueError, match="p must be in"):
        gating.dropout_mask(np.random.default_rng(1), (5, 3), 1.0)


def test_a_row_whose_kept_weight_is_zero_keeps_its_gate():
    g = np.array([[0.0, 0.4, 0.6], [0.2, 0.3, 0.5]])  # row 0: a top-k gate that dropped expert 0
    mask = np.array([[1.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    out, cache = gating.gate_dropout_forward(g, mask)
    np.testing.assert_array_equal(out[0], g[0])
    np.testing.assert_allclose(out[1], [0.0, 0.375, 0.625])
    assert np.all(np.isfinite(gating.gate_dropout_backward(np.ones_like(g), cache)))


# ------------------------------------------------------------------------------------------------ importance loss
@given(lead=lead_shapes, B=dims, E=dims, seed=seeds, rows=st.booleans())
def test_importance_loss_gradients(lead, B, E, seed, rows):
    # on gate rows (summing to 1) and on arbitrary positive weights
    g = ops.softmax(normal(seed, *lead, B, E)) if rows else np.exp(normal(seed, *lead, B, E))
    assert_gradients_close((gating.importance_loss_forward, gating.importance_loss_backward), {"g": g})


def test_importance_loss_with_the_batch_not_next_to_the_experts():
    g = ops.softmax(normal(0, 5, 2, 4))  # (N, G, E): MMoE's layout, the batch at -3
    cv2, _ = gating.importance_loss_forward(g, batch_axis=-3)
    I = g.sum(0)
    np.testing.assert_allclose(cv2, I.var(-1) / I.mean(-1) ** 2, rtol=1e-12)
    assert_gradients_close((gating.importance_loss_forward, gating.importance_loss_backward), {"g": g},
                           constants={"batch_axis": -3})


def test_importance_loss_is_zero_when_balanced_and_e_minus_1_when_one_expert_takes_all():
    assert gating.importance_loss_forward(np.full((6, 4), 0.25))[0] == 0
    one = np.zeros((6, 4))
    one[:, 2] = 1
    np.testing.assert_allclose(gating.importance_loss_forward(one)[0], 3.0)


# ------------------------------------------------------------------------------------------------ uncertainty
@given(lead=lead_shapes, K=st.integers(1, 3), seed=seeds)
def test_uncertainty_loss_gradients(lead, K, seed):
    inputs = {"task_losses": np.abs(normal(seed, *lead, K)), "log_vars": normal(seed + 1, *lead, K)}
    assert_gradients_close((gating.uncertainty_loss_forward, gating.uncertainty_loss_backward), inputs)


def test_uncertainty_loss_value_and_its_minimum_over_s():
    L, s = np.array([0.5, 2.0]), np.array([0.0, np.log(2.0)])
    total, cache = gating.uncertainty_loss_forward(L, s)
    np.testing.assert_allclose(total, 0.5 + 0 + 1.0 + np.log(2.0), rtol=1e-12)
    dL, ds = gating.uncertainty_loss_backward(1.0, cache)
    np.testing.assert_allclose(dL, [1.0, 0.5])
    np.testing.assert_allclose(ds, [0.5, 0.0], atol=1e-15)  # s_2 = log L_2 is the minimum


# ================================================================================================================
# The gate options on MMoE and OMoE, and uncertainty weighting on every model
# ================================================================================================================
import mmoe_np as mn  # noqa: E402
from mmoe_np.models.ple import CGC, PLE  # noqa: E402
from modelcheck import assert_training_randomness  # noqa: E402
from mmoe_np.testing import (data, hidden_units, jitter, model_configs, off_kinks, task_lists,  # noqa: E402
                             tower_units)

GATE_OPTIONS = ("gate_dropout", "gate_temperature", "top_k", "noisy_gating", "balance_weight")


@st.composite
def gated_cases(draw):
    """(model holding a fixed draw of its training noise, X, Y): MMoE or OMoE with every gate option drawn."""
    cls = draw(st.sampled_from([mn.MMoE, mn.OMoE]))
    d, tasks, E = draw(st.integers(1, 4)), draw(task_lists(3)), draw(st.integers(1, 4))
    options = dict(gate_dropout=draw(st.sampled_from([0.0, 0.3, 0.6])), gate_temperature=draw(temperatures),
                   top_k=draw(st.none() | st.integers(1, E)), noisy_gating=draw(st.booleans()),
                   balance_weight=draw(st.sampled_from([0.0, 0.1, 1.0])))
    seed = draw(seeds)
    model = jitter(cls(d, tasks, n_experts=E, expert_units=draw(hidden_units(2, 3)),
                       tower_units=draw(tower_units(2, 3)), seed=seed % 2**16, **options), seed % 2**16)
    X, Y = data(draw(st.integers(1, 5)), d, tasks, seed % 2**16)
    noise = model.draw_noise(np.random.default_rng(seed), X.shape[0])
    assume(off_kinks(model, X, KINK_MARGIN) and model.top_k_margin(X, noise) > KINK_MARGIN)
    return model.holding_noise(noise), X, Y


@given(case=gated_cases())
def test_gradients_of_every_gate_option_with_the_training_noise_held_fixed(case):
    assert_gradients_close(*case)


@given(d=st.integers(1, 4), tasks=task_lists(3), E=st.integers(1, 5), seed=seeds)
def test_top_k_all_tau_1_no_dropout_leaves_mmoe_unchanged_bit_for_bit(d, tasks, E, seed):
    plain = jitter(mn.MMoE(d, tasks, n_experts=E, seed=seed % 2**16), seed % 2**16)
    same = plain.copy()
    same.top_k, same.gate_temperature, same.gate_dropout = E, 1.0, 0.0
    built = mn.MMoE(d, tasks, n_experts=E, seed=seed % 2**16, top_k=E, gate_temperature=1.0, gate_dropout=0.0)
    assert all(np.array_equal(built.params[k], mn.MMoE(d, tasks, n_experts=E, seed=seed % 2**16).params[k])
               for k in built.params)
    X, Y = data(5, d, tasks, seed)
    loss, grads, dX = plain.loss_and_grads(X, Y, input_grad=True)
    loss2, grads2, dX2 = same.loss_and_grads(X, Y, input_grad=True, rng=np.random.default_rng(seed))
    assert loss == loss2 and np.array_equal(dX, dX2)
    assert all(np.array_equal(grads[k], grads2[k]) for k in grads)
    assert np.array_equal(plain.forward(X), same.forward(X))


def test_dropout_and_noise_apply_in_training_passes_only_and_are_deterministic_given_the_rng():
    tasks = ("regression", "binary")
    model = jitter(mn.MMoE(3, tasks, n_experts=4, gate_dropout=0.5, noisy_gating=True, seed=0), 0)
    X, Y = data(16, 3, tasks, 0)
    noise = assert_training_randomness(model, X, Y)
    assert noise.mask.shape == noise.eps.shape == (16, 2, 4)
    np.testing.assert_allclose(model.gate_weights(X).sum(-1), 1.0)
    assert mn.MMoE(3, tasks).draw_noise(np.random.default_rng(0), 4) is None


def test_dropped_gates_renormalise_to_one_in_the_pass():
    tasks = ("regression", "regression")
    model = mn.MMoE(2, tasks, n_experts=3, gate_dropout=0.5, seed=1)
    X, Y = data(10, 2, tasks, 1)
    noise = model.draw_noise(np.random.default_rng(2), 10)
    g = model.gate_weights(X)
    dropped = g * noise.mask / (g * noise.mask).sum(-1, keepdims=True)
    # the pass's outputs are those of the mixture with the renormalised, dropped gates
    f = [np.maximum(X @ model.params["experts.0.W"][e] + model.params["experts.0.b"][e], 0) for e in range(3)]
    m = np.einsum("nke,enh->knh", dropped, np.stack(f))
    W, b = model.params["towers.0.W"], model.params["towers.0.b"]
    Wo, bo = model.params["towers.1.W"], model.params["towers.1.b"]
    out = np.stack([(np.maximum(m[k] @ W[k] + b[k], 0) @ Wo[k] + bo[k])[:, 0] for k in range(2)], axis=1)
    expected = ((out - Y) ** 2).mean(0).sum()
    np.testing.assert_allclose(model.losses(X, Y, noise=noise)[0], expected, rtol=1e-12)
    np.testing.assert_allclose(dropped.sum(-1), 1.0, rtol=1e-12)


def test_balance_loss_is_weight_times_the_cv2_of_each_gates_importance():
    tasks = ("regression", "binary", "regression")
    model = jitter(mn.MMoE(3, tasks, n_experts=4, balance_weight=0.7, seed=3), 3)
    X, Y = data(9, 3, tasks, 3)
    I = model.gate_weights(X).sum(0)                                     # (K, E)
    cv2 = (I.var(-1) / I.mean(-1) ** 2).sum()
    plain = mn.MMoE(3, tasks, n_experts=4, seed=3)
    plain.params.flat[:] = model.params.flat
    np.testing.assert_allclose(model.losses(X, Y)[0], plain.losses(X, Y)[0] + 0.7 * cv2, rtol=1e-12)


@pytest.mark.parametrize("options, name", [
    ({"gate_dropout": 1.0}, "gate_dropout"), ({"gate_dropout": -0.1}, "gate_dropout"),
    ({"gate_temperature": 0.0}, "gate_temperature"), ({"top_k": 0}, "top_k"), ({"top_k": 9}, "top_k"),
    ({"noisy_gating": 1}, "noisy_gating"), ({"balance_weight": -1.0}, "balance_weight")])
def test_bad_gate_options_name_themselves(options, name):
    with pytest.raises(ValueError, match=name):
        mn.MMoE(3, ("regression",), n_experts=8, **options)


def test_gate_options_round_trip_through_config_and_save(tmp_path):
    model = mn.MMoE(3, ("regression", "binary"), n_experts=4, gate_dropout=0.1, top_k=2, noisy_gating=True,
                    balance_weight=0.01, gate_temperature=0.5, loss_weighting="uncertainty", seed=4)
    assert {k: model.config()[k] for k in GATE_OPTIONS} == {"gate_dropout": 0.1, "gate_temperature": 0.5, "top_k": 2,
                                                            "noisy_gating": True, "balance_weight": 0.01}
    again = mn.MMoE(**model.config())
    assert all(np.array_equal(again.params[k], v) for k, v in model.params.items())
    loaded = mn.load(model.save(tmp_path / "m.npz"))
    assert loaded.config() == model.config()
    assert not set(GATE_OPTIONS) & set(mn.MMoE(3, ("regression",)).config())  # the paper's MMoE: none listed
    assert "gates.noise.W" in model.params and "loss.log_vars" in model.params


# ------------------------------------------------------------------------------------------------ uncertainty
@st.composite
def uncertain_cases(draw):
    """(model, X, Y): any of the seven models (drawn by mmoe_np.testing.model_configs) or CGC/PLE, small random
    sizes, with loss_weighting="uncertainty" and jittered log-variances."""
    if draw(st.booleans()):
        config = draw(model_configs())
        cls, d, tasks, options, seed = (mn.MODEL_CLASSES[config.name], config.n_features, config.tasks,
                                        config.options, config.seed)
    else:
        cls, d, tasks, seed = draw(st.sampled_from([CGC, PLE])), draw(st.integers(1, 4)), draw(task_lists(3)), draw(
            st.integers(0, 2**16))
        options = dict(n_shared_experts=draw(st.integers(1, 3)), n_task_experts=draw(st.integers(0, 2)),
                       expert_units=draw(hidden_units(2, 3)), tower_units=draw(tower_units(2, 3)))
        if cls is PLE:
            options["n_levels"] = draw(st.integers(1, 3))
    model = jitter(cls(d, tasks, seed=seed, loss_weighting="uncertainty", **options), seed)
    X, Y = data(draw(st.integers(1, 5)), d, tasks, seed)
    assume(off_kinks(model, X, KINK_MARGIN))
    return model, X, Y


@given(case=uncertain_cases())
def test_uncertainty_weighting_gradients_for_every_model(case):
    assert "loss.log_vars" in case[0].params
    assert_gradients_close(*case)


def test_uncertainty_weighting_value_and_the_fixed_default():
    tasks = ("regression", "binary")
    model = jitter(mn.SharedBottom(3, tasks, loss_weighting="uncertainty", seed=1), 1)
    fixed = mn.SharedBottom(3, tasks, seed=1)
    for name in fixed.params:
        fixed.params[name][...] = model.params[name]
    X, Y = data(8, 3, tasks, 1)
    _, per_task = fixed.losses(X, Y)
    s = model.params["loss.log_vars"]
    np.testing.assert_allclose(model.losses(X, Y)[0], np.sum(np.exp(-s) * per_task + s), rtol=1e-12)
    assert fixed.loss_weighting == "fixed" and "loss.log_vars" not in fixed.params
    assert mn.SharedBottom(**model.config()).loss_weighting == "uncertainty"
    with pytest.raises(ValueError, match="loss_weighting"):
        mn.SharedBottom(3, tasks, loss_weighting="learned")
    with pytest.raises(ValueError, match="task_weights"):
        mn.SharedBottom(3, tasks, loss_weighting="uncertainty", task_weights=(1, 2))


# ------------------------------------------------------------------------------------------------ the whole gate chain
@given(seed=st.integers(0, 10_000), E=st.integers(2, 6), k_drop=st.integers(0, 4), tau=st.sampled_from([0.5, 1.0, 2.0]),
       noisy=st.booleans(), drop=st.booleans())
def test_the_gate_chain_pair_passes_the_gradient_check(seed, E, k_drop, tau, noisy, drop):
    # gate_chain_forward/backward on its own (MMoE, OMoE, CGC and PLE all run it): dz, and the noise logits' gradient
    # for a noisy gate, with the draws (mask, eps) held fixed; away from top-k ties (a step cannot change the selection)
    rng = np.random.default_rng(seed)
    shape, k = (2, 7, E), max(1, E - k_drop)
    z, noise_logits = rng.standard_normal(shape), rng.standard_normal(shape)
    draws = gating.GateNoise(gating.dropout_mask(rng, shape, 0.3) if drop else None,
                             gating.gate_noise(rng, shape) if noisy else None)
    options = dict(top_k=k, temperature=tau, balance_weight=0.0, batch_axis=-2)
    g, cache = gating.gate_chain_forward(z, noise_logits if noisy else None, draws, **options)
    np.testing.assert_allclose(g.sum(-1), 1.0)
    assume(gating.top_k_margin(cache.logits, k) > 1e-3)
    inputs = {"z": z, "noise_logits": noise_logits} if noisy else {"z": z}

    def forward(z, noise_logits=None):
        return gating.gate_chain_forward(z, noise_logits, draws, **options)

    def backward(dg, cache):
        dz, dnoise = gating.gate_chain_backward(dg, cache, balance_weight=0.0, noisy_gating=noisy)
        return (dz, dnoise) if noisy else dz
    report = mn.check_op(forward, backward, inputs, seed=seed)
    assert report.passed(), report
