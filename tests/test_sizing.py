"""Parameter counts (both conventions) against closed forms for every model, and parameter matching."""
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np.sizing import (check_sizes, count_params, match_width, matched_sizes, progressive_experts,
                            shared_bottom_width)
from modelcheck import hidden, task_lists, towers

n_features = st.integers(1, 6)


def weights(sizes):
    """Weights of an MLP with layer sizes (d_in, h_1, ..., d_out)."""
    return sum(a * b for a, b in zip(sizes[:-1], sizes[1:]))


def full(sizes):
    """Weights and biases of an MLP."""
    return weights(sizes) + sum(sizes[1:])


def tower_counts(h, tower_units, K):
    """(full, paper) counts of K towers: the paper counts the hidden layers' weights only, not the output layer."""
    return K * full((h, *tower_units, 1)), K * weights((h, *tower_units))


def expected_counts(model):
    """Closed-form (full, paper) parameter counts of one model, from its configuration alone."""
    d, K, c = model.n_features, model.n_tasks, model.config()
    if isinstance(model, mn.SharedBottom):
        sizes = (d, *c["bottom_units"])
        body = (full(sizes), weights(sizes))
    elif isinstance(model, (mn.OMoE, mn.MMoE)):
        E, G = c["n_experts"], K if isinstance(model, mn.MMoE) else 1
        sizes = (d, *c["expert_units"])
        body = (E * full(sizes) + G * (d * E + E), E * weights(sizes))  # gates: G x (W (d, E) + b (E))
    elif isinstance(model, mn.TensorFactorization):
        sizes, (r1, r2, r3) = (d, *c["hidden_units"]), c["ranks"]
        factors = sum(r1 * r2 * r3 + d_in * r1 + d_out * r2 + K * r3 for d_in, d_out in zip(sizes[:-1], sizes[1:]))
        body = (factors + K * sum(sizes[1:]), factors)
    else:  # SingleTask, L2Constrained, CrossStitch: K columns, plus one K x K stitch per hidden layer
        sizes = (d, *c["hidden_units"])
        stitches = len(c["hidden_units"]) * K * K if isinstance(model, mn.CrossStitch) else 0
        body = (K * full(sizes) + stitches, K * weights(sizes) + stitches)
    tower_full, tower_paper = tower_counts(sizes[-1], c["tower_units"], K)
    return body[0] + tower_full, body[1] + tower_paper


@st.composite
def models(draw):
    d, tasks, units, tower_units = draw(n_features), draw(task_lists), draw(hidden), draw(towers)
    kind = draw(st.sampled_from(["SingleTask", "SharedBottom", "OMoE", "MMoE", "L2Constrained", "CrossStitch",
                                 "TensorFactorization"]))
    if kind == "SharedBottom":
        return mn.SharedBottom(d, tasks, bottom_units=units, tower_units=tower_units)
    if kind in ("OMoE", "MMoE"):
        return getattr(mn, kind)(d, tasks, n_experts=draw(st.integers(1, 4)), expert_units=units,
                                 tower_units=tower_units)
    if kind == "TensorFactorization":
        sizes = (d, *units)
        ranks = tuple(draw(st.integers(1, m)) for m in (min(sizes[:-1]), min(sizes[1:]), len(tasks)))
        return mn.TensorFactorization(d, tasks, hidden_units=units, tower_units=tower_units, ranks=ranks)
    return getattr(mn, kind)(d, tasks, hidden_units=units, tower_units=tower_units)


@given(model=models(), n_replicas=st.integers(1, 3))
def test_counts_match_the_closed_forms(model, n_replicas):
    expected_full, expected_paper = expected_counts(model)
    assert count_params(model) == expected_full == sum(p.size for p in model.params.values())
    assert count_params(model, convention="paper") == expected_paper
    stacked = mn.stack_models([model] * n_replicas)  # per replica, whatever the number of replicas
    assert count_params(stacked) == expected_full
    assert count_params(stacked, convention="paper") == expected_paper


