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
