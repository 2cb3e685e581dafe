"""MMoE's gate options on CGC and PLE (mmoe_np.models.ple): gradients of every parameter and X with every option and
the training noise held fixed (float64, random shapes, 1-3 tasks, 1-3 levels), the defaults unchanged bit for bit,
CGC without task experts is MMoE with the same options, training passes only, the loss's importance term, stacked
replicas, bad options, and save/load."""
import numpy as np
import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np import gating
from modelcheck import assert_training_randomness
from mmoe_np.gradcheck import relu_caches
from mmoe_np.models.ple import CGC, PLE, LevelNoise
from mmoe_np.testing import (KINK_MARGIN, assert_gradients_close, data, hidden_units, jitter, seeds, task_lists,
                             tower_units)

GATE_OPTIONS = ("gate_dropout", "gate_temperature", "top_k", "noisy_gating", "balance_weight")
temperatures = st.sampled_from([1.0, 0.5, 2.0, 0.1])


def relu_margin_of_pass(model, X, noise):
    """Smallest |ReLU input| of the pass that drops and noises the gates as ``noise`` says: with PLE the later
    levels' experts and the towers read mixtures of dropped gates, so the kinks must be measured on that pass."""
    _, cache = model._forward(X, noise)
    return min((float(np.abs(c.pre_activation).min()) for c in relu_caches(cache)), default=float("inf"))


@st.composite
def gated_cases(draw, cls=None):
    """(model holding a fixed draw of its training noise, X, Y): CGC or PLE (1-3 levels) with every gate option
    drawn, off ReLU kinks and top-k ties by KINK_MARGIN on the pass that the check repeats."""
    cls = cls or draw(st.sampled_from([CGC, PLE]))
    d, tasks = draw(st.integers(1, 4)), draw(task_lists(3))
    S, T = draw(st.integers(1, 3)), draw(st.integers(0, 2))
    options = dict(n_shared_experts=S, n_task_experts=T, expert_units=draw(hidden_units(2, 3)),
                   tower_units=draw(tower_units(2, 3)), gate_dropout=draw(st.sampled_from([0.0, 0.3, 0.6])),
                   gate_temperature=draw(temperatures), top_k=draw(st.none() | st.integers(1, S + T)),
                   noisy_gating=draw(st.booleans()), balance_weight=draw(st.sampled_from([0.0, 0.1, 1.0])))
    if cls is PLE:
        options["n_levels"] = draw(st.integers(1, 3))
    seed = draw(seeds())
    model = jitter(cls(d, tasks, seed=seed, **options), seed)
    X, Y = data(draw(st.integers(1, 5)), d, tasks, seed)
    noise = model.draw_noise(np.random.default_rng(seed), X.shape[0])
    assume(relu_margin_of_pass(model, X, noise) > KINK_MARGIN and model.top_k_margin(X, noise) > KINK_MARGIN)
    return model.holding_noise(noise), X, Y


@given(case=gated_cases(CGC))
def test_cgc_gradients_of_every_gate_option_with_the_training_noise_held_fixed(case):
    assert_gradients_close(*case)


@given(case=gated_cases(PLE))
def test_ple_gradients_of_every_gate_option_with_the_training_noise_held_fixed(case):
    assert_gradients_close(*case)


@pytest.mark.parametrize("option, value", [("gate_dropout", 0.5), ("gate_temperature", 0.3), ("top_k", 2),
                                           ("noisy_gating", True), ("balance_weight", 0.5)])
@pytest.mark.parametrize("cls, levels", [(CGC, {}), (PLE, {"n_levels": 2}), (PLE, {"n_levels": 3})])
def test_each_option_alone_has_checked_gradients(option, value, cls, levels):
    tasks = ("regression", "binary")
    for seed in range(20):  # the first draw off every kink and tie
        model = jitter(cls(3, tasks, n_shared_experts=2, n_task_experts=2, expert_units=(3,), tower_units=(2,),
                           seed=seed, **levels, **{option: value}), seed)
        X, Y = data(6, 3, tasks, seed)
        noise = model.draw_noise(np.random.default_rng(seed), 6)
        if relu_margin_of_pass(model, X, noise) > KINK_MARGIN and model.top_k_margin(X, noise) > KINK_MARGIN:
            break
    else:
        pytest.fail("no draw off the kinks in 20 seeds")
    assert (noise is None) == (option not in ("gate_dropout", "noisy_gating"))
    assert_gradients_close(model.holding_noise(noise), X, Y)


