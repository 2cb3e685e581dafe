"""The claims (a)-(d) of the synthetic study as verdicts with intervals (experiments/synthetic.claims on top of the
one verdict function, experiments/stats.verdict), the convergence check, and that the `synthetic` and
`trainability` subcommands print the same verdicts on the same runs."""
import json

import numpy as np
import pytest

from mmoe_np import cli
from mmoe_np.data.synthetic import SyntheticSpec
from mmoe_np.experiments import stats
from mmoe_np.experiments import synthetic as S

N = 40  # runs of the constructed studies


def constructed(finals, ps=(1.0, 0.5), curves=None, steps=None):
    """A SyntheticStudy whose final task-1 test MSE of model m is finals[m] (P, N) (task 2 alike); ``curves[m]``
    (P, N, T) replaces the whole loss curves when given (then its last column must be the finals)."""
    models = tuple(finals)
    n = np.shape(next(iter(finals.values())))[1]
    if curves is None:
        curves = {m: np.stack([np.full_like(np.asarray(f, float), 1.0), np.asarray(f, float)], axis=-1)
                  for m, f in finals.items()}
        steps = np.array([0, 100])
    test_loss = {m: np.stack([c, c], axis=-1) for m, c in curves.items()}  # (P, N, T, 2)
    config = {"models": list(models), "correlations": list(ps), "runs": n, "steps": int(steps[-1]),
              "batch_size": 8, "lr": 0.01, "schedule": "cosine", "generator": {"noise_std": 0.1}}
    return S.SyntheticStudy(config=config, steps=np.asarray(steps), test_loss=test_loss,
                            train_loss={m: np.full_like(x, np.nan) for m, x in test_loss.items()},
                            diverged={m: np.zeros((len(ps), n), dtype=np.int64) for m in models},
                            seeds=np.zeros((n, 2), dtype=np.int64), seconds=0.0)


def rng(seed=0):
    return np.random.default_rng(seed)


def standard(z):
    """z shifted and scaled to sample mean 0 and sample std 1 (so the constructed effects are exact)."""
    return (z - z.mean(axis=-1, keepdims=True)) / z.std(axis=-1, ddof=1, keepdims=True)


def worse_at_low_p(effect, noise, seed=0):
    """L(1) per run in [0.02, 0.04]; L(0.5) = L(1) + effect + noise z per run (paired), z of mean 0 and std 1: the
    paired differences have mean ``effect`` and std ``noise`` exactly."""
    r = rng(seed)
    base = r.uniform(0.02, 0.04, N)
    return np.stack([base, base + effect + noise * standard(r.standard_normal(N))])


# ------------------------------------------------------------------------------------------------ one claim
@pytest.mark.parametrize("effect, noise, outcome", [
    (0.01, 0.001, "holds"),           # a clear effect: the whole interval above 0
    (0.0, 1e-5, "does not hold"),     # no effect: the whole interval inside +-2% of the loss (the margin)
    (0.001, 0.01, "inconclusive"),    # a noisy effect: the interval reaches across 0 and beyond the margin
])
def test_claim_a_on_constructed_data(effect, noise, outcome):
    finals = worse_at_low_p(effect, noise)
    claim = S.claims(constructed({"mmoe": finals}))["a"]
    assert claim.outcome == outcome and len(claim.comparisons) == 1
    # the claim's verdict is the one verdict function's, on the paired differences, margin 2% of L(p = 1)
    expected = stats.verdict(finals[1] - finals[0], "greater", claim="MMoE: L(p=0.5) - L(p=1)",
                             margin=S.MARGIN * finals[0].mean())
    assert claim.comparisons[0] == expected
    word = f"inconclusive at {N} runs" if outcome == "inconclusive" else outcome
    assert claim.line().startswith(f"claim (a) every model does worse at lower correlation (p = 0.5 vs 1): {word}")
    assert claim.lines()[1].strip() == expected.line()
    assert claim.as_dict()["verdict"] == word and claim.as_dict()["runs"] == N


@pytest.mark.parametrize("gap, noise, outcome", [(0.02, 0.002, "holds"), (0.0, 1e-5, "does not hold"),
                                                  (0.001, 0.02, "inconclusive")])