def test_the_papers_budget_and_shared_bottom_width():
    # Sec. 5.1: "100 x 16 x 8 + 16 x 8 x 2 = 13056" and a shared bottom of 13056 / (100 + 8 x 2) ~ 113 units
    tasks = ("regression", "regression")
    mmoe = mn.MMoE(100, tasks, n_experts=8, expert_units=(16,), tower_units=(8,))
    assert count_params(mmoe, convention="paper") == 100 * 16 * 8 + 16 * 8 * 2 == 13056
    assert shared_bottom_width(mmoe) == 113
    bottom = mn.SharedBottom(100, tasks, bottom_units=(113,), tower_units=(8,))
    assert count_params(bottom, convention="paper") == 116 * 113
    # in full: the MMoE adds biases, 2 gates and the output layers: 8 x 1616 + 2 x 808 + 2 x (136 + 9) = 14834;
    # a shared bottom of width w has 117 w + 34, closest at w = 126 (14776; 127 gives 14893)
    assert count_params(mmoe) == 14834
    assert shared_bottom_width(mmoe, convention="full") == 126
    # a deeper bottom (w, w) costs 100 w + w^2 + 8 w x 2: 13020 at w = 70 (71 gives 13277)
    assert shared_bottom_width(mmoe, depth=2) == 70


@pytest.mark.parametrize("convention", ["full", "paper"])
@pytest.mark.parametrize("family", ["CrossStitch", "L2Constrained", "TensorFactorization", "MMoE"])
def test_match_width_finds_the_closest_count(family, convention):
    tasks = ("regression", "binary", "binary")

    def make(w):
        if family == "TensorFactorization":
            return mn.TensorFactorization(7, tasks, hidden_units=(w,), tower_units=(4,), ranks=(3, 1, 2))
        if family == "MMoE":
            return mn.MMoE(7, tasks, n_experts=3, expert_units=(w,), tower_units=(4,))
        return getattr(mn, family)(7, tasks, hidden_units=(w,), tower_units=(4,))

    counts = {w: count_params(make(w), convention=convention) for w in range(1, 61)}
    for target in (1, 50, 333, 1000, 2500, counts[17], counts[17] + 1):
        if target > counts[60]:
            continue
        best = min(counts, key=lambda w: (abs(counts[w] - target), w))  # brute force, the smaller width on a tie
        assert match_width(make, target, convention=convention, max_width=60) == best, target


def test_match_width_on_a_tie_takes_the_smaller_width():
    def make(w):  # hidden layer (2 w + w), tower output layer (w + 1): 4 w + 1 parameters
        return mn.SingleTask(2, ("regression",), hidden_units=(w,), tower_units=())

    assert [count_params(make(w)) for w in (4, 5)] == [17, 21]
    assert match_width(make, 19, max_width=10) == 4  # exactly between the two: the smaller
    assert match_width(make, 20, max_width=10) == 5
    assert match_width(make, 1, max_width=10) == 1
    assert match_width(make, 41, max_width=10) == 10


def test_bad_sizing_arguments():
    model = mn.MMoE(5, ("regression",), n_experts=2, expert_units=(3,), tower_units=(2,))

    def make(w):
        return mn.SingleTask(5, ("regression",), hidden_units=(w,))

    with pytest.raises(ValueError, match="convention must be one of"):
        count_params(model, convention="paper-ish")
    with pytest.raises(ValueError, match="model must be a mmoe_np model"):
        count_params({"W": np.ones(3)})
    with pytest.raises(ValueError, match="target must be a positive integer"):
        match_width(make, 0)
    with pytest.raises(ValueError, match="target = 10000000 exceeds the count"):
        match_width(make, 10_000_000, max_width=50)
    with pytest.raises(ValueError, match="max_width must be a positive integer"):
        match_width(make, 100, max_width=0)
    with pytest.raises(ValueError, match="convention must be one of"):
        match_width(make, 100, convention="all")
    with pytest.raises(ValueError, match="depth must be a positive integer"):
        shared_bottom_width(model, depth=0)
    with pytest.raises(ValueError, match="model must have tower_units"):
        shared_bottom_width(object())


SEVEN = (mn.SingleTask, mn.SharedBottom, mn.L2Constrained, mn.CrossStitch, mn.TensorFactorization, mn.OMoE, mn.MMoE)


def test_matched_sizes_give_every_model_mmoes_paper_count():
    tasks = ("binary", "binary")
    sizes = matched_sizes(40, tasks, SEVEN, n_experts=4, expert_units=(8,), tower_units=(4,))
    assert list(sizes) == list(SEVEN)
    target = count_params(mn.MMoE(40, tasks, n_experts=4, expert_units=(8,), tower_units=(4,)), convention="paper")
    assert target == 40 * 8 * 4 + 8 * 4 * 2
    for cls, kwargs in sizes.items():
        count = count_params(cls(40, tasks, **kwargs), convention="paper")
        assert abs(count - target) / target < 0.05, (cls.__name__, count, target)
        assert kwargs["tower_units"] == (4,)
    assert sizes[mn.L2Constrained]["l2_weight"] == 1e-2 and "l2_weight" not in sizes[mn.SingleTask]
    w = sizes[mn.TensorFactorization]["hidden_units"][0]
    assert sizes[mn.TensorFactorization]["ranks"] == (w, w, 2)


