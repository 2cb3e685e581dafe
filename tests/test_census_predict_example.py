"""examples/census_predict.py: the models a census run saved reload, predict the test rows, and give the AUCs the run
recorded; a recorded AUC that does not match makes it exit with 1."""
import functools
import json
import runpy
import sys
from pathlib import Path

import pytest

import mmoe_np as mn
from mmoe_np import cli

ROOT = Path(__file__).resolve().parents[1]
DATA_DIR = ROOT.parent / "shared" / "data" / "census-income"
pytestmark = pytest.mark.skipif(not (DATA_DIR / "census-income.data.gz").is_file(),
                                reason=f"Census-income files not found in {DATA_DIR}")


def run_example(results, monkeypatch, capsys) -> tuple[int, str]:
    monkeypatch.setattr(sys, "argv", ["census_predict.py", str(results), "--data-dir", str(DATA_DIR)])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_path(str(ROOT / "examples" / "census_predict.py"), run_name="__main__")
    return exit_.value.code, capsys.readouterr().out


def test_a_standardised_keras_recipe_run_is_encoded_as_it_was_trained(tmp_path, monkeypatch, capsys):
    # --standardize's statistics come from the (first --train-rows) training rows: the example must use the same
    out = tmp_path / "run"
    assert cli.main(["census", "--data-dir", str(DATA_DIR), "--models", "mmoe", "--runs", "1", "--epochs", "1",
                     "--recipe", "keras", "--standardize", "--train-rows", "2000", "--no-plot", "--quiet",
                     "--out", str(out)]) == 0
    capsys.readouterr()
    code, text = run_example(out, monkeypatch, capsys)
    assert code == 0 and "| MMoE | 1 (0) |" in text, text


def test_saved_best_models_reload_and_predict_the_recorded_aucs(tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    assert cli.main(["census", "--data-dir", str(DATA_DIR), "--models", "mmoe", "shared-bottom", "--runs", "2",
                     "--epochs", "1", "--train-rows", "2000", "--no-plot", "--quiet", "--out", str(out)]) == 0
    capsys.readouterr()
    # the example loads the full data once per run of it; the second run reads the same encoding from this cache
    monkeypatch.setattr(mn.data, "load_census_income", functools.lru_cache(maxsize=1)(mn.data.load_census_income))
    code, text = run_example(out, monkeypatch, capsys)
    assert code == 0, text
    assert "| MMoE | " in text and "| Shared-Bottom | " in text
    assert float(text.rsplit("AUC: ", 1)[1].split()[0]) < 1e-6
    # every saved model says how its inputs were made
    info = mn.checkpoint_info(out / "model-mmoe-group1-best.npz")["data"]
    assert info == {"dataset": "census-income", "group": 1, "recipe": "paper", "split_seed": 0, "numeric": "standardize",
                    "standardize": False, "train_rows": 2000, "n_features": 486,
                    "task_names": ["income>50K", "never_married"]}
    # a model file whose description disagrees with the run's JSON is refused
    model = mn.load(out / "model-mmoe-group1-best.npz")
    model.save(out / "model-mmoe-group1-best.npz", data={**info, "numeric": "log1p"})
    code, text = run_example(out, monkeypatch, capsys)
    assert code == 1 and "saved for inputs" in text and "'numeric': 'log1p'" in text, text
    model.save(out / "model-mmoe-group1-best.npz", data=info)
    # a model file left out is said, not an error
    (out / "model-shared-bottom-group1-best.npz").unlink()
    code, text = run_example(out, monkeypatch, capsys)
    assert code == 0 and "| Shared-Bottom | (no model-shared-bottom-group1-best.npz here) |" in text
    # a recorded AUC off by 1e-4: the check fails
    doc = json.loads((out / "group1.json").read_text())
    [mmoe] = [m for m in doc["models"] if m["model"] == "MMoE"]
    mmoe["runs"][mmoe["best_run"]]["test_auc"][0] += 1e-4
    (out / "group1.json").write_text(json.dumps(doc))
    code, text = run_example(out, monkeypatch, capsys)
    assert code == 1 and "largest difference between a recorded and a reloaded AUC: 1.0e-04" in text