def test_claim_c_on_constructed_data(gap, noise, outcome):
    r = rng(1)
    moe = r.uniform(0.02, 0.04, (2, N))
    sb = moe + gap + noise * standard(r.standard_normal((2, N)))
    claim = S.claims(constructed({"shared-bottom": sb, "mmoe": moe}))["c"]
    assert claim.outcome == outcome and len(claim.comparisons) == 2  # at p = 1 and p = 0.5
    for j, v in enumerate(claim.comparisons):
        assert v == stats.verdict(sb[j] - moe[j], "greater", claim=v.claim, margin=S.MARGIN * moe[j].mean())


def test_claim_outcome_combines_its_comparisons():
    clear, none, noisy = worse_at_low_p(0.01, 0.001), worse_at_low_p(0.0, 1e-5), worse_at_low_p(0.001, 0.01)
    assert S.claims(constructed({"omoe": clear, "mmoe": clear}))["a"].outcome == "holds"
    assert S.claims(constructed({"omoe": clear, "mmoe": noisy}))["a"].outcome == "inconclusive"
    assert S.claims(constructed({"omoe": noisy, "mmoe": none}))["a"].outcome == "does not hold"
    line = S.claims(constructed({"omoe": clear, "mmoe": noisy}))["a"].line()
    assert line.endswith("(2 paired comparisons: 1 holds, 1 inconclusive)")


def test_claim_b_compares_the_degradations_run_by_run():
    r = rng(2)
    base = r.uniform(0.02, 0.04, N)
    mmoe = np.stack([base, base + 0.001])
    omoe = np.stack([base, base + 0.01 + 0.001 * r.standard_normal(N)])  # degrades 10x more: holds
    sb = np.stack([base, base + 0.001 + 1e-6 * r.standard_normal(N)])    # degrades alike: does not hold
    claim = S.claims(constructed({"shared-bottom": sb, "omoe": omoe, "mmoe": mmoe}))["b"]
    outcomes = {v.claim: v.outcome for v in claim.comparisons}
    assert outcomes == {"degradation of OMoE - degradation of MMoE": "holds",
                        "degradation of Shared-Bottom (113) - degradation of MMoE": "does not hold"}
    assert claim.outcome == "does not hold"
    v = claim.comparisons[0]
    np.testing.assert_allclose(v.interval.mean, ((omoe[1] - omoe[0]) - (mmoe[1] - mmoe[0])).mean(), rtol=1e-12)


def test_claim_d_compares_absolute_deviations_from_the_median():
    r = rng(3)
    moe = 0.03 + 0.002 * r.standard_normal((2, N))
    sb = 0.05 + 0.02 * r.standard_normal((2, N))  # ten times the spread
    claim = S.claims(constructed({"shared-bottom": sb, "omoe": moe, "mmoe": moe}))["d"]
    assert claim.outcome == "holds" and len(claim.comparisons) == 4
    dev = lambda x: np.abs(x - np.median(x))  # noqa: E731
    np.testing.assert_allclose(claim.comparisons[0].interval.mean, (dev(sb[0]) - dev(moe[0])).mean(), rtol=1e-12)
    same = S.claims(constructed({"shared-bottom": moe + 1e-9, "mmoe": moe}))["d"]
    assert same.outcome == "does not hold"


def test_claims_the_study_cannot_test_say_why():
    one_model = S.claims(constructed({"mmoe": worse_at_low_p(0.01, 0.001)}))
    for key in "bcd":
        assert one_model[key].outcome is None and one_model[key].comparisons == ()
        assert one_model[key].line().startswith(f"claim ({key}) ") and "not tested (needs" in one_model[key].line()
        assert one_model[key].as_dict()["verdict"] is None
    one_p = S.claims(constructed({"mmoe": np.full((1, N), 0.03), "omoe": np.full((1, N), 0.04)}, ps=(0.5,)))
    assert one_p["a"].outcome is None and "needs two correlations" in one_p["a"].why
    one_run = S.claims(constructed({"shared-bottom": np.ones((2, 1)), "mmoe": np.ones((2, 1))}))
    assert all(c.outcome is None and c.why == "needs at least 2 runs" for c in one_run.values())


