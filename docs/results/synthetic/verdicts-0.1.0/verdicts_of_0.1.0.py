"""The verdicts of experiments/synthetic.claims on the 200-run, 1,000-step results of release 0.1.0
(docs/results/synthetic/synthetic-final.csv and shared-bottom-final.csv)."""
import csv
import sys
import numpy as np
from mmoe_np.experiments import synthetic as S

def study_from_final_csv(path):
    rows = list(csv.DictReader(open(path, newline="")))
    models = list(dict.fromkeys(r["model"] for r in rows))
    ps = list(dict.fromkeys(float(r["correlation"]) for r in rows))
    n = 1 + max(int(r["run"]) for r in rows)
    loss = {m: np.zeros((len(ps), n, 1, 2)) for m in models}
    for r in rows:
        loss[r["model"]][ps.index(float(r["correlation"])), int(r["run"]), 0] = (
            float(r["final_test_mse"]), float(r["final_test_mse_task2"]))
    config = {"models": models, "correlations": ps, "runs": n, "steps": 1000, "generator": {"noise_std": 0.1}}
    return S.SyntheticStudy(config=config, steps=np.array([1000]), test_loss=loss, train_loss=loss,
                            diverged={m: np.zeros((len(ps), n), int) for m in models},
                            seeds=np.zeros((n, 2), int), seconds=0.0)

for path in sys.argv[1:]:
    print(f"== {path}")
    for claim in S.claims(study_from_final_csv(path)).values():
        print("\n".join(claim.lines()))
