"""The synthetic task-pair generator (paper Sec. 3.2): geometry of u and w, the label formula, seeding, errors."""
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np.data.synthetic import SyntheticSpec, SyntheticTasks, make_synthetic, sine_labels, weight_coordinates

correlations = st.floats(-1.0, 1.0)
seeds = st.integers(0, 2**32 - 1)


@settings(max_examples=60, deadline=None)
@given(p=correlations, c=st.floats(1e-3, 1e3), d=st.integers(2, 300), seed=seeds)
def test_u_orthonormal_and_w_has_norm_c_and_cosine_p(p, c, d, seed):
    tasks = SyntheticSpec(scale=c).draw(d, p, seed)
    np.testing.assert_allclose(tasks.u @ tasks.u.T, np.eye(2), rtol=0, atol=1e-12)
    norms = np.linalg.norm(tasks.w, axis=1)
    np.testing.assert_allclose(norms, [c, c], rtol=1e-12)
    assert abs(tasks.w[0] @ tasks.w[1] / (norms[0] * norms[1]) - p) < 1e-12


def test_public_names_reach_mn_data():
    assert mn.data.make_synthetic is make_synthetic
    assert mn.data.SyntheticTasks is SyntheticTasks


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("n_test", [0, 7])
def test_shapes_and_dtypes(dtype, n_test):
    data = make_synthetic(50, 12, correlation=0.3, n_sines=4, n_test=n_test, seed=0, dtype=dtype)
    assert (data.X.shape, data.Y.shape) == ((50, 12), (50, 2))
    assert (data.X_test.shape, data.Y_test.shape) == ((n_test, 12), (n_test, 2))
    assert {a.dtype for a in (data.X, data.Y, data.X_test, data.Y_test)} == {np.dtype(dtype)}
    assert (data.u.shape, data.w.shape, data.alpha.shape, data.beta.shape) == ((2, 12), (2, 12), (4,), (4,))
    assert data.correlation == 0.3 and data.spec.n_sines == 4 and data.seed == 0


def test_float32_data_are_the_float64_data_rounded():
    d64 = make_synthetic(100, 10, correlation=0.5, seed=5)
    d32 = make_synthetic(100, 10, correlation=0.5, seed=5, dtype="float32")
    np.testing.assert_array_equal(d32.X, d64.X.astype(np.float32))
    np.testing.assert_array_equal(d32.Y, d64.Y.astype(np.float32))


def test_noise_free_labels_equal_the_formula_recomputed_from_returned_quantities():
    data = make_synthetic(300, 20, correlation=0.7, scale=1.5, n_sines=6, noise_std=0.0, n_test=40, seed=11)
    for X, Y in ((data.X, data.Y), (data.X_test, data.Y_test)):  # the test set follows the same tasks
        for t in range(2):
            z = X @ data.w[t]
            y = z.copy()
            for a, b in zip(data.alpha, data.beta):
                y += np.sin(a * z + b)
            np.testing.assert_allclose(Y[:, t], y, rtol=0, atol=1e-12)


def test_identical_weights_and_no_noise_give_identical_labels():
    data = make_synthetic(500, 30, correlation=1.0, noise_std=0.0, seed=2)
    np.testing.assert_array_equal(data.w[0], data.w[1])
    np.testing.assert_array_equal(data.Y[:, 0], data.Y[:, 1])


def test_opposite_weights_at_correlation_minus_one():
    data = make_synthetic(10, 8, correlation=-1.0, seed=4)
    np.testing.assert_array_equal(data.w[1], -data.w[0])


def test_same_seed_reproduces_every_array_and_other_seeds_differ():
    a, b, c = (make_synthetic(64, 16, correlation=0.4, n_test=8, seed=s) for s in (9, 9, 10))
    for name in ("X", "Y", "X_test", "Y_test", "u", "w", "alpha", "beta"):
        np.testing.assert_array_equal(getattr(a, name), getattr(b, name))
        assert not np.array_equal(getattr(a, name), getattr(c, name)), name


def test_training_set_does_not_depend_on_n_test_and_test_points_are_fresh():
    alone = make_synthetic(100, 10, correlation=0.2, seed=3)
    paired = make_synthetic(100, 10, correlation=0.2, n_test=100, seed=3)
    np.testing.assert_array_equal(alone.X, paired.X)
    np.testing.assert_array_equal(alone.Y, paired.Y)
    assert not np.allclose(paired.X_test, paired.X)


def test_sample_draws_new_points_from_the_same_tasks():
    tasks = SyntheticSpec(noise_std=0.0).draw(10, 0.6, rng=0)
    (X1, Y1), (X2, Y2) = tasks.sample(50, rng=1), tasks.sample(50, rng=2)
    assert not np.allclose(X1, X2)
    np.testing.assert_allclose(Y1, tasks.mean(X1), rtol=0, atol=1e-12)
    np.testing.assert_allclose(Y2, tasks.mean(X2), rtol=0, atol=1e-12)


@pytest.mark.parametrize("p", [-0.6, 0.0, 0.3, 0.9])
def test_linear_noise_free_labels_have_pearson_correlation_p(p):
    # y_t = w_t.x exactly; the sample correlation of 20k points has standard error (1 - p^2)/sqrt(n) < 0.01
    Y = make_synthetic(20_000, 50, correlation=p, n_sines=0, noise_std=0.0, seed=8).Y
    assert abs(np.corrcoef(Y.T)[0, 1] - p) < 0.03


