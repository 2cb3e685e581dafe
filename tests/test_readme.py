"""The README's sections run as written: every ```python block after the first (which test_examples.py runs)."""
import os
from pathlib import Path

import numpy as np

README = Path(__file__).resolve().parents[1] / "README.md"


def python_blocks(text: str) -> dict[str, str]:
    """The README's ```python blocks, keyed by the ## heading they stand under."""
    blocks, heading = {}, None
    lines = iter(text.splitlines())
    for line in lines:
        if line.startswith("## "):
            heading = line[3:].strip()
        elif line.strip() == "```python":
            body = []
            for inner in lines:
                if inner.strip() == "```":
                    break
                body.append(inner)
            blocks[heading] = "\n".join(body) + "\n"
    return blocks


def test_train_evaluate_save_load_predict_runs_as_written(tmp_path, capsys, monkeypatch):
    snippet = python_blocks(README.read_text())["Train, evaluate, save, load, predict"]
    monkeypatch.chdir(tmp_path)  # the snippet writes mmoe.npz into the current folder
    namespace: dict = {}
    exec(compile(snippet, "README.md", "exec"), namespace)
    printed = capsys.readouterr().out
    aucs = eval(printed.strip().splitlines()[-1])  # the printed {task: auc}
    assert set(aucs) == {0, 1} and min(aucs.values()) > 0.9  # two learnable tasks, learned
    assert os.path.exists(tmp_path / "mmoe.npz") and sorted(p.name for p in tmp_path.iterdir()) == ["mmoe.npz"]
    restored, model = namespace["restored"], namespace["model"]
    assert type(restored) is type(model) and restored.config() == model.config()
    assert all(np.array_equal(restored.params[k], model.params[k]) for k in model.params)
    assert namespace["history"].best_epoch is not None
