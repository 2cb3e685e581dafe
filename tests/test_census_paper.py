"""The paper's Census-income orderings tested on paired runs (experiments/census_paper.py and `mmoe-np census-paper`),
on constructed results whose verdicts are known."""
import json

import numpy as np
import pytest

from mmoe_np import cli
from mmoe_np.experiments import census_paper as cp

PAPER_SEVEN = list(cp.PAPER_MAIN_AUC[1])


def constructed(group=1, n=20, offsets=None, noise=1e-4):
    """Per-run main-task AUCs: a shared run effect (what pairing removes) + a model offset + small noise."""
    rng = np.random.default_rng(0)
    run_effect = rng.normal(0, 0.003, n)  # large against the offsets: unpaired intervals would not decide
    offsets = offsets or {m: 0.0 for m in cp.PAPER_MAIN_AUC[group]}
    return {m: {seed: 0.94 + run_effect[seed] + off + rng.normal(0, noise) for seed in range(n)}
            for m, off in offsets.items()}


def as_doc(per_run, group=1):
    return {"settings": {"group": group, "recipe": "paper"},
            "models": [{"model": m, "runs": [{"seed": s, "test_auc": [a, 0.99]} for s, a in runs.items()]}
                       for m, runs in per_run.items()]}


def by_claim(orderings):
    return {o.verdict.claim: o for o in orderings}


def test_each_verdict_on_constructed_runs():
    # the paper: Cross-Stitch > L2 = MMoE > Single-Task > OMoE > Shared-Bottom > Tensor-Factorization
    offsets = {"Cross-Stitch": 0.002, "L2-Constrained": 0.0, "MMoE": 0.003, "Single-Task": 0.0,
               "OMoE": 0.0, "Shared-Bottom": -0.002, "Tensor-Factorization": -0.2}
    o = by_claim(cp.paper_orderings(constructed(offsets=offsets), 1))
    assert len(o) == 21  # every pair of seven
    assert o["Cross-Stitch > L2-Constrained"].word == "holds"
    assert o["Cross-Stitch > MMoE"].word == "does not hold"        # reversed here
    assert o["Single-Task > OMoE"].word == "inconclusive at 20 runs"  # no difference here
    assert o["L2-Constrained = MMoE"].tie and o["L2-Constrained = MMoE"].word == "differs here"
    assert o["Shared-Bottom > Tensor-Factorization"].paper_difference == pytest.approx(0.9295 - 0.6765)
    iv = o["Cross-Stitch > L2-Constrained"].verdict.interval
    assert iv.n == 20 and iv.mean == pytest.approx(0.002, abs=1e-4) and iv.low > 0


def test_a_tie_with_no_difference_and_group_2_order():
    o = by_claim(cp.paper_orderings(constructed(group=2), 2))
    assert o["Shared-Bottom = OMoE"].word == "no difference found"
    assert "MMoE > L2-Constrained" in o  # group 2's paper order: MMoE first


def test_pairing_is_by_seed_and_needs_two_shared_runs():
    per_run = constructed(offsets={"MMoE": 0.001, "OMoE": 0.0})
    per_run["OMoE"] = {s: a for s, a in per_run["OMoE"].items() if s % 2 == 0}  # half the runs
    (only,) = cp.paper_orderings(per_run, 1)
    assert only.verdict.interval.n == 10
    per_run["OMoE"] = {0: per_run["OMoE"][0]}
    assert cp.paper_orderings(per_run, 1) == []


SETTINGS = {"group": 1, "recipe": "paper"}


def test_format_ranks_and_counts():
    paper = cp.PAPER_MAIN_AUC[1]
    offsets = {m: -i * 0.001 for i, m in enumerate(sorted(paper, key=lambda m: -paper[m]))}
    text = cp.format_paper_comparison(1, constructed(offsets=offsets), SETTINGS)
    assert "| Cross-Stitch | 0.9361 | 1 | " in text and "| L2-Constrained | 0.9359 | 2 |" in text
    assert "| MMoE | 0.9359 | 2 |" in text  # the paper's tie shares the rank
    assert "Of the 20 strict orderings of the paper tested here, 20 hold, 0 are reversed and 0 are inconclusive" in text
    assert "no correction for testing 21 pairs" in text and "Not tested" not in text


def test_format_a_subset_one_run_and_equal_looking_means():
    # the paper's ranks stay those among its seven; ours compare the four digits shown; one run has no spread and
    # no pair to test, and the output says so instead of counting nothing
    per_run = {"MMoE": {0: 0.94041}, "OMoE": {0: 0.94039}, "Shared-Bottom": {0: 0.9400}}
    text = cp.format_paper_comparison(1, per_run, SETTINGS)
    assert "| MMoE | 0.9359 | 2 | 0.9404 ± n/a | 1 |" in text and "| OMoE | 0.9319 | 5 | 0.9404 ± n/a | 1 |" in text
    assert "| Shared-Bottom | 0.9295 | 6 | 0.9400 ± n/a | 3 |" in text
    assert "Not tested (3 pairs: fewer than 2 runs share a seed): MMoE / OMoE, MMoE / Shared-Bottom, OMoE / " \
           "Shared-Bottom." in text
    assert "Not in this run: Single-Task, L2-Constrained, Cross-Stitch, Tensor-Factorization." in text
    assert cp.untested_pairs(per_run, 1) == [("MMoE", "OMoE"), ("MMoE", "Shared-Bottom"), ("OMoE", "Shared-Bottom")]


def test_cli_writes_markdown_and_refuses_bad_files(tmp_path, capsys):
    path = tmp_path / "group1.json"
    path.write_text(json.dumps(as_doc(constructed())))
    assert cli.main(["census-paper", str(path), "--out", str(tmp_path / "out")]) == 0
    assert (tmp_path / "out" / "paper-group1.md").read_text().startswith("Census-income group 1, main task income")
    group, per_run, settings = cp.read_census_results(path)
    assert group == 1 and settings["recipe"] == "paper" and per_run == constructed()  # JSON keeps a float exactly
    (tmp_path / "bad.json").write_text('{"settings": {}}')
    for bad, message in ((tmp_path / "missing.json", "is not a file"), (tmp_path / "bad.json", "not a census result")):
        assert cli.main(["census-paper", str(bad)]) == 2
        assert message in capsys.readouterr().err
    assert cli.main(["census-paper", str(path), "--out", str(path / "sub")]) == 2  # --out under a file
    assert "--out" in capsys.readouterr().err
    for settings, runs, message in (({"group": 3}, None, "group must be 1 or 2"), ({"group": [1]}, None, "group"),
                                    ({"group": 1}, [{"seed": 0, "test_auc": [float("nan")]}], "finite"),
                                    ({"group": 1}, [{"seed": 0, "test_auc": [0.9]}] * 2, "distinct seeds")):
        doc = {**as_doc(constructed()), "settings": settings}
        if runs is not None:
            doc["models"][0]["runs"] = runs
        path.write_text(json.dumps(doc))
        with pytest.raises(ValueError, match=message):
            cp.read_census_results(path)