def test_claim_d_needs_three_runs_because_two_are_always_equally_far_from_their_median():
    """With two runs both deviations are |L_1 - L_2| / 2: the paired differences cannot vary, and a t interval of
    width 0 would call (d) either way from no evidence."""
    two = {"shared-bottom": np.array([[0.05, 0.09], [0.05, 0.07]]), "mmoe": np.array([[0.03, 0.031], [0.03, 0.032]])}
    claims = S.claims(constructed(two))
    assert len(claims["c"].comparisons) == 2  # two runs are enough for a paired difference of losses
    assert claims["d"].outcome is None and claims["d"].comparisons == () and "at least 3 runs" in claims["d"].why
    three = {m: np.concatenate([x, x[:, :1] + 0.001], axis=1) for m, x in two.items()}
    assert S.claims(constructed(three))["d"].comparisons != ()


def test_claim_a_uses_every_lower_correlation_against_the_highest():
    r = rng(4)
    base = r.uniform(0.02, 0.04, N)
    finals = np.stack([base + 0.005, base, base + 0.01])  # p = 0.8, 1, 0.5 (given in any order)
    claim = S.claims(constructed({"mmoe": finals}, ps=(0.8, 1.0, 0.5)))["a"]
    assert [v.claim for v in claim.comparisons] == ["MMoE: L(p=0.8) - L(p=1)", "MMoE: L(p=0.5) - L(p=1)"]
    assert claim.text == "every model does worse at lower correlation (p = 0.8, 0.5 vs 1)"
    np.testing.assert_allclose([v.interval.mean for v in claim.comparisons], [0.005, 0.01], rtol=1e-9)


# ------------------------------------------------------------------------------------------------ convergence
def test_convergence_on_constructed_curves():
    steps = np.arange(0, 1001, 100)  # the window of the last 20%: steps 800, 900, 1000
    t = steps / 1000.0
    flat = 0.03 * (1 + 0.01 * t)           # moves 1% over the whole run: converged
    falling = 0.03 * (1 + 0.5 * (1 - t))    # from 1.1 to 1.0 x 0.03 over the window, 10%: not converged
    curves = {"mmoe": np.broadcast_to(np.stack([flat, falling])[:, None, :], (2, 3, steps.size)).copy()}
    study = constructed({"mmoe": curves["mmoe"][..., -1]}, curves=curves, steps=steps)
    result = S.convergence(study)
    assert result["window"] == [800, 1000] and result["evaluations"] == 3 and result["tolerance"] == 0.02
    cells = result["cells"]["mmoe"]
    assert cells["1"]["converged"] is True and cells["0.5"]["converged"] is False
    np.testing.assert_allclose(cells["1"]["change"], (flat[-1] - flat[8]) / flat[8], rtol=1e-12)
    np.testing.assert_allclose(cells["0.5"]["change"], (falling[8] - falling[-1]) / falling[-1], rtol=1e-12)
    assert result["all_converged"] is False
    assert S.convergence(study, tolerance=0.2)["all_converged"] is True
    table = S.format_convergence(result)
    assert "over steps 800-1000 (3 evaluations)" in table and "p = 0.5: 10.0% NO" in table
    assert "NOT every cell converged" in table
    # a jump between evaluations inside the window counts too (max - min, not only first vs last)
    bumpy = flat.copy()
    bumpy[9] *= 1.05
    study = constructed({"mmoe": np.stack([bumpy, flat])[:, None, :].repeat(3, 1)[..., -1]},
                        curves={"mmoe": np.stack([bumpy, flat])[:, None, :].repeat(3, 1)}, steps=steps)
    assert S.convergence(study)["cells"]["mmoe"]["1"]["converged"] is False


