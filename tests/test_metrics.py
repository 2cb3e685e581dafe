"""roc_auc against the pairwise definition, known values, invariances and input checks."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmoe_np as mn


def pairwise_auc(y, s):
    """The definition: over all (positive, negative) pairs, P(s_pos > s_neg) + P(s_pos == s_neg) / 2."""
    pos, neg = s[y == 1][:, None], s[y == 0][None, :]
    return (pos > neg).mean() + 0.5 * (pos == neg).mean()


@st.composite
def labelled_scores(draw, levels=st.integers(0, 4)):
    """(y, s) of one length with both classes; scores from few levels, so ties abound."""
    n = draw(st.integers(2, 60))
    y = draw(st.lists(st.integers(0, 1), min_size=n, max_size=n).filter(lambda v: 0 < sum(v) < len(v)))
    s = draw(st.lists(levels, min_size=n, max_size=n))
    return np.array(y), np.array(s, dtype=float)


@settings(max_examples=300, deadline=None)
@given(labelled_scores())
def test_matches_pairwise_definition_with_many_ties(data):
    y, s = data
    assert mn.metrics.roc_auc(y, s) == pytest.approx(pairwise_auc(y, s), abs=1e-12)


@settings(max_examples=200, deadline=None)
@given(labelled_scores(levels=st.floats(-1e6, 1e6, allow_nan=False)))
def test_matches_pairwise_definition_with_real_scores(data):
    y, s = data
    assert mn.metrics.roc_auc(y, s) == pytest.approx(pairwise_auc(y, s), abs=1e-12)


@settings(max_examples=100, deadline=None)
@given(labelled_scores(levels=st.integers(-20, 20)))
def test_invariant_to_increasing_transforms(data):
    y, s = data
    auc = mn.metrics.roc_auc(y, s)
    for transformed in (3 * s + 7, s ** 3, np.exp(s / 4), np.arctan(s)):
        assert mn.metrics.roc_auc(y, transformed) == pytest.approx(auc, abs=1e-12)
    assert mn.metrics.roc_auc(y, -s) == pytest.approx(1 - auc, abs=1e-12)


def test_known_values():
    y = np.array([0, 0, 1, 1, 0, 1])
    s = np.array([0.1, 0.2, 0.7, 0.9, 0.3, 0.8])
    assert mn.metrics.roc_auc(y, s) == 1.0
    assert mn.metrics.roc_auc(y, -s) == 0.0
    assert mn.metrics.roc_auc(y, np.full(6, 0.4)) == 0.5
    # positives 0.5, 0.9 against negatives 0.5, 0.1: one tie and three wins -> 3.5 / 4
    assert mn.metrics.roc_auc([1, 0, 1, 0], [0.5, 0.5, 0.9, 0.1]) == 0.875


def test_accepts_bool_and_float_labels_and_lists():
    s = [0.2, 0.9, 0.4, 0.3]
    expected = mn.metrics.roc_auc(np.array([0, 1, 1, 0]), np.array(s))
    assert mn.metrics.roc_auc([False, True, True, False], s) == expected
    assert mn.metrics.roc_auc(np.array([0.0, 1.0, 1.0, 0.0], dtype=np.float32), s) == expected


def test_large_input_is_fast_and_matches_rank_formula():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 1_000_000)
    s = rng.integers(0, 100, 1_000_000) + 0.5 * y  # ties within each class, overlap across classes
    auc = mn.metrics.roc_auc(y, s)
    # counting pairs by score histogram: exact for 200 levels
    levels, inverse = np.unique(s, return_inverse=True)
    pos = np.bincount(inverse[y == 1], minlength=levels.size)
    neg = np.bincount(inverse[y == 0], minlength=levels.size)
    wins = (pos * (np.cumsum(neg) - neg)).sum() + 0.5 * (pos * neg).sum()
    assert auc == pytest.approx(wins / (pos.sum() * neg.sum()), abs=1e-12)


@pytest.mark.parametrize("y_true, score, argument", [
    ([0, 1, 2], [0.1, 0.2, 0.3], "y_true"),
    ([0, 1, np.nan], [0.1, 0.2, 0.3], "y_true"),
    ([1, 1, 1], [0.1, 0.2, 0.3], "y_true"),
    ([0, 0], [0.1, 0.2], "y_true"),
    ([], [], "y_true"),
    ([[0, 1]], [[0.1, 0.2]], "y_true"),
    (["0", "1"], [0.1, 0.2], "y_true"),
    ([0, 1], [0.1, np.nan], "score"),
    ([0, 1], [0.1, np.inf], "score"),
    ([0, 1], ["a", "b"], "score"),
    ([0, 1], [[0.1, 0.2]], "score"),
    ([0, 1, 1], [0.1, 0.2], "same length"),
])
def test_bad_input_names_the_argument(y_true, score, argument):
    with pytest.raises(ValueError, match=argument):
        mn.metrics.roc_auc(y_true, score)
