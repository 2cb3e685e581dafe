"""mmoe_np.testing: the assertion and its message, the hypothesis strategies (with the project's kink avoidance),
the reference Adam, argument checks, and that hypothesis stays optional."""
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import mmoe_np as mn
from mmoe_np import ops
from mmoe_np import testing as T
import modelcheck


def small_mmoe():
    return T.jitter(mn.MMoE(4, ("regression", "binary"), n_experts=3, expert_units=(5,), tower_units=(3,), seed=0), 0)


# ------------------------------------------------------------------------------------------------ the assertion
def test_a_correct_model_and_op_pass_and_return_the_report():
    model = small_mmoe()
    X, Y = T.data(6, 4, model.tasks, 0)
    report = T.assert_gradients_close(model, X, Y)
    assert isinstance(report, mn.GradientReport) and report.passed() and "X" in report.errors
    assert T.assert_gradients_close(model, X, Y, fast=True).mode == "fast"
    assert set(T.assert_gradients_close(model, X, Y, max_entries=2).entries["X"]) <= set(range(X.size))
    z = np.random.default_rng(0).standard_normal((2, 3))
    report = T.assert_gradients_close((ops.softmax_forward, ops.softmax_backward), {"z": z})
    assert list(report.errors) == ["z"]
    report = T.assert_gradients_close((ops.mse_forward, ops.mse_backward), {"pred": z}, constants={"target": z * 0})
    assert report.passed()


def test_the_failure_message_of_a_model_shows_the_worst_entries_and_the_kink_verdict(monkeypatch):
    model = small_mmoe()
    X, Y = T.data(6, 4, model.tasks, 0)
    monkeypatch.setattr(ops, "softmax_backward", lambda dp, p: p * dp)
    with pytest.raises(AssertionError) as failure:
        T.assert_gradients_close(model, X, Y, worst=2)
    message = str(failure.value)
    report = mn.check_gradients(model, X, Y)
    assert message.startswith(f"gradients of {model!r} do not match central differences")
    for name in ("gates.W", "gates.b", "X"):
        assert f"{name:<11}  {report.errors[name]:.3e}" in message and "FAILS" in message
        for label, analytic, numeric, rel in report.worst_entries(name, 2):
            assert f"  {label}: analytic {analytic:.6e}  numeric {numeric:.6e}  rel. error {rel:.1e}" in message
    assert "(no ReLU kink near)" in message.splitlines()[-1]


def test_the_failure_message_says_when_a_kink_is_near():
    model = mn.SharedBottom(4, ("regression",), bottom_units=(3,), tower_units=(2,), seed=8)  # zero biases
    X = np.random.default_rng(0).standard_normal((20, 4))
    with pytest.raises(AssertionError, match=r"(?s)\(a ReLU kink is near\).*within the step of its kink"):
        T.assert_gradients_close(model, X, X[:, :1])


def test_the_failure_message_of_an_op_without_a_relu_has_no_kink_line():
    def glu_forgetting_the_sigmoid_slope(d, c):
        a, s, g = c
        return d * s, d * a  # the gate's gradient should be d * a * s * (1 - s)

    def glu(a, g):
        s = ops.sigmoid(g)
        return a * s, (a, s, g)

    inputs = {"a": np.linspace(-1, 1, 4), "g": np.linspace(-2, 1, 4)}
    with pytest.raises(AssertionError) as failure:
        T.assert_gradients_close((glu, glu_forgetting_the_sigmoid_slope), inputs)
    message = str(failure.value)
    assert message.startswith("gradients of op glu/glu_forgetting_the_sigmoid_slope do not match")
    assert "FAIL: 1 of 2 arrays (g)" in message and "g[" in message
    assert "ReLU" not in message and "kink" not in message