def test_check_sizes_normalises_and_names_the_bad_argument():
    assert check_sizes(expert_units=[16], tf_ranks=[4, 3, 1], l2_weight=0) == {
        "expert_units": (16,), "tf_ranks": (4, 3, 1), "l2_weight": 0.0}
    for kwargs, name in [(dict(n_experts=0), "n_experts"), (dict(tower_units="8"), "tower_units"),
                         (dict(tf_ranks=(1, 2)), "tf_ranks"), (dict(width=3), "sizes: unknown")]:
        with pytest.raises(ValueError, match=name):
            check_sizes(**kwargs)
    with pytest.raises(ValueError, match="models: no size matching for 'MixtureOfExperts'"):
        matched_sizes(10, ("binary",), [mn.MixtureOfExperts])


@given(model=models(), seed=st.integers(0, 100))
def test_the_papers_count_leaves_out_uncertainty_weightings_log_variances(model, seed):
    uncertain = type(model)(**{**model.config(), "task_weights": None, "loss_weighting": "uncertainty"})
    assert "loss.log_vars" in uncertain.params
    assert count_params(uncertain, convention="paper") == count_params(model, convention="paper")
    assert count_params(uncertain) == count_params(model) + model.n_tasks  # every trainable number: s_k too
    for cls in (mn.CGC, mn.PLE):
        plain = cls(model.n_features, model.tasks, seed=seed)
        weighted = cls(model.n_features, model.tasks, loss_weighting="uncertainty", seed=seed)
        assert count_params(weighted, convention="paper") == count_params(plain, convention="paper")
        assert count_params(weighted) == count_params(plain) + model.n_tasks


def test_cgc_and_ple_counts_and_their_experts_in_matched_sizes():
    tasks = ("binary", "binary")
    sizes = matched_sizes(40, tasks, [mn.MMoE, mn.CGC, mn.PLE], n_experts=8, expert_units=(16,), tower_units=(8,))
    assert sizes[mn.CGC] == {"n_shared_experts": 4, "n_task_experts": 2, "expert_units": (16,), "tower_units": (8,)}
    assert sizes[mn.PLE] == {"n_levels": 2, **sizes[mn.CGC]}
    mmoe, cgc, ple = (cls(40, tasks, **kwargs) for cls, kwargs in sizes.items())
    experts_and_towers = 8 * 40 * 16 + 2 * 16 * 8  # the paper's count: 8 experts of 16 units, towers of 8
    assert count_params(mmoe, convention="paper") == count_params(cgc, convention="paper") == experts_and_towers
    # PLE's second level: 8 more experts reading the first level's 16 units; its shared gate is not counted
    assert count_params(ple, convention="paper") == experts_and_towers + 8 * 16 * 16
    # gates: MMoE's two mix 8 experts each, CGC's two mix 4 + 2 each; PLE's level 0 adds a shared gate over all 8
    assert count_params(mmoe) - count_params(cgc) == 2 * (40 * 8 + 8) - 2 * (40 * 6 + 6)
    # PLE over CGC: level 1's 8 experts (16 -> 16), level 0's shared gate over 8, level 1's task gates over 6
    assert count_params(ple) - count_params(cgc) == 8 * (16 * 16 + 16) + (40 * 8 + 8) + 2 * (16 * 6 + 6)


@pytest.mark.parametrize("n_experts, n_tasks, expected", [(8, 2, (4, 2)), (3, 2, (1, 1)), (12, 3, (6, 2)),
                                                          (2, 1, (1, 1)), (9, 2, (5, 2)), (16, 2, (8, 4))])
def test_progressive_experts_split_mmoes_experts(n_experts, n_tasks, expected):
    shared, per_task = progressive_experts(n_experts, n_tasks)
    assert (shared, per_task) == expected and shared + n_tasks * per_task == n_experts


def test_progressive_experts_need_one_shared_and_one_per_task():
    with pytest.raises(ValueError, match=r"n_experts must be at least n_tasks \+ 1 = 3"):
        progressive_experts(2, 2)
    with pytest.raises(ValueError, match="n_experts must be at least n_tasks"):
        matched_sizes(10, ("binary", "binary"), [mn.CGC], n_experts=2)
