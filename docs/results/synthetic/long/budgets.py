"""The paper profile (2,000 steps) against the long profile (4,000 steps) on the same 200 runs per cell: how much
the doubled budget lowered each run's final task-1 test MSE (paired: run r of both studies has the same task pair,
data stream, test set and initialisation), how far each cell is from the noise floor, and the verdicts of both.

    .venv/bin/python docs/results/synthetic/long/budgets.py > docs/results/synthetic/long/budgets.md
"""
import csv
import json
from pathlib import Path

import numpy as np

from mmoe_np.experiments import stats

HERE = Path(__file__).parent
STUDIES = {"2,000 steps (paper)": HERE.parent / "paper", "4,000 steps (long)": HERE}
LABELS = {"shared-bottom": "Shared-Bottom (113)", "omoe": "OMoE", "mmoe": "MMoE"}
FLOOR = 0.01  # the label noise's variance: the test MSE of the true function


def finals(folder: Path) -> dict[tuple[str, str], np.ndarray]:
    """(model, p) -> final task-1 test MSE of runs 0..R-1, in run order."""
    rows = list(csv.DictReader(open(folder / "synthetic-final.csv")))
    out: dict[tuple[str, str], list[tuple[int, float]]] = {}
    for row in rows:
        out.setdefault((row["model"], row["correlation"]), []).append((int(row["run"]), float(row["final_test_mse"])))
    return {key: np.array([v for _, v in sorted(values)]) for key, values in out.items()}


short, long = (finals(folder) for folder in STUDIES.values())
print("| model | p | 2,000 steps: mean [median] | 4,000 steps: mean [median] | above the floor (median): 2,000 / 4,000 "
      "| L(2,000) - L(4,000), paired, 95% CI |")
print("| --- | --- | --- | --- | --- | --- |")
for (model, p), a in short.items():
    b = long[(model, p)]
    ci = stats.compare(a, b)
    print(f"| {LABELS[model]} | {p} | {a.mean():.4f} [{np.median(a):.4f}] | {b.mean():.4f} [{np.median(b):.4f}] | "
          f"{100 * (np.median(a) / FLOOR - 1):.0f}% / {100 * (np.median(b) / FLOOR - 1):.0f}% | "
          f"{ci.mean:+.4f} [{ci.low:+.4f}, {ci.high:+.4f}] |")
print()
print("| claim | " + " | ".join(STUDIES) + " |")
print("| --- | --- | --- |")
claims = [json.loads((folder / "synthetic.json").read_text())["claims"] for folder in STUDIES.values()]
for key in claims[0]:
    cells = []
    for c in claims:
        outcomes = [comp["outcome"] for comp in c[key]["comparisons"]]
        counts = ", ".join(f"{outcomes.count(o)} {o}" for o in ("holds", "does not hold", "inconclusive")
                           if outcomes.count(o))
        cells.append(f"**{c[key]['verdict']}** ({counts})")
    print(f"| ({key}) {claims[0][key]['claim']} | " + " | ".join(cells) + " |")