@pytest.mark.parametrize("call, match", [
    (lambda m, X, Y: T.assert_gradients_close(m, X, Y, tol=0), "tol must be"),
    (lambda m, X, Y: T.assert_gradients_close(m, X, Y, tol=1.5), "tol must be"),
    (lambda m, X, Y: T.assert_gradients_close(m, X, Y, worst=-1), "worst must be"),
    (lambda m, X, Y: T.assert_gradients_close(m, X, Y, step=np.nan), "step must be"),
    (lambda m, X, Y: T.assert_gradients_close(m, X, Y, seed=-2), "seed must be"),
    (lambda m, X, Y: T.assert_gradients_close(m, X), r"assert_gradients_close\(model, X, Y\); got 1"),
    (lambda m, X, Y: T.assert_gradients_close(m, X, Y, wrt=["X"]), "wrt and constants apply to ops"),
    (lambda m, X, Y: T.assert_gradients_close("model", X, Y), "model_or_op must be a model"),
    (lambda m, X, Y: T.assert_gradients_close((ops.relu_forward,), X), "model_or_op must be a model"),
    (lambda m, X, Y: T.assert_gradients_close((ops.relu_forward, ops.relu_backward), {"z": X}, Y),
     r"assert_gradients_close\(\(forward, backward\), inputs\)"),
    (lambda m, X, Y: T.assert_gradients_close((ops.relu_forward, ops.relu_backward), {"z": X}, max_entries=2),
     "max_entries applies to models"),
    (lambda m, X, Y: T.assert_gradients_close((ops.relu_forward, ops.relu_backward), {"z": X}, constants=[1]),
     "constants must be a dict"),
    (lambda m, X, Y: T.assert_gradients_close((ops.relu_forward, ops.relu_backward), [X]), "inputs must be"),
])
def test_bad_arguments_to_the_assertion(call, match):
    model = small_mmoe()
    X, Y = T.data(3, 4, model.tasks, 0)
    with pytest.raises(ValueError, match=match):
        call(model, X, Y)


# ------------------------------------------------------------------------------------------------ data, jitter, kinks
def test_data_jitter_and_the_constants_are_pinned_to_their_definitions():
    # tests/modelcheck.py delegates to mmoe_np.testing, so these pins (not a comparison with modelcheck) keep the
    # examples the project's own tests draw from changing silently
    for n, d, tasks, seed in [(6, 4, ("regression", "binary"), 0), (1, 1, ("binary",), 7),
                              (5, 3, ("regression",) * 3, 2**16)]:
        rng = np.random.default_rng(seed)
        X = rng.standard_normal((n, d))
        Y = np.column_stack([rng.standard_normal(n) if t == "regression" else rng.integers(0, 2, n)
                             for t in tasks]).astype(float)
        ours = T.data(n, d, tasks, seed)
        np.testing.assert_array_equal(ours[0], X)
        np.testing.assert_array_equal(ours[1], Y)
    a, b = small_mmoe(), small_mmoe()
    T.jitter(a, 3, 0.1)
    rng = np.random.default_rng(3)
    for name, p in b.params.items():
        np.testing.assert_array_equal(a.params[name], p + 0.1 * rng.standard_normal(p.shape))
    assert (T.TOL, T.STEP, T.KINK_MARGIN) == (1e-6, 1e-5, 100 * 1e-5)
    # the strategies the project's tests use, defined as they always were (so hypothesis draws the same examples)
    from hypothesis import strategies as st
    widths = st.integers(1, 4)
    expected = [(T.widths(), widths), (T.hidden_units(), st.lists(widths, min_size=1, max_size=2).map(tuple)),
                (T.tower_units(), st.lists(widths, min_size=0, max_size=2).map(tuple)),
                (T.task_lists(), st.lists(st.sampled_from(["regression", "binary"]), min_size=1,
                                          max_size=3).map(tuple)),
                (T.seeds(), st.integers(0, 2**16))]
    for ours, definition in expected:
        assert repr(ours) == repr(definition)


