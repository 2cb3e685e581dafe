"""The label-correlation study (paper Fig. 2): numbers, shortcut vs the full generator, and the written outputs."""
import csv
import json

import numpy as np
import pytest

from mmoe_np.data.synthetic import make_synthetic
from mmoe_np.experiments.correlation import (label_correlation_study, label_pearson, write_label_correlation_csv,
                                             write_label_correlation_json)
from mmoe_np.experiments.figures import plot_label_correlation

GRID = (0.0, 0.25, 0.5, 0.75, 1.0)


@pytest.fixture(scope="module")
def small():
    return label_correlation_study(GRID, n_points=2000, runs=30, seed=1)


def test_label_pearson_matches_numpy_corrcoef():
    Y = np.random.default_rng(0).standard_normal((3, 4, 50, 2)) @ np.array([[1.0, 0.4], [0.0, 1.0]])
    expected = [[np.corrcoef(y.T)[0, 1] for y in block] for block in Y]
    np.testing.assert_allclose(label_pearson(Y), expected, rtol=1e-12)


@pytest.mark.parametrize("shape", [(10, 3), (10, 1), (1, 2), (10,)])
def test_label_pearson_needs_two_label_columns_and_two_points(shape):
    with pytest.raises(ValueError, match="Y must have shape"):  # (10, 3) was read as its first two columns
        label_pearson(np.ones(shape))


def test_std_is_the_sample_std_over_runs(small):
    x = small.per_run
    expected = np.sqrt(((x - x.mean(axis=1, keepdims=True)) ** 2).sum(axis=1) / (x.shape[1] - 1))
    np.testing.assert_allclose(small.std, expected, rtol=1e-12)
    single = label_correlation_study(GRID, n_points=100, runs=1, seed=0)
    np.testing.assert_array_equal(single.std, np.zeros(len(GRID)))


def test_shapes_and_settings(small):
    assert small.per_run.shape == (5, 30) and small.runs == 30 and small.n_points == 2000
    assert small.mean.shape == small.std.shape == (5,)
    assert small.seconds > 0 and small.spec.n_sines == 10


def test_mean_correlation_rises_with_p_from_zero_to_one(small):
    assert np.all(np.diff(small.mean) > 0)
    assert abs(small.mean[0]) < 0.02
    assert small.mean[-1] > 0.95


def test_same_seed_same_numbers_other_seed_other_numbers(small):
    again = label_correlation_study(GRID, n_points=2000, runs=30, seed=1)
    other = label_correlation_study(GRID, n_points=2000, runs=30, seed=2)
    np.testing.assert_array_equal(again.per_run, small.per_run)
    assert not np.allclose(other.per_run, small.per_run)


@pytest.mark.parametrize("p", [0.2, 0.8])
def test_linear_tasks_give_p_shrunk_by_the_noise(p):
    result = label_correlation_study([p], n_points=5000, runs=20, seed=3, n_sines=0, scale=2.0, noise_std=1.0)
    assert abs(result.mean[0] - 0.8 * p) < 0.01  # corr = p c^2 / (c^2 + noise_std^2)


def test_projection_shortcut_matches_the_full_generator():
    # The study draws g = U x ~ N(0, I_2) instead of x; make_synthetic draws the d-dimensional x. Same law.
    study = label_correlation_study([0.5], n_points=2000, runs=200, seed=4, scale=2.0).per_run[0]
    full = [label_pearson(make_synthetic(2000, 5, correlation=0.5, scale=2.0, seed=s).Y) for s in range(200)]
    assert abs(study.mean() - np.mean(full)) < 0.05  # both means have standard error ~0.01
    assert 0.7 < study.std() / np.std(full) < 1.4


def test_csv_json_and_png_outputs(small, tmp_path):
    with write_label_correlation_csv(small, tmp_path / "fig2.csv").open() as f:
        rows = list(csv.DictReader(f))
    assert [float(r["correlation"]) for r in rows] == list(GRID)
    np.testing.assert_allclose([float(r["mean"]) for r in rows], small.mean, atol=1e-6)
    np.testing.assert_allclose([float(r["upper"]) - float(r["lower"]) for r in rows], 4 * small.std, atol=1e-5)

    summary = json.loads(write_label_correlation_json(small, tmp_path / "fig2.json").read_text())
    assert {"n_points", "runs", "seed", "generator", "seconds", "correlations", "mean", "std"} <= summary.keys()
    assert summary["generator"]["scale"] == 1.0 and summary["runs"] == 30
    assert {"mmoe_np", "git_commit", "numpy", "blas", "thread_variables"} <= summary["environment"].keys()  # where it was computed
    np.testing.assert_allclose(summary["std"], small.std)

    png = plot_label_correlation(small, tmp_path / "fig2.png")
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and png.stat().st_size > 5000


@pytest.mark.parametrize("kwargs, error, name", [
    (dict(correlations=()), ValueError, "correlations"),
    (dict(correlations=(0.5, 1.2)), ValueError, "correlation"),
    (dict(n_points=1), ValueError, "n_points"),
    (dict(runs=0), ValueError, "runs"),
    (dict(noise_std=-1.0), ValueError, "noise_std"),
    (dict(n_experts=3), TypeError, "n_experts"),
])
def test_invalid_arguments(kwargs, error, name):
    with pytest.raises(error, match=name):
        label_correlation_study(**(dict(n_points=100, runs=2) | kwargs))