@given(cls=st.sampled_from([CGC, PLE]), d=st.integers(1, 4), tasks=task_lists(3), S=st.integers(1, 3),
       T=st.integers(0, 2), seed=seeds())
def test_top_k_all_tau_1_no_dropout_leaves_the_model_unchanged_bit_for_bit(cls, d, tasks, S, T, seed):
    plain = jitter(cls(d, tasks, n_shared_experts=S, n_task_experts=T, seed=seed), seed)
    # k = S + T keeps every expert of a task gate; PLE's shared gates mix S + K T, more when K > 1 and T > 0
    k = S + T if cls is CGC or len(tasks) == 1 or T == 0 else None
    same = cls(d, tasks, n_shared_experts=S, n_task_experts=T, seed=seed, top_k=k, gate_temperature=1.0,
               gate_dropout=0.0)
    assert same.params.keys() == plain.params.keys()
    same.params.flat[:] = plain.params.flat
    X, Y = data(5, d, tasks, seed)
    loss, grads, dX = plain.loss_and_grads(X, Y, input_grad=True)
    loss2, grads2, dX2 = same.loss_and_grads(X, Y, input_grad=True, rng=np.random.default_rng(seed))
    assert loss == loss2 and np.array_equal(dX, dX2)
    assert all(np.array_equal(grads[k], grads2[k]) for k in grads)
    assert np.array_equal(plain.forward(X), same.forward(X))
    assert same.draw_noise(np.random.default_rng(0), 5) is None


def as_mmoe_name(name):
    return name.replace("shared_experts.0.", "experts.").replace("gates.0.", "gates.")


@given(d=st.integers(1, 4), tasks=task_lists(3), S=st.integers(2, 4), data_seed=seeds(), seed=seeds(),
       tau=temperatures, balance=st.sampled_from([0.0, 0.5]), k=st.integers(1, 4),
       dropout=st.sampled_from([0.0, 0.4]), noisy=st.booleans())