def test_off_kinks_reads_the_models_relu_margin():
    model = small_mmoe()
    X, _ = T.data(6, 4, model.tasks, 0)
    margin = model.relu_margin(X)
    assert T.off_kinks(model, X, margin / 2) and not T.off_kinks(model, X, margin)
    assert T.off_kinks(model, X) == (margin > T.KINK_MARGIN)


@pytest.mark.parametrize("call, match", [
    (lambda: T.data(0, 3, ("regression",), 0), "n_samples"), (lambda: T.data(2, 3, "binary", 0), "tasks"),
    (lambda: T.data(2, 3, ("regression",), -1), "seed"), (lambda: T.jitter({}, 0), "model must have a params"),
    (lambda: T.jitter(small_mmoe(), 0, scale=np.nan), "scale"),
    (lambda: T.off_kinks(object(), np.ones((1, 4))), "relu_margin"),
    (lambda: T.off_kinks(small_mmoe(), np.ones((1, 4)), margin=0), "margin"),
])
def test_bad_arguments_to_the_helpers(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------------ the strategies
@settings(max_examples=30)
@given(case=T.gradient_cases())
def test_drawn_models_pass_both_checks_off_their_kinks(case):
    model, X, Y = case
    assert model.relu_margin(X) > T.KINK_MARGIN
    full = T.assert_gradients_close(model, X, Y)
    fast = T.assert_gradients_close(model, X, Y, fast=True)
    assert set(full.errors) == set(fast.errors) == set(model.params) | {"X"}


def test_the_drawn_classes_are_models_of_the_package():
    assert set(T.DRAWN_CLASSES) <= set(mn.MODEL_CLASSES) and len(T.DRAWN_CLASSES) == 7


@pytest.mark.parametrize("name", T.DRAWN_CLASSES)
@settings(max_examples=5)
@given(data=st.data())
def test_every_model_class_can_be_drawn(name, data):
    config = data.draw(T.model_configs(classes=[name], max_features=3))
    assert config.name == name and 1 <= config.n_features <= 3
    model = config.build()
    assert type(model).__name__ == name and model.tasks == config.tasks
    with pytest.raises(ValueError, match="jitter_scale"):
        config.build(jitter_scale=-1)
    unmoved = config.build(jitter_scale=0)
    fresh = getattr(mn, name)(config.n_features, config.tasks, seed=config.seed, **config.options)
    for key in fresh.params:
        np.testing.assert_array_equal(unmoved.params[key], fresh.params[key])


@given(inputs=T.op_inputs({"z": st.tuples(st.integers(1, 3), st.integers(1, 4))}, min_abs={"z": T.KINK_MARGIN}))
def test_op_inputs_keep_relu_inputs_off_the_kink(inputs):
    assert set(inputs) == {"z"} and inputs["z"].dtype == np.float64 and inputs["z"].ndim == 2
    assert np.abs(inputs["z"]).min() > T.KINK_MARGIN
    T.assert_gradients_close((ops.relu_forward, ops.relu_backward), inputs)


@given(inputs=T.op_inputs({"x": (1, 3, 2), "W": (2, 2, 4), "b": (2, 4)}, scale=0.5))
def test_op_inputs_with_fixed_shapes(inputs):
    assert {k: v.shape for k, v in inputs.items()} == {"x": (1, 3, 2), "W": (2, 2, 4), "b": (2, 4)}
    T.assert_gradients_close((ops.dense_forward, ops.dense_backward), inputs, fast=True, n_directions=3)


@given(units=T.tower_units(max_layers=3, max_width=2), hidden=T.hidden_units(), tasks=T.task_lists(2),
       seed=T.seeds(), width=T.widths(3))
def test_the_size_strategies(units, hidden, tasks, seed, width):
    assert 0 <= len(units) <= 3 and all(1 <= w <= 2 for w in units)
    assert 1 <= len(hidden) <= 2 and all(1 <= w <= 4 for w in hidden)
    assert 1 <= len(tasks) <= 2 and set(tasks) <= {"regression", "binary"}
    assert 0 <= seed <= 2**16 and 1 <= width <= 3


@pytest.mark.parametrize("call, match", [
    (lambda: T.widths(0), "max_width"), (lambda: T.layer_units(2, 1), "max_layers"),
    (lambda: T.layer_units(-1), "min_layers"), (lambda: T.task_lists(0), "max_tasks"),
    (lambda: T.model_configs(classes=["Transformer"]), "classes must be"),
    (lambda: T.model_configs(classes="MMoE"), "classes must be"),
    (lambda: T.model_configs(max_features=0), "max_features"),
    (lambda: T.gradient_cases(max_samples=0), "max_samples"), (lambda: T.gradient_cases(margin=-1), "margin"),
    (lambda: T.op_inputs({}), "shapes must be"), (lambda: T.op_inputs({"z": (0, 2)}), r"shapes\['z'\]"),
    (lambda: T.op_inputs({"z": 3}), r"shapes\['z'\]"), (lambda: T.op_inputs({"z": (2,)}, scale=0), "scale"),
    (lambda: T.op_inputs({"z": (2,)}, min_abs={"y": 1e-3}), "min_abs names"),
    (lambda: T.op_inputs({"z": (2,)}, min_abs={"z": np.nan}), r"min_abs\['z'\]"),
])
def test_bad_arguments_to_the_strategies(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------------ reference Adam
def test_adam_reference_first_step_is_about_lr_times_the_sign():
    g = np.array([3.0, -1e-3, 0.0])
    (theta,) = T.adam_reference(np.zeros(3), [g], lr=0.01)
    # m_hat = g and v_hat = g^2 after one step, so the update is lr * g / (|g| + eps)
    np.testing.assert_allclose(theta, -0.01 * g / (np.abs(g) + 1e-8), rtol=1e-12)
    second = T.adam_reference(np.zeros(3), [g, g], lr=0.01)
    np.testing.assert_allclose(second[1], 2 * second[0], rtol=1e-9)  # a constant gradient: the same step again


@pytest.mark.parametrize("call, match", [
    (lambda: T.adam_reference(np.zeros(2), [np.ones(3)]), r"grads\[0\] has shape"),
    (lambda: T.adam_reference(np.zeros(2), [], beta1=1.0), "beta1"),
    (lambda: T.adam_reference(np.zeros(2), [], lr=0), "lr"),
    (lambda: T.adam_reference(np.zeros(2), np.ones((3, 2))), "grads must be a list"),
    (lambda: T.assert_matches_adam("Adam"), "optimizer_class"),
    (lambda: T.assert_matches_adam(mn.Adam, steps=0), "steps"),
    (lambda: T.assert_matches_adam(mn.Adam, rtol=0), "tol"),
])
def test_bad_arguments_to_the_adam_reference(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ------------------------------------------------------------------------------------------------ optional hypothesis
def run(code):
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)


def test_importing_the_package_and_the_toolkit_does_not_import_hypothesis_or_pytest():
    result = run("import sys, mmoe_np, mmoe_np.testing\n"
                 "print(sorted(m for m in ('hypothesis', 'pytest') if m in sys.modules))\n"
                 "mmoe_np.testing.seeds()\n"
                 "print('hypothesis' in sys.modules, 'pytest' in sys.modules)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split("\n")[:2] == ["[]", "True False"]  # the strategies import it; nothing imports pytest


def test_without_hypothesis_the_strategies_say_what_to_install_and_the_rest_works():
    result = run("import sys; sys.modules['hypothesis'] = None  # as if not installed\n"
                 "import numpy as np, mmoe_np as mn, mmoe_np.testing as T\n"
                 "m = T.jitter(mn.MMoE(3, ('binary',), n_experts=2, expert_units=(3,), tower_units=(), seed=0), 0)\n"
                 "print(T.assert_gradients_close(m, *T.data(4, 3, m.tasks, 0)).passed())\n"
                 "try:\n    T.gradient_cases()\nexcept ImportError as e:\n    print(e)")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "True", "mmoe_np.testing's strategies need hypothesis, an optional dependency: pip install mmoe-np[test]"]


# ------------------------------------------------------------------------------------------------ the docs' command
def test_the_documented_speed_comparison_runs_as_written_on_a_small_model(monkeypatch, capsys):
    doc = (Path(__file__).resolve().parents[1] / "docs" / "gradient-testing.md").read_text()
    snippet = doc.split("<<'EOF'\n", 1)[1].split("\nEOF\n", 1)[0]
    assert "N_FEATURES, N_SAMPLES = 486, 32" in snippet and "fast=True" in snippet
    monkeypatch.setattr(ops, "softmax_backward", ops.softmax_backward)  # the snippet plants a bug: undone after
    exec(compile(snippet.replace("= 486, 32", "= 6, 4"), "gradient-testing.md", "exec"), {})
    first, second = capsys.readouterr().out.splitlines()
    assert first.startswith(f"{8 * 6 * 16 + 8 * 16 + 2 * 6 * 8 + 2 * 8 + 2 * 16 * 8 + 2 * 8 + 2 * 8 + 2 + 4 * 6} "
                            "entries; full: ")
    assert first.count("passed True") == 2 and "x faster" in first
    assert second.startswith("fast mode on the planted bug: passed False ; failing: FAIL: ")


def test_the_documented_delegation_of_modelcheck_works():
    doc = (Path(__file__).resolve().parents[1] / "docs" / "gradient-testing.md").read_text()
    snippet = doc.split("It can delegate, drawing exactly the same examples:\n\n```python\n", 1)[1].split("```", 1)[0]
    delegated: dict = {}
    exec(compile(snippet, "gradient-testing.md", "exec"), delegated)
    for name in ("TOL", "STEP", "KINK_MARGIN", "widths", "hidden", "towers", "task_lists", "seeds"):
        assert repr(delegated[name]) == repr(getattr(modelcheck, name)), name

    @settings(max_examples=10)
    @given(units=delegated["hidden"], tasks=delegated["task_lists"], seed=delegated["seeds"])
    def check(units, tasks, seed):
        model = delegated["jitter"](mn.MMoE(3, tasks, n_experts=2, expert_units=units, seed=seed), seed)
        report = delegated["assert_gradients_match"](model, *delegated["data"](4, 3, tasks, seed))
        assert report.passed(T.TOL)

    check()
    model = small_mmoe()  # off its kinks, a wrong gradient fails the delegated assertion
    X, Y = T.data(6, 4, model.tasks, 0)

    @settings(max_examples=1)
    @given(st.just(None))  # reject_kinks is a hypothesis.assume: it belongs inside a property test
    def check_a_bug(_):
        with pytest.MonkeyPatch.context() as patch, pytest.raises(AssertionError, match="FAIL: "):
            patch.setattr(ops, "relu_backward", lambda da, cache: da)
            delegated["assert_gradients_match"](model, X, Y)

    check_a_bug()


def test_the_planted_bugs_table_names_the_ops_the_mutation_tests_patch():
    import test_mutations
    doc = (Path(__file__).resolve().parents[1] / "docs" / "gradient-testing.md").read_text()
    section = doc.split("## 6. The planted bugs", 1)[1]
    rows = [line.split("|")[1:-1] for line in section.splitlines() if line.startswith("| ") and "`" in line]
    documented = {row[1].split("`")[1] for row in rows if "Adam" not in row[1]}
    assert documented == {op for op, *_ in test_mutations.BUGS.values()}
    assert len(rows) == len(test_mutations.BUGS) + 1  # and the Adam row
    # the models call the ops through the module, except where ops keeps the functions themselves in a table
    tables = [name for name, value in vars(ops).items() if isinstance(value, dict) and not name.startswith("__")
              and any(callable(f) for v in value.values() for f in (v if isinstance(v, tuple) else (v,)))]
    text = " ".join(section.split())
    for name in tables:
        assert f"ops.{name}" in text, name
    assert "call the ops through the module" in text
