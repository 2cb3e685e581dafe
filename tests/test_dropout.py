"""Activation dropout: the op pair ops.dropout_* with an explicit mask, and the ``dropout`` option of every model
(training passes only, masks drawn from the pass's rng, held fixed by gradient checks)."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np import ops
from mmoe_np.models.moe import MoENoise
from mmoe_np.models.ple import PLENoise
from mmoe_np.testing import assert_gradients_close, model_configs, op_inputs, off_kinks
from modelcheck import KINK_MARGIN, assert_gradients_match, data, jitter, seeds

TASKS = ("regression", "binary")
RATES = st.sampled_from([0.2, 0.5, 0.8])

# every model with its dropout sites: (class, options, {site: shape (stack, width) of the unit it drops})
SITES = [
    (mn.MMoE, dict(n_experts=3, expert_units=(4, 2), tower_units=(5,)),
     {"experts.0": (3, 4), "experts.1": (3, 2), "towers.0": (2, 5)}),
    (mn.OMoE, dict(n_experts=2, expert_units=(4,), tower_units=()), {"experts.0": (2, 4)}),
    (mn.SingleTask, dict(hidden_units=(4, 3), tower_units=(2,)),
     {"hidden.0": (2, 4), "hidden.1": (2, 3), "towers.0": (2, 2)}),
    (mn.SharedBottom, dict(bottom_units=(6,), tower_units=(3, 2)),
     {"bottom.0": (6,), "towers.0": (2, 3), "towers.1": (2, 2)}),
    (mn.L2Constrained, dict(hidden_units=(4,), tower_units=(3,)), {"hidden.0": (2, 4), "towers.0": (2, 3)}),
    (mn.CrossStitch, dict(hidden_units=(4, 3), tower_units=(3,)),
     {"hidden.0": (2, 4), "hidden.1": (2, 3), "towers.0": (2, 3)}),
    (mn.TensorFactorization, dict(hidden_units=(4, 3), tower_units=(3,), ranks=(2, 2, 1)),
     {"hidden.0": (2, 4), "hidden.1": (2, 3), "towers.0": (2, 3)}),
    (mn.PLE, dict(n_levels=2, n_shared_experts=2, n_task_experts=1, expert_units=(4,), tower_units=(3,)),
     {"shared_experts.0.0": (2, 4), "task_experts.0.0": (2, 1, 4), "shared_experts.1.0": (2, 4),
      "task_experts.1.0": (2, 1, 4), "towers.0": (2, 3)}),
    (mn.CGC, dict(n_shared_experts=2, n_task_experts=2, expert_units=(4, 3), tower_units=()),
     {"shared_experts.0.0": (2, 4), "shared_experts.0.1": (2, 3), "task_experts.0.0": (2, 2, 4),
      "task_experts.0.1": (2, 2, 3)}),
]
IDS = [cls.__name__ for cls, _, _ in SITES]


# ------------------------------------------------------------------------------------------------ the op pair
@given(inputs=op_inputs({"x": st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)}),
       p=RATES, seed=seeds)
def test_dropout_op_gradient_with_the_mask_held_fixed(inputs, p, seed):
    mask = ops.keep_mask(np.random.default_rng(seed), inputs["x"].shape, p)
    assert_gradients_close((ops.dropout_forward, ops.dropout_backward), inputs,
                           constants={"mask": mask, "scale": 1 / (1 - p)})


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_dropout_op_is_the_scaled_mask_times_x_and_keeps_the_dtype(dtype):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((3, 5, 4)).astype(dtype)
    mask = ops.keep_mask(rng, (1, 5, 4), 0.25)  # broadcast over the leading axis
    out, cache = ops.dropout_forward(x, mask, 1 / 0.75)
    assert out.dtype == dtype and out.shape == x.shape
    np.testing.assert_array_equal(out == 0, np.broadcast_to(~mask, x.shape))
    np.testing.assert_allclose(out, np.where(mask, x / 0.75, 0), rtol=1e-6)
    dout = rng.standard_normal(x.shape).astype(dtype)
    dx = ops.dropout_backward(dout, cache)
    assert dx.dtype == dtype
    np.testing.assert_allclose(dx, np.where(mask, dout / 0.75, 0), rtol=1e-6)


@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_the_scaled_mask_has_mean_one_and_the_drop_rate_is_p(p):
    n = 400_000
    mask = ops.keep_mask(np.random.default_rng(1), (n,), p)
    assert mask.dtype == bool
    scaled = mask / (1 - p)
    sem = np.sqrt(p / (1 - p) / n)  # the std of one scaled entry is sqrt(p / (1 - p))
    assert abs(scaled.mean() - 1) <= 5 * sem
    assert abs((~mask).mean() - p) <= 5 * np.sqrt(p * (1 - p) / n)


def test_keep_mask_is_deterministic_given_the_rng_and_refuses_a_bad_p():
    a = ops.keep_mask(np.random.default_rng(3), (7, 9), 0.4)
    assert np.array_equal(a, ops.keep_mask(np.random.default_rng(3), (7, 9), 0.4))
    assert not np.array_equal(a, ops.keep_mask(np.random.default_rng(4), (7, 9), 0.4))
    for p in (1.0, -0.1):
        with pytest.raises(ValueError, match="p must be in"):
            ops.keep_mask(np.random.default_rng(0), (2,), p)


def test_mlp_applies_a_mask_after_the_relu_and_none_leaves_a_layer_alone():
    rng = np.random.default_rng(2)
    x = rng.standard_normal((5, 3))
    layers = [(rng.standard_normal((3, 4)), rng.standard_normal(4)),
              (rng.standard_normal((4, 2)), rng.standard_normal(2))]
    mask = ops.keep_mask(rng, (5, 4), 0.5)
    out, _ = ops.mlp_forward(x, layers, relu_last=False, masks=[mask], scale=2.0)
    hidden = np.maximum(x @ layers[0][0] + layers[0][1], 0) * mask * 2.0
    np.testing.assert_allclose(out, hidden @ layers[1][0] + layers[1][1], rtol=1e-12)
    plain, _ = ops.mlp_forward(x, layers, relu_last=False)
    same, _ = ops.mlp_forward(x, layers, relu_last=False, masks=[None, None], scale=2.0)
    assert np.array_equal(plain, same)


# ------------------------------------------------------------------------------------------------ the models
@st.composite
def dropout_cases(draw):
    """(model holding a fixed draw of its dropout masks, X, Y): any of the seven models, any sizes and options."""
    config = draw(model_configs())
    p = draw(RATES)
    model = jitter(mn.MODEL_CLASSES[config.name](config.n_features, config.tasks, seed=config.seed, dropout=p,
                                                 **config.options), config.seed)
    X, Y = data(draw(st.integers(1, 5)), config.n_features, config.tasks, config.seed)
    held = model.holding_noise(model.draw_noise(np.random.default_rng(draw(seeds)), X.shape[0]))
    assume(off_kinks(held, X, KINK_MARGIN))  # the margin of the pass with the held masks
    return held, X, Y


@given(case=dropout_cases())
def test_gradients_of_every_model_with_dropout_and_the_masks_held_fixed(case):
    assert_gradients_match(*case)


@given(seed=seeds, p=RATES, levels=st.integers(1, 3), S=st.integers(1, 3), T=st.integers(0, 2),
       units=st.sampled_from([(3,), (3, 2)]), towers=st.sampled_from([(), (3,)]),
       gate_dropout=st.sampled_from([0.0, 0.4]), noisy=st.booleans())
def test_gradients_of_ple_with_dropout_and_the_masks_held_fixed(seed, p, levels, S, T, units, towers, gate_dropout,
                                                                 noisy):
    tasks = ("regression", "binary")
    model = jitter(mn.PLE(3, tasks, n_levels=levels, n_shared_experts=S, n_task_experts=T, expert_units=units,
                          tower_units=towers, dropout=p, gate_dropout=gate_dropout, noisy_gating=noisy,
                          seed=seed % 2**16), seed % 2**16)
    X, Y = data(4, 3, tasks, seed % 2**16)
    held = model.holding_noise(model.draw_noise(np.random.default_rng(seed), 4))
    assume(off_kinks(held, X, KINK_MARGIN))
    assert_gradients_match(held, X, Y)


@given(seed=seeds, p=RATES, options=st.fixed_dictionaries(
    {"gate_dropout": st.sampled_from([0.0, 0.4]), "noisy_gating": st.booleans(), "top_k": st.sampled_from([None, 2]),
     "balance_weight": st.sampled_from([0.0, 0.5])}))
def test_gradients_of_a_mixture_with_dropout_and_every_gate_option(seed, p, options):
    tasks = ("regression", "binary", "regression")
    model = jitter(mn.MMoE(3, tasks, n_experts=3, expert_units=(4, 3), tower_units=(3,), dropout=p, seed=seed % 2**16,
                           **options), seed % 2**16)
    X, Y = data(4, 3, tasks, seed % 2**16)
    noise = model.draw_noise(np.random.default_rng(seed), 4)
    held = model.holding_noise(noise)
    assume(off_kinks(held, X, KINK_MARGIN) and model.top_k_margin(X, noise) > KINK_MARGIN)
    assert_gradients_match(held, X, Y)


@pytest.mark.parametrize("cls, options, sites", SITES, ids=IDS)
def test_dropout_sites_are_every_hidden_relu_and_masks_have_their_shapes(cls, options, sites):
    model = cls(3, TASKS, dropout=0.5, **options)
    assert model.dropout_sites() == sites
    masks = model.draw_dropout(np.random.default_rng(0), 6)
    assert {k: m.shape for k, m in masks.items()} == {k: s[:-1] + (6, s[-1]) for k, s in sites.items()}
    stacked = mn.stack_models([cls(3, TASKS, dropout=0.5, seed=s, **options) for s in range(2)])
    masks = stacked.draw_dropout(np.random.default_rng(0), 6)
    assert {k: m.shape for k, m in masks.items()} == {k: (2,) + s[:-1] + (6, s[-1]) for k, s in sites.items()}


@pytest.mark.parametrize("cls, options, sites", SITES, ids=IDS)
def test_dropout_applies_in_training_passes_only(cls, options, sites):
    model = jitter(cls(3, TASKS, dropout=0.5, seed=1, **options), 1)
    plain = cls(3, TASKS, seed=1, **options)
    plain.params.flat[:] = model.params.flat
    X, Y = data(12, 3, TASKS, 1)
    noise = model.draw_noise(np.random.default_rng(2), 12)
    held = model.holding_noise(noise)
    for m in (model, held):  # never in forward, predict, evaluate, or a loss pass without rng or noise
        assert np.array_equal(m.forward(X), plain.forward(X))
        assert np.array_equal(m.predict(X), plain.predict(X))
        assert m.evaluate(X, Y) == plain.evaluate(X, Y)
    assert model.losses(X, Y)[0] == plain.losses(X, Y)[0]
    assert model.loss_and_grads(X, Y)[0] == plain.loss_and_grads(X, Y)[0]
    dropped = model.losses(X, Y, noise=noise)[0]
    assert dropped != plain.losses(X, Y)[0] and held.losses(X, Y)[0] == dropped


@pytest.mark.parametrize("cls, options, sites", SITES, ids=IDS)
def test_masks_are_deterministic_given_the_rng(cls, options, sites):
    model = jitter(cls(3, TASKS, dropout=0.3, seed=2, **options), 2)
    X, Y = data(10, 3, TASKS, 2)
    l1, g1 = model.loss_and_grads(X, Y, rng=np.random.default_rng(7))
    l2, g2 = model.loss_and_grads(X, Y, rng=np.random.default_rng(7))
    l3, _ = model.loss_and_grads(X, Y, rng=np.random.default_rng(8))
    assert l1 == l2 and all(np.array_equal(g1[k], g2[k]) for k in g1)
    assert l1 != l3
    assert model.loss_and_grads(X, Y, noise=model.draw_noise(np.random.default_rng(7), 10))[0] == l1


def test_the_masks_keep_each_units_expected_value():
    model = mn.MMoE(3, TASKS, n_experts=4, expert_units=(16,), dropout=0.3)
    masks = model.draw_dropout(np.random.default_rng(0), 4096)
    for site, mask in masks.items():
        sem = np.sqrt(0.3 / 0.7 / mask.size)
        assert abs((mask * model.dropout_scale).mean() - 1) <= 5 * sem, site


@pytest.mark.parametrize("cls, options, sites", SITES, ids=IDS)
def test_dropout_zero_is_todays_model_bit_for_bit(cls, options, sites):
    model = jitter(cls(3, TASKS, dropout=0.0, seed=3, **options), 3)
    today = jitter(cls(3, TASKS, seed=3, **options), 3)
    assert np.array_equal(model.params.flat, today.params.flat)
    assert "dropout" not in model.config() and model.config() == today.config()
    assert model.draw_noise(np.random.default_rng(0), 5) is None and model.draw_dropout(np.random.default_rng(0), 5) \
        is None
    X, Y = data(9, 3, TASKS, 3)
    loss, grads, dX = model.loss_and_grads(X, Y, input_grad=True, rng=np.random.default_rng(4))
    loss0, grads0, dX0 = today.loss_and_grads(X, Y, input_grad=True)
    assert loss == loss0 and np.array_equal(dX, dX0) and np.array_equal(grads.flat, grads0.flat)


def test_shared_bottom_pass_drops_the_bottom_and_tower_units_as_written():
    model = jitter(mn.SharedBottom(3, TASKS, bottom_units=(5,), tower_units=(4,), dropout=0.4, seed=5), 5)
    X, Y = data(8, 3, TASKS, 5)
    masks = model.draw_noise(np.random.default_rng(6), 8)
    P, s = model.params, 1 / 0.6
    f = np.maximum(X @ P["bottom.0.W"] + P["bottom.0.b"], 0) * masks["bottom.0"] * s                   # (N, 5)
    t = np.maximum(np.einsum("nh,kht->knt", f, P["towers.0.W"]) + P["towers.0.b"][:, None], 0) \
        * masks["towers.0"] * s                                                                          # (K, N, 4)
    out = (np.einsum("knt,kto->kno", t, P["towers.1.W"]) + P["towers.1.b"][:, None])[..., 0].T            # (N, K)
    expected = ((out[:, 0] - Y[:, 0]) ** 2).mean() + np.mean(np.logaddexp(0, out[:, 1]) - Y[:, 1] * out[:, 1])
    np.testing.assert_allclose(model.losses(X, Y, noise=masks)[0], expected, rtol=1e-12)


def test_mmoe_pass_drops_each_experts_units_before_the_mixture_and_the_towers_units():
    model = jitter(mn.MMoE(3, TASKS, n_experts=3, expert_units=(5,), tower_units=(4,), dropout=0.5, seed=6), 6)
    X, Y = data(8, 3, TASKS, 6)
    noise = model.draw_noise(np.random.default_rng(7), 8)
    masks, P, s = noise.dropout, model.params, 2.0
    f = np.stack([np.maximum(X @ P["experts.0.W"][e] + P["experts.0.b"][e], 0) for e in range(3)])      # (E, N, h)
    f = f * masks["experts.0"] * s
    g = model.gate_weights(X)                                                                              # (N, K, E)
    m = np.einsum("nke,enh->knh", g, f)
    t = np.maximum(np.einsum("knh,kht->knt", m, P["towers.0.W"]) + P["towers.0.b"][:, None], 0) \
        * masks["towers.0"] * s
    out = (np.einsum("knt,kto->kno", t, P["towers.1.W"]) + P["towers.1.b"][:, None])[..., 0].T
    expected = ((out[:, 0] - Y[:, 0]) ** 2).mean() + np.mean(np.logaddexp(0, out[:, 1]) - Y[:, 1] * out[:, 1])
    np.testing.assert_allclose(model.losses(X, Y, noise=noise)[0], expected, rtol=1e-12)


def test_mixture_draws_its_gate_noise_first_and_unchanged_by_dropout():
    gates = mn.MMoE(3, TASKS, n_experts=4, gate_dropout=0.3, noisy_gating=True)
    both = mn.MMoE(3, TASKS, n_experts=4, gate_dropout=0.3, noisy_gating=True, dropout=0.2)
    alone, noise = gates.draw_noise(np.random.default_rng(9), 6), both.draw_noise(np.random.default_rng(9), 6)
    assert isinstance(alone, mn.gating.GateNoise) and isinstance(noise, MoENoise)
    assert np.array_equal(alone.mask, noise.mask) and np.array_equal(alone.eps, noise.eps)
    only = mn.MMoE(3, TASKS, n_experts=4, dropout=0.2).draw_noise(np.random.default_rng(9), 6)
    assert only.mask is None and only.eps is None and set(only.dropout) == {"experts.0", "towers.0"}


def test_stacked_replicas_each_drop_with_their_own_masks():
    singles = [jitter(mn.CrossStitch(3, TASKS, hidden_units=(4,), dropout=0.5, seed=s), s) for s in range(3)]
    stacked = mn.stack_models(singles)
    X, Y = data(7, 3, TASKS, 0)
    masks = stacked.draw_noise(np.random.default_rng(1), 7)
    losses = stacked.losses(X, Y, noise=masks)[0]
    for r, single in enumerate(singles):
        np.testing.assert_allclose(losses[r], single.losses(X, Y, noise={k: m[r] for k, m in masks.items()})[0],
                                   rtol=1e-12)


@pytest.mark.parametrize("value", [-0.1, 1.0, 1.5, float("nan"), "0.5", True])
def test_bad_dropout_names_itself(value):
    for cls, options, _ in SITES:
        with pytest.raises(ValueError, match="dropout"):
            cls(3, TASKS, dropout=value, **options)


def test_a_model_without_dropout_sites_refuses_the_option_by_name():
    class Undroppable(mn.SharedBottom):  # a user's model that names no MLP to drop
        _dropout_mlps = ()

    with pytest.raises(ValueError, match="dropout: Undroppable has no activation dropout"):
        Undroppable(3, TASKS, dropout=0.1)
    assert Undroppable(3, TASKS, dropout=0.0).draw_noise(np.random.default_rng(0), 4) is None


def test_cgc_without_task_experts_is_mmoe_with_the_same_dropout_masks():
    tasks = ("regression", "binary", "regression")
    cgc = jitter(mn.CGC(3, tasks, n_shared_experts=3, n_task_experts=0, expert_units=(4,), dropout=0.3, seed=2), 2)
    mmoe = mn.MMoE(3, tasks, n_experts=3, expert_units=(4,), dropout=0.3, seed=2)
    names = {k: k.replace("shared_experts.0.", "experts.").replace("gates.0.", "gates.") for k in cgc.params}
    assert list(names.values()) == list(mmoe.params)
    for k, p in cgc.params.items():  # the same parameters, drawn in the same order (by name: MMoE's buffer keeps
        mmoe.params[names[k]][...] = p  # its first layer as one block, so the two buffers are ordered differently)
    X, Y = data(6, 3, tasks, 2)
    loss, grads = cgc.loss_and_grads(X, Y, rng=np.random.default_rng(5))
    loss2, grads2 = mmoe.loss_and_grads(X, Y, rng=np.random.default_rng(5))  # the same draws, site for site
    assert loss != cgc.losses(X, Y)[0]
    np.testing.assert_allclose(loss, loss2, rtol=1e-12)
    for k in grads:
        np.testing.assert_allclose(grads[k], grads2[names[k]], rtol=1e-10, atol=1e-13, err_msg=k)


def test_ple_draws_its_gate_noise_first_and_unchanged_by_dropout():
    options = dict(n_levels=2, gate_dropout=0.3, noisy_gating=True)
    alone = mn.PLE(3, TASKS, **options).draw_noise(np.random.default_rng(9), 6)
    noise = mn.PLE(3, TASKS, dropout=0.2, **options).draw_noise(np.random.default_rng(9), 6)
    assert isinstance(noise, PLENoise) and len(noise.levels) == len(alone) == 2
    for a, b in zip(alone, noise.levels):
        assert np.array_equal(a.task.mask, b.task.mask) and np.array_equal(a.task.eps, b.task.eps)
    only = mn.PLE(3, TASKS, dropout=0.2).draw_noise(np.random.default_rng(9), 6)
    assert only.levels is None and set(only.dropout) == set(mn.PLE(3, TASKS, dropout=0.2).dropout_sites())


@pytest.mark.parametrize("cls, options, sites", SITES, ids=IDS)
def test_dropout_round_trips_through_config_and_save(cls, options, sites, tmp_path):
    model = jitter(cls(3, TASKS, dropout=0.25, seed=4, **options), 4)
    assert model.config()["dropout"] == 0.25 and "dropout=0.25" in repr(model)
    again = cls(**model.config())
    assert again.dropout == 0.25 and np.array_equal(again.params.flat, cls(3, TASKS, seed=4, **options).params.flat)
    loaded = mn.load(model.save(tmp_path / "model.npz"))
    X, Y = data(6, 3, TASKS, 4)
    assert loaded.dropout == 0.25
    assert loaded.losses(X, Y, rng=np.random.default_rng(1))[0] == model.losses(X, Y, rng=np.random.default_rng(1))[0]


@pytest.mark.parametrize("wrong", ["without the scale", "without the mask"])
def test_the_gradient_check_catches_a_wrong_dropout_backward(wrong, monkeypatch):
    model = jitter(mn.MMoE(3, TASKS, n_experts=2, expert_units=(4,), tower_units=(3,), dropout=0.5, seed=8), 8)
    X, Y = data(6, 3, TASKS, 8)
    held = model.holding_noise(model.draw_noise(np.random.default_rng(1), 6))
    assert off_kinks(held, X, KINK_MARGIN)
    if wrong == "without the scale":
        monkeypatch.setattr(ops, "dropout_backward", lambda dout, cache: dout * cache.mask)
    else:
        monkeypatch.setattr(ops, "dropout_backward", lambda dout, cache: dout * cache.scale)
    report = mn.check_gradients(held, X, Y)
    assert not report.passed(1e-6)
    assert report.errors["experts.0.W"] > 1e-3 and report.errors["towers.0.W"] > 1e-3


# ------------------------------------------------------------------------------------------------ training
def test_fit_draws_the_masks_from_its_noise_stream_and_keeps_the_shuffling_order():
    X, Y = data(12, 3, TASKS, 0)
    model = mn.SharedBottom(3, TASKS, bottom_units=(6,), dropout=0.5, seed=1)
    reference = model.copy()
    mn.fit(model, X, Y, optimizer=mn.SGD(model.params, lr=0.1), epochs=1, batch_size=12, seed=3)
    rng = np.random.default_rng(3)
    noise_rng = rng.spawn(1)[0]  # fit's stream of training randomness
    order = rng.permutation(12)
    _, grads = reference.loss_and_grads(X[order], Y[order], rng=noise_rng)
    mn.SGD(reference.params, lr=0.1).step(grads)
    assert np.array_equal(model.params.flat, reference.params.flat)


def test_fit_with_dropout_is_deterministic_given_the_seed_and_differs_from_without():
    X, Y = data(40, 3, TASKS, 0)

    def trained(dropout, seed):
        model = mn.MMoE(3, TASKS, n_experts=3, expert_units=(4,), dropout=dropout, seed=0)
        mn.fit(model, X, Y, epochs=2, batch_size=8, seed=seed)
        return model.params.flat

    assert np.array_equal(trained(0.3, 1), trained(0.3, 1))
    assert not np.array_equal(trained(0.3, 1), trained(0.3, 2))
    assert not np.array_equal(trained(0.3, 1), trained(0.0, 1))
