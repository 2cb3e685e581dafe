"""Paired statistics and the one verdict function (mmoe_np.experiments.stats), on constructed data.

Every random draw has a fixed seed, so the coverage checks are deterministic: they cannot flake.
"""
import math

import numpy as np
import pytest

from mmoe_np.experiments import stats


# ---------------------------------------------------------------- the t quantile


@pytest.mark.parametrize("df", [1, 2, 3, 4, 5, 9, 19, 30, 99, 399])
@pytest.mark.parametrize("probability", [0.6, 0.9, 0.975, 0.995])
def test_t_quantile_matches_scipy(df, probability):
    scipy_stats = pytest.importorskip("scipy.stats")
    assert stats.t_quantile(probability, df) == pytest.approx(scipy_stats.t.ppf(probability, df), rel=1e-9)


def test_t_quantile_known_values_and_limits():
    assert stats.t_quantile(0.975, 1) == pytest.approx(12.706204736, rel=1e-8)  # tables; Cauchy: tan(0.475 pi)
    assert stats.t_quantile(0.75, 1) == pytest.approx(1.0, rel=1e-10)            # Cauchy's quartile
    assert stats.t_quantile(0.975, 2) == pytest.approx(4.30265273, rel=1e-8)      # df 2: t = 2p'/sqrt(2(1-p'^2))
    assert stats.t_quantile(0.975, 19) == pytest.approx(2.09302405, rel=1e-8)
    assert stats.t_quantile(0.975, 100_000) == pytest.approx(1.959963985, rel=1e-4)  # tends to the normal's


@pytest.mark.parametrize("probability, df, name", [(0.5, 3, "probability"), (1.0, 3, "probability"),
                                                   (0.9, 0, "df"), (0.9, 2.5, "df")])
def test_t_quantile_bad_arguments(probability, df, name):
    with pytest.raises(ValueError, match=name):
        stats.t_quantile(probability, df)


# ---------------------------------------------------------------- intervals


def test_t_interval_by_hand():
    d = np.array([0.010, 0.004, -0.002, 0.008, 0.005])
    iv = stats.paired_interval(d)
    mean = d.sum() / 5
    s = math.sqrt(((d - mean) ** 2).sum() / 4)
    half = 2.7764451051977987 * s / math.sqrt(5)  # t_{0.975, 4}
    assert (iv.n, iv.method, iv.level) == (5, "t", 0.95)
    assert iv.mean == pytest.approx(mean, rel=1e-12) and iv.std == pytest.approx(s, rel=1e-12)
    assert (iv.low, iv.high) == (pytest.approx(mean - half, rel=1e-9), pytest.approx(mean + half, rel=1e-9))
    assert iv.format() == f"mean difference +0.0050, 95% CI [{mean - half:+.4f}, {mean + half:+.4f}] (t, 5 runs)"


def test_compare_pairs_runs_and_pairing_removes_the_shared_noise():
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 1.0, 20)                   # what run r of both models has in common (large)
    a = 0.90 + shared + rng.normal(0, 0.001, 20)
    b = 0.89 + shared + rng.normal(0, 0.001, 20)
    iv = stats.compare(a, b)
    assert iv.low > 0.008 and iv.high < 0.012         # paired: the 0.01 effect is resolved
    unpaired_half = 2.02 * math.sqrt(a.var(ddof=1) / 20 + b.var(ddof=1) / 20)
    assert unpaired_half > 100 * (iv.high - iv.low)   # an unpaired interval would be hundreds of times wider
    np.testing.assert_array_equal(stats.paired_differences(a, b), a - b)


def test_bootstrap_interval_is_reproducible_and_close_to_t_for_normal_data():
    d = np.random.default_rng(2).normal(0.01, 0.02, 40)
    boot = stats.paired_interval(d, method="bootstrap", n_boot=4000, seed=3)
    assert boot == stats.paired_interval(d, method="bootstrap", n_boot=4000, seed=3)
    t = stats.paired_interval(d)
    assert boot.mean == t.mean and boot.method == "bootstrap"
    assert boot.low < t.mean < boot.high
    assert abs((boot.high - boot.low) - (t.high - t.low)) < 0.15 * (t.high - t.low)


def coverage(method, n, draws, seed, **options):
    """Fraction of ``draws`` intervals over n normal differences (mean 0.3, std 1) that contain 0.3."""
    rng = np.random.default_rng(seed)
    hits = 0
    for _ in range(draws):
        iv = stats.paired_interval(rng.normal(0.3, 1.0, n), method=method, **options)
        hits += iv.low <= 0.3 <= iv.high
    return hits / draws


def test_t_interval_covers_95_percent():
    # 2,000 draws: the binomial std of the coverage is 0.005; the bounds are 4 of them away, and the seed is fixed.
    assert 0.93 <= coverage("t", 10, 2000, seed=4) <= 0.97
    assert 0.93 <= coverage("t", 30, 2000, seed=5) <= 0.97


def test_bootstrap_interval_covers_about_95_percent():
    # The percentile bootstrap undercovers a little at n = 30 (about 0.93-0.94 in theory): a wider band below.
    assert 0.91 <= coverage("bootstrap", 30, 2000, seed=6, n_boot=1000) <= 0.97