def test_cgc_without_task_experts_is_mmoe_with_the_same_gate_options(d, tasks, S, data_seed, seed, tau, balance, k,
                                                                    dropout, noisy):
    options = dict(gate_temperature=tau, balance_weight=balance, top_k=min(k, S), gate_dropout=dropout,
                   noisy_gating=noisy)
    cgc = jitter(CGC(d, tasks, n_shared_experts=S, n_task_experts=0, seed=seed, **options), seed)
    mmoe = mn.MMoE(d, tasks, n_experts=S, seed=seed, **options)
    assert [as_mmoe_name(name) for name in cgc.params] == list(mmoe.params)  # the same arrays, in the same order
    for name, p in cgc.params.items():  # by name: MMoE's buffer keeps its first layer as one block
        mmoe.params[as_mmoe_name(name)][...] = p
    X, Y = data(6, d, tasks, data_seed)
    noise = mmoe.draw_noise(np.random.default_rng(seed), 6)  # MMoE's draws (N, K, E); CGC's (K, N, E)
    held = None if noise is None else (LevelNoise(gating.GateNoise(
        *(None if a is None else np.swapaxes(a, -3, -2) for a in noise)), None),)
    assume(cgc.top_k_margin(X, held) > KINK_MARGIN)
    loss_c, grads_c, dX_c = cgc.loss_and_grads(X, Y, input_grad=True, noise=held)
    loss_m, grads_m, dX_m = mmoe.loss_and_grads(X, Y, input_grad=True, noise=noise)
    np.testing.assert_allclose(loss_c, loss_m, rtol=1e-12)
    for name, g in grads_c.items():
        np.testing.assert_allclose(g, grads_m[as_mmoe_name(name)], rtol=1e-10, atol=1e-12, err_msg=name)
    np.testing.assert_allclose(dX_c, dX_m, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(cgc.gate_weights(X), mmoe.gate_weights(X), rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("cls, levels", [(CGC, {}), (PLE, {"n_levels": 3})])
def test_dropout_and_noise_apply_in_training_passes_only_and_are_deterministic_given_the_rng(cls, levels):
    tasks = ("regression", "binary")
    model = jitter(cls(3, tasks, n_shared_experts=2, n_task_experts=2, gate_dropout=0.5, noisy_gating=True, seed=0,
                       **levels), 0)
    X, Y = data(16, 3, tasks, 0)
    noise = assert_training_randomness(model, X, Y)
    assert len(noise) == model.n_levels and noise[-1].shared is None
    for level in noise:
        assert level.task.mask.shape == level.task.eps.shape == (2, 16, 4)
        if level.shared is not None:
            assert level.shared.mask.shape == level.shared.eps.shape == (1, 16, 2 + 2 * 2)
    with pytest.raises(ValueError, match="noise"):
        model.losses(X, Y, noise=noise[:1] if model.n_levels > 1 else noise * 2)


def test_every_gate_of_a_training_pass_renormalises_to_one_and_drops_what_the_mask_drops():
    tasks = ("regression", "regression")
    model = jitter(PLE(2, tasks, n_levels=2, n_shared_experts=3, n_task_experts=1, gate_dropout=0.5, seed=1), 1)
    X = data(10, 2, tasks, 1)[0]
    noise = model.draw_noise(np.random.default_rng(2), 10)
    _, cache = model._forward(X, noise)
    level = cache.levels[0]
    chains = [(level.gates, level.task_mixture, noise[0].task), (level.shared_gate[1], level.shared_gate[2],
                                                                 noise[0].shared)]
    for gates, mixture, draws in chains:
        used = gates.dropout.out                                          # the gate weights the mixture read
        np.testing.assert_allclose(used.sum(-1), 1.0, rtol=1e-12)
        assert np.all(used[np.broadcast_to(draws.mask, used.shape) == 0] == 0)
        np.testing.assert_allclose(used, gates.select.probs * draws.mask
                                   / (gates.select.probs * draws.mask).sum(-1, keepdims=True), rtol=1e-12)
        assert np.all(draws.mask.sum(-1) >= 1)


@pytest.mark.parametrize("cls, levels", [(CGC, {}), (PLE, {"n_levels": 2})])
def test_balance_loss_is_weight_times_every_gates_cv2(cls, levels):
    tasks = ("regression", "binary", "regression")
    model = jitter(cls(3, tasks, n_shared_experts=2, n_task_experts=1, balance_weight=0.7, seed=3, **levels), 3)
    plain = cls(3, tasks, n_shared_experts=2, n_task_experts=1, seed=3, **levels)
    plain.params.flat[:] = model.params.flat
    X, Y = data(9, 3, tasks, 3)
    _, cache = model._forward(X)
    gates = [c.gates.select.probs for c in cache.levels]                 # (K, N, E) per level
    gates += [c.shared_gate[1].select.probs for c in cache.levels if c.shared_gate is not None]
    assert len(gates) == 2 * model.n_levels - 1
    cv2 = sum((g.sum(-2).var(-1) / g.sum(-2).mean(-1) ** 2).sum() for g in gates)
    assert cv2 > 0
    np.testing.assert_allclose(model.losses(X, Y)[0], plain.losses(X, Y)[0] + 0.7 * cv2, rtol=1e-12)
    np.testing.assert_allclose(gates[-1 if cls is CGC else 1].sum(-1), 1.0)


def test_top_k_gates_keep_k_experts_in_every_gate():
    model = jitter(PLE(3, ("binary", "binary"), n_levels=2, n_shared_experts=3, n_task_experts=2, top_k=2,
                       seed=5), 5)
    X = data(12, 3, model.tasks, 5)[0]
    g = model.gate_weights(X, level=0)
    assert g.shape == (12, 2, 5) and np.all(np.count_nonzero(g, axis=-1) == 2)
    _, cache = model._forward(X)
    assert np.all(np.count_nonzero(cache.levels[0].shared_gate[1].select.probs, axis=-1) == 2)  # S + K T = 7
    assert model.top_k_margin(X) > 0 and PLE(3, ("binary",)).top_k_margin(X) == float("inf")


@given(n_replicas=st.integers(1, 3), seed=seeds())
def test_stacked_replicas_with_their_own_draws_match_one_model_each(n_replicas, seed):
    tasks = ("binary", "regression")
    singles = [jitter(PLE(2, tasks, n_levels=2, n_shared_experts=2, n_task_experts=1, gate_dropout=0.3,
                          noisy_gating=True, top_k=2, seed=seed), seed + r) for r in range(n_replicas)]
    stacked = mn.stack_models(singles)
    X, Y = data(5, 2, tasks, seed)
    noise = stacked.draw_noise(np.random.default_rng(seed), 5)
    loss, grads = stacked.loss_and_grads(X, Y, noise=noise)
    for r, single in enumerate(singles):
        own = tuple(LevelNoise(*(None if draws is None else gating.GateNoise(draws.mask[r], draws.eps[r])
                                 for draws in level)) for level in noise)
        l_r, g_r = single.loss_and_grads(X, Y, noise=own)
        np.testing.assert_allclose(loss[r], l_r, rtol=1e-12)
        for name in g_r:
            np.testing.assert_allclose(grads[name][r], g_r[name], rtol=1e-10, atol=1e-13, err_msg=name)


@pytest.mark.parametrize("cls", [CGC, PLE])
@pytest.mark.parametrize("options, name", [
    ({"gate_dropout": 1.0}, "gate_dropout"), ({"gate_dropout": -0.1}, "gate_dropout"),
    ({"gate_temperature": 0.0}, "gate_temperature"), ({"top_k": 0}, "top_k"), ({"top_k": 7}, "top_k"),
    ({"noisy_gating": 1}, "noisy_gating"), ({"balance_weight": -1.0}, "balance_weight")])
def test_bad_gate_options_name_themselves(cls, options, name):
    with pytest.raises(ValueError, match=name):
        cls(3, ("regression", "binary"), n_shared_experts=4, n_task_experts=2, **options)


def test_top_k_is_bounded_by_the_experts_a_task_gate_mixes_not_by_all_experts():
    # 4 shared + 2 own: a task gate mixes 6 of the 8 experts; the shared gate mixes all 8 but shares the one top_k
    CGC(3, ("regression", "binary"), n_shared_experts=4, n_task_experts=2, top_k=6)
    with pytest.raises(ValueError, match=r"top_k must be at most n_shared_experts \+ n_task_experts = 6"):
        PLE(3, ("regression", "binary"), n_shared_experts=4, n_task_experts=2, top_k=8)


@pytest.mark.parametrize("cls, levels", [(CGC, {}), (PLE, {"n_levels": 3})])
def test_gate_options_round_trip_through_config_and_save(tmp_path, cls, levels):
    model = jitter(cls(3, ("regression", "binary"), n_shared_experts=3, n_task_experts=1, gate_dropout=0.1, top_k=2,
                       noisy_gating=True, balance_weight=0.01, gate_temperature=0.5, loss_weighting="uncertainty",
                       seed=4, **levels), 4)
    assert {k: model.config()[k] for k in GATE_OPTIONS} == {"gate_dropout": 0.1, "gate_temperature": 0.5, "top_k": 2,
                                                            "noisy_gating": True, "balance_weight": 0.01}
    again = cls(**model.config())
    assert again.params.keys() == model.params.keys()
    loaded = mn.load(model.save(tmp_path / "m.npz"))
    assert type(loaded) is cls and loaded.config() == model.config()
    assert all(np.array_equal(loaded.params[k], v) for k, v in model.params.items())
    X, Y = data(7, 3, model.tasks, 4)
    noise = model.draw_noise(np.random.default_rng(1), 7)
    assert loaded.losses(X, Y, noise=noise)[0] == model.losses(X, Y, noise=noise)[0]
    assert "gates.0.noise.W" in model.params and "loss.log_vars" in model.params
    if cls is PLE:
        assert "gates.1.shared.noise.b" in model.params and "gates.2.shared.W" not in model.params
    assert not set(GATE_OPTIONS) & set(cls(3, ("regression",)).config())  # Tang et al.'s models: none listed


def test_fit_trains_cgc_with_gate_dropout_and_noise():
    tasks = ("regression", "binary")
    model = CGC(3, tasks, n_shared_experts=2, n_task_experts=1, gate_dropout=0.2, noisy_gating=True, seed=0)
    X, Y = data(64, 3, tasks, 0)
    before = model.losses(X, Y)[0]
    mn.fit(model, X, Y, optimizer=mn.Adam(model.params, lr=0.01), epochs=5, batch_size=16, seed=0)
    assert model.losses(X, Y)[0] < before
    assert np.any(model.params["gates.0.noise.W"] != 0)  # the noise scales learned: the passes were noisy