def test_label_noise_has_the_requested_std_and_is_independent_across_tasks():
    data = make_synthetic(40_000, 10, correlation=1.0, noise_std=0.3, seed=6)
    eps = data.Y - data.tasks.mean(data.X)
    np.testing.assert_allclose(eps.std(axis=0), [0.3, 0.3], rtol=0.02)  # std error of a std: 1/sqrt(2n) = 0.35%
    assert abs(np.corrcoef(eps.T)[0, 1]) < 0.03


def test_generating_quantities_are_read_only():
    data = make_synthetic(5, 4, correlation=0.5, seed=0)
    with pytest.raises(ValueError, match="read-only"):
        data.w[0, 0] = 1.0


def test_tasks_from_given_parameters_derive_w():
    u = np.eye(2, 5)
    tasks = SyntheticTasks(u=u, alpha=[1.0], beta=[0.0], correlation=0.6, scale=2.0, noise_std=0.0)
    np.testing.assert_allclose(tasks.w, [[2.0, 0, 0, 0, 0], [1.2, 1.6, 0, 0, 0]])
    with pytest.raises(ValueError, match="orthonormal"):
        SyntheticTasks(u=2 * u, alpha=[1.0], beta=[0.0], correlation=0.6, scale=2.0, noise_std=0.0)
    with pytest.raises(ValueError, match="alpha and beta"):
        SyntheticTasks(u=u, alpha=[1.0, 2.0], beta=[0.0], correlation=0.6, scale=2.0, noise_std=0.0)


@pytest.mark.parametrize("kwargs, name", [
    (dict(correlation=1.5), "correlation"),
    (dict(correlation=-1.01), "correlation"),
    (dict(correlation=float("nan")), "correlation"),
    (dict(n_samples=0), "n_samples"),
    (dict(n_samples=-3), "n_samples"),
    (dict(n_samples=2.5), "n_samples"),
    (dict(n_features=1), "n_features"),
    (dict(n_test=-1), "n_test"),
    (dict(n_sines=-1), "n_sines"),
    (dict(scale=0.0), "scale"),
    (dict(scale=float("nan")), "scale"),
    (dict(noise_std=-0.1), "noise_std"),
    (dict(noise_std=float("inf")), "noise_std"),
    (dict(alpha_std=-1.0), "alpha_std"),
    (dict(beta_std=float("nan")), "beta_std"),
    (dict(dtype="int32"), "dtype"),
    (dict(dtype="no-such-type"), "dtype"),
    (dict(seed=-1), "seed"),
])
def test_invalid_arguments_raise_value_error_naming_them(kwargs, name):
    args = dict(n_samples=10, n_features=5, correlation=0.5) | kwargs
    with pytest.raises(ValueError, match=name):
        make_synthetic(**args)


def test_weight_coordinates_are_c_times_1_0_p_sqrt_1_minus_p2():
    W = weight_coordinates(0.6, 2.0)
    np.testing.assert_allclose(W, [[2.0, 0.0], [1.2, 1.6]], rtol=0, atol=1e-15)


TASKS = SyntheticSpec(n_sines=3).draw(6, 0.5, rng=0)
Z = np.zeros((4, 2))


@pytest.mark.parametrize("call, name", [
    (lambda: weight_coordinates(1.5, 1.0), "correlation"),         # was NaN and a RuntimeWarning
    (lambda: weight_coordinates(float("nan"), 1.0), "correlation"),
    (lambda: weight_coordinates(0.5, -1.0), "scale"),              # was a silently negated W
    (lambda: weight_coordinates(0.5, 0.0), "scale"),
    (lambda: sine_labels(Z, np.ones(5), np.ones(1)), "alpha and beta"),  # was beta broadcast over the 5 sines
    (lambda: sine_labels(Z, np.ones((2, 3)), np.ones(3)), "alpha and beta"),
    (lambda: sine_labels(np.zeros((4, 3)), np.ones(5), np.ones(5)), "z"),
    (lambda: sine_labels(np.zeros(2), np.ones(5), np.ones(5)), "z"),
    (lambda: sine_labels(np.zeros((3, 4, 2)), np.ones((5, 2)), np.ones((5, 2))), "alpha and beta"),
    (lambda: TASKS.mean(np.ones(6)), "X"),                          # was a (1, 2) result
    (lambda: TASKS.mean(np.ones((3, 5))), "n_features=6"),          # was numpy's matmul error
    (lambda: TASKS.mean(np.full((3, 6), np.nan)), "X"),
])
def test_public_functions_reject_bad_input_naming_the_argument(call, name):
    with pytest.raises(ValueError, match=name):
        call()


def test_sine_labels_use_one_parameter_set_per_leading_index():
    z = np.random.default_rng(0).standard_normal((3, 5, 2))
    alpha, beta = np.arange(6.0).reshape(3, 2), -np.arange(6.0).reshape(3, 2)
    for r in range(3):
        expected = z[r] + sum(np.sin(a * z[r] + b) for a, b in zip(alpha[r], beta[r]))
        np.testing.assert_allclose(sine_labels(z, alpha, beta)[r], expected, rtol=1e-12)