@pytest.mark.parametrize("kwargs, name", [({"level": 1.0}, "level"), ({"level": 0}, "level"),
                                          ({"method": "z"}, "method"), ({"method": "bootstrap", "n_boot": 0},
                                                                         "n_boot")])
def test_interval_bad_arguments(kwargs, name):
    with pytest.raises(ValueError, match=name):
        stats.paired_interval([0.1, 0.2, 0.3], **kwargs)


@pytest.mark.parametrize("d", [[0.1], [], [[0.1, 0.2]], [0.1, np.nan]])
def test_too_few_or_non_finite_differences_are_refused(d):
    with pytest.raises(ValueError, match="differences"):
        stats.paired_interval(d)


def test_paired_differences_names_the_bad_side():
    with pytest.raises(ValueError, match="^a must"):
        stats.paired_differences([[1.0]], [1.0])
    with pytest.raises(ValueError, match="^b must"):
        stats.paired_differences([1.0, 2.0], [1.0, np.inf])
    with pytest.raises(ValueError, match="same runs"):
        stats.paired_differences([1.0, 2.0], [1.0, 2.0, 3.0])


# ---------------------------------------------------------------- verdicts


def test_a_clear_effect_holds():
    d = np.random.default_rng(7).normal(0.01, 0.002, 20)
    v = stats.verdict(d, "greater", claim="MMoE beats OMoE")
    assert v.outcome == "holds" and v.holds is True and v.word == "holds"
    assert v.line().startswith("MMoE beats OMoE: holds (mean difference +0.0094, 95% CI [+0.0086, +0.0101]")
    assert "95% CI [+0.0" in v.line() and "(t, 20 runs)" in v.line()
    # the same numbers claimed the other way round: the interval lies entirely on the other side
    assert stats.verdict(d, "less").outcome == "does not hold"
    assert stats.verdict(-d, "less").outcome == "holds"


def test_no_effect_does_not_hold_within_the_equivalence_margin():
    d = np.random.default_rng(8).normal(0.0, 0.001, 40)
    v = stats.verdict(d, "greater", margin=0.002)
    assert v.outcome == "does not hold" and v.holds is False
    assert v.line().endswith("; equivalence margin 0.002)")
    # without a margin an interval across 0 cannot say "no effect": more runs would narrow it, not decide it
    assert stats.verdict(d, "greater").outcome == "inconclusive"


def test_a_noisy_effect_is_inconclusive_and_says_at_how_many_runs():
    d = np.random.default_rng(9).normal(0.002, 0.02, 10)
    v = stats.verdict(d, "greater", margin=0.001)
    assert v.outcome == "inconclusive" and v.holds is None
    assert v.word == "inconclusive at 10 runs" and ": inconclusive at 10 runs (mean difference" in f": {v.line()}"
    assert v.interval.low < 0 < v.interval.high


def test_verdict_edges_and_order():
    # An interval inside (0, margin]: the claimed side is checked first, so the small but real effect holds.
    d = np.array([0.0005, 0.0006, 0.0004, 0.0005, 0.0005])
    assert stats.verdict(d, "greater", margin=0.01).outcome == "holds"
    # Identical differences: a zero-width interval decides by its sign (0 itself: not on either side).
    assert stats.verdict([0.0, 0.0, 0.0], "greater").outcome == "inconclusive"
    assert stats.verdict([0.0, 0.0, 0.0], "greater", margin=0.1).outcome == "does not hold"
    assert stats.verdict([0.2, 0.2], "less").outcome == "does not hold"


def test_verdict_by_bootstrap_and_as_dict():
    d = np.random.default_rng(10).normal(0.01, 0.002, 20)
    v = stats.verdict(d, "greater", method="bootstrap", n_boot=2000, seed=1, claim="c")
    doc = v.as_dict()
    assert doc["outcome"] == "holds" and doc["verdict"] == "holds" and doc["claim"] == "c"
    assert doc["interval"]["method"] == "bootstrap" and doc["interval"]["n"] == 20


@pytest.mark.parametrize("kwargs, name", [({"direction": "bigger"}, "direction"), ({"margin": -1}, "margin"),
                                          ({"claim": 3}, "claim")])
def test_verdict_bad_arguments(kwargs, name):
    kwargs = {"direction": "greater", **kwargs}
    with pytest.raises(ValueError, match=name):
        stats.verdict([0.1, 0.2, 0.3], kwargs.pop("direction"), **kwargs)


def test_paired_by_seed_pairs_the_shared_seeds_in_order():
    a = {3: 0.93, 0: 0.90, 1: 0.91, 7: 0.5}
    b = {1: 0.81, 0: 0.80, 3: 0.83, 9: 0.1}
    np.testing.assert_allclose(stats.paired_by_seed(a, b), [0.10, 0.10, 0.10])  # seeds 0, 1, 3
    np.testing.assert_allclose(stats.paired_by_seed({0: 1.0, 1: 3.0}, {1: 1.0, 0: 0.0}), [1.0, 2.0])
