"""mmoe_np.diagnostics.gate_report: utilisation, entropy, polarisation and overlap against their definitions, on
MMoE, OMoE, CGC/PLE and stacked replicas; constructed gates with known answers."""
import json

import numpy as np
import pytest

import mmoe_np as mn
from mmoe_np.diagnostics import POLARISED, gate_entropy, gate_overlap, gate_report
from mmoe_np.models.ple import CGC, PLE
from mmoe_np.testing import data


def test_report_of_mmoe_matches_the_definitions_row_by_row():
    model = mn.MMoE(4, ("regression", "binary"), n_experts=3, expert_units=(5,), seed=1)
    mn.testing.jitter(model, 1, 2.0)  # sharp gates: some rows polarised
    X, _ = data(50, 4, model.tasks, 0)
    g = model.gate_weights(X)                                  # (N, K, E)
    report = gate_report(model, X)
    assert report.n_rows == 50 and report.model_name == "MMoE"
    np.testing.assert_allclose(report.utilisation, g.mean(0), rtol=1e-12)
    for k in range(2):
        H = [-sum(p * np.log(p) for p in row if p > 0) for row in g[:, k]]
        np.testing.assert_allclose(report.entropy[k], np.mean(H), rtol=1e-12)
        assert report.polarised[k] == np.mean([row.max() > POLARISED for row in g[:, k]])
    both = np.mean([np.minimum(a, b).sum() for a, b in zip(g[:, 0], g[:, 1])])
    np.testing.assert_allclose(report.overlap, [[1, both], [both, 1]], rtol=1e-12)
    assert report.expert_labels == ["expert 1", "expert 2", "expert 3"]
    np.testing.assert_allclose(report.max_entropy, np.log(3))
    assert 0 < report.polarised.max() < 1  # the test sees both kinds of rows
    json.dumps(report.as_dict())
    text = report.format()
    assert "gate overlap 0-1: " in text and "polarised" in text


def test_omoe_gates_overlap_fully_and_constructed_gates_give_known_values():
    model = mn.OMoE(3, ("regression",) * 3, n_experts=4, seed=0)
    report = gate_report(model, np.ones((7, 3)))
    np.testing.assert_allclose(report.overlap, np.ones((3, 3)), rtol=1e-12)
    uniform, one_hot = np.full((5, 4), 0.25), np.eye(4)[[0, 1, 2, 3, 0]]
    np.testing.assert_allclose(gate_entropy(uniform), np.log(4))
    assert np.all(gate_entropy(one_hot) == 0)
    assert gate_overlap(one_hot, one_hot) == 1 and gate_overlap(one_hot, np.eye(4)[[1, 2, 3, 0, 1]]) == 0
    np.testing.assert_allclose(gate_overlap(uniform, one_hot), 0.25)


@pytest.mark.parametrize("model", [CGC(3, ("regression", "binary"), n_shared_experts=2, n_task_experts=1, seed=0),
                                   PLE(3, ("regression", "binary"), n_levels=2, seed=0)])
def test_cgc_and_ple_report_per_task_without_overlap(model):
    report = gate_report(model, np.random.default_rng(0).standard_normal((9, 3)))
    S, T = model.n_shared_experts, model.n_task_experts
    assert report.utilisation.shape == (2, S + T) and report.overlap is None
    assert report.expert_labels == [f"shared {j + 1}" for j in range(S)] + [f"own {t + 1}" for t in range(T)]
    np.testing.assert_allclose(report.utilisation.sum(-1), 1.0)
    assert "gate overlap" not in report.format()


def test_stacked_replicas_get_one_value_each():
    singles = [mn.MMoE(4, ("regression", "regression"), n_experts=3, seed=s) for s in range(3)]
    X, _ = data(20, 4, singles[0].tasks, 0)
    stacked = gate_report(mn.stack_models(singles), X)
    assert stacked.utilisation.shape == (3, 2, 3) and stacked.overlap.shape == (3, 2, 2)
    for r, single in enumerate(singles):
        one = gate_report(single, X)
        np.testing.assert_allclose(stacked.utilisation[r], one.utilisation, rtol=1e-12)
        np.testing.assert_allclose(stacked.entropy[r], one.entropy, rtol=1e-12)
        np.testing.assert_allclose(stacked.overlap[r], one.overlap, rtol=1e-12)
    with pytest.raises(ValueError, match="one model"):
        stacked.format()


def test_a_model_without_gates_is_refused_by_name():
    with pytest.raises(ValueError, match="gated model"):
        gate_report(mn.SharedBottom(3, ("regression",)), np.ones((2, 3)))


def test_the_figure_of_a_report(tmp_path):
    from mmoe_np.experiments import figures
    model = mn.MMoE(4, ("regression", "binary"), n_experts=5, seed=0)
    path = figures.plot_gate_report(gate_report(model, np.ones((6, 4))), tmp_path / "r.png", title="MMoE")
    assert path.stat().st_size > 5_000
    stacked = mn.stack_models([model, model.copy()])
    with pytest.raises(ValueError, match="one model"):
        figures.plot_gate_report(gate_report(stacked, np.ones((6, 4))), tmp_path / "s.png")
