"""The mean gate weights behind gates-mmoe-group2.png (run 1, seed 0), from a rerun of that run alone:

    OPENBLAS_NUM_THREADS=1 mmoe-np census --config docs/results/census/tune-group2/tuned.json --models mmoe --runs 1 \
        --save-models --data-dir ../shared/data/census-income --out /tmp/c21/mmoe1
    python docs/results/census/tuned-group2/gates-run1.py /tmp/c21/mmoe1 > docs/results/census/tuned-group2/gates-run1.log

The rerun reproduces the 20-run table's seed-0 run bit for bit (checked below), so its gates are the plot's."""
import json
import sys
from pathlib import Path

import numpy as np

import mmoe_np as mn

rerun = Path(sys.argv[1])
here = Path(__file__).parent
recorded = next(r for r in json.loads((here / "group2.json").read_text())["models"][6]["runs"] if r["seed"] == 0)
again = json.loads((rerun / "group2.json").read_text())["models"][0]["runs"][0]
print("seed-0 test AUCs, recorded:", recorded["test_auc"], "rerun:", again["test_auc"])
assert again["test_auc"] == recorded["test_auc"]
model = mn.load(rerun / "model-mmoe-group2-run1.npz")
data = mn.data.load_census_income("../shared/data/census-income", group=2, numeric="log1p")
g = model.gate_weights(data.X_test)  # (N, K, E)
for k, task in enumerate(("education>=college", "never_married")):
    mean, q25, q75 = g[:, k].mean(0), *np.percentile(g[:, k], [25, 75], axis=0)
    print(f"gate of {task}: expert (1-based): mean [25th, 75th percentile]")
    for e in np.argsort(-mean):
        print(f"  {e + 1:2d}: {mean[e]:.3f} [{q25[e]:.3f}, {q75[e]:.3f}]")