def test_convergence_needs_two_evaluations_in_the_window():
    study = constructed({"mmoe": worse_at_low_p(0.01, 0.001)})  # evaluations at steps 0 and 100 only
    result = S.convergence(study)
    assert result["evaluations"] == 1 and result["all_converged"] is None
    assert result["cells"]["mmoe"]["1"]["converged"] is None
    assert "too few evaluations" in S.format_convergence(result)
    with pytest.raises(ValueError, match="window"):
        S.convergence(study, window=1.5)
    with pytest.raises(ValueError, match="tolerance"):
        S.convergence(study, tolerance=0)


# ------------------------------------------------------------------------------------------------ one function
CLI_TINY = ["--runs", "3", "--steps", "20", "--batch-size", "16", "--eval-every", "5", "--n-test", "50",
            "--workers", "0", "--quiet", "--no-plot"]


def claim_lines(out):
    return [line for line in out.splitlines() if line.startswith(("claim (", "    "))]


def test_synthetic_and_trainability_print_the_same_verdicts_on_the_same_runs(tmp_path, capsys):
    assert cli.main(["synthetic", "--correlations", "1", "0.5", "--out", str(tmp_path / "s")] + CLI_TINY) == 0
    synthetic_out = capsys.readouterr().out
    assert cli.main(["trainability", "--out", str(tmp_path / "t")] + CLI_TINY) == 0
    trainability_out = capsys.readouterr().out
    lines = claim_lines(synthetic_out)
    assert len(lines) == 4 + 3 + 2 + 2 * 2 + 2 * 2  # four claims and their 3 + 2 + 4 + 4 comparisons
    assert lines == claim_lines(trainability_out)
    s = json.loads((tmp_path / "s" / "synthetic.json").read_text())["claims"]
    t = json.loads((tmp_path / "t" / "trainability.json").read_text())["claims"]
    assert s == t


def test_shared_comparisons_agree_when_the_studies_differ_in_correlations():
    kwargs = dict(runs=3, steps=20, batch_size=16, eval_every=5, n_test=50, workers=0)
    wide = S.claims(S.model_comparison_study((1.0, 0.9, 0.8, 0.5), **kwargs))
    narrow = S.claims(S.trainability_study(**kwargs))
    for key in "abcd":
        by_label = {v.claim: v for v in wide[key].comparisons}
        assert narrow[key].comparisons
        for v in narrow[key].comparisons:
            w = by_label[v.claim]  # every comparison of the narrow study is one of the wide study's
            assert w.outcome == v.outcome
            np.testing.assert_allclose([w.interval.mean, w.interval.low, w.interval.high],
                                       [v.interval.mean, v.interval.low, v.interval.high], rtol=1e-5, atol=1e-9)


def test_the_json_records_convergence_claims_and_environment(tmp_path):
    study = S.synthetic_study(("shared-bottom", "mmoe"), (1.0, 0.5), runs=3, steps=20, batch_size=16,
                              eval_every=5, n_test=50, workers=0)
    doc = json.loads(S.write_summary_json(study, tmp_path / "s.json").read_text())
    assert doc["config"]["schedule"] == S.QUICK["schedule"]
    assert doc["convergence"] == json.loads(json.dumps(S.convergence(study)))
    assert doc["claims"] == json.loads(json.dumps(S.claims_as_dict(study)))
    env = doc["environment"]
    assert {"mmoe_np", "git_commit", "python", "numpy", "blas", "thread_variables", "cpu_count"} <= env.keys()
    assert env["numpy"] == np.__version__ and env["cpu_count"] >= 1
    assert SyntheticSpec().noise_std == doc["config"]["generator"]["noise_std"]


def test_the_environment_is_the_one_recorded_when_the_study_started(tmp_path, monkeypatch):
    # A long study's file must name the code that ran, not the commit checked out when the file is written.
    study = S.synthetic_study(("mmoe",), (1.0, 0.5), runs=2, steps=4, batch_size=8, eval_every=2, n_test=20,
                              workers=0)
    recorded = study.as_dict()["environment"]
    monkeypatch.setattr("mmoe_np.experiments.common.environment", lambda: {"git_commit": "written later"})
    doc = json.loads(S.write_summary_json(study, tmp_path / "s.json").read_text())
    assert doc["environment"] == json.loads(json.dumps(recorded)) and doc["environment"]["git_commit"] != "written later"
