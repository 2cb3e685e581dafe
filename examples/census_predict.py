"""Load the trained models a census run saved, predict the test set, and check the AUCs it recorded.

    python examples/census_predict.py RESULTS_DIR [--data-dir ../shared/data/census-income]

RESULTS_DIR is the --out folder of ``mmoe-np census`` (for example docs/results/census/tuned-group1): its
``group{G}.json`` records every run, and ``model-{model}-group{G}-best.npz`` is each model's run with the best main-task
*validation* AUC. Each model is read back with ``mn.load`` (plain arrays, nothing unpickled), the data are encoded
the way that model was trained (the numeric transform is in the JSON), and ``model.predict`` gives the probability of
each task on the test rows. Their AUCs must be the ones the run recorded; the script exits with 1 if one is not.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mmoe_np as mn
from mmoe_np.experiments.census_runs import slug


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the --out folder of mmoe-np census")
    parser.add_argument("--data-dir", default="../shared/data/census-income")
    args = parser.parse_args()
    [json_path] = sorted(args.results.glob("group[12].json")) or sys.exit(f"no group1.json or group2.json in "
                                                                          f"{args.results}")
    doc = json.loads(json_path.read_text())
    s = doc["settings"]
    group, tasks = s["group"], doc["task_names"]
    by_transform: dict[str, list[dict]] = {}
    for m in doc["models"]:
        if m["best_run"] is not None:
            by_transform.setdefault(m["training"].get("numeric", "standardize"), []).append(m)
    print(f"{json_path}: group {group}, recipe {s['recipe']}, split seed {s['split_seed']}")
    print(f"| model | best run (seed) | {tasks[0]} test AUC: recorded / reloaded | {tasks[1]}: recorded / reloaded |")
    print("| --- | --- | --- | --- |")
    worst = 0.0
    for numeric, models in by_transform.items():  # one encoding of the data at a time (~0.4 GB each)
        data = mn.data.load_census_income(args.data_dir, group=group, seed=s["split_seed"], recipe=s["recipe"],
                                          dtype=s["dtype"], numeric=numeric)
        for m in models:
            model = mn.load(args.results / f"model-{slug(m['model'])}-group{group}-best.npz")
            p = model.predict(data.X_test)  # (n_test, 2): the probability of each task
            reloaded = [mn.metrics.roc_auc(data.Y_test[:, k], p[:, k]) for k in range(2)]
            run = m["runs"][m["best_run"]]
            worst = max(worst, *(abs(a - b) for a, b in zip(reloaded, run["test_auc"])))
            print(f"| {m['model']} | {m['best_run'] + 1} ({run['seed']}) | {run['test_auc'][0]:.6f} / "
                  f"{reloaded[0]:.6f} | {run['test_auc'][1]:.6f} / {reloaded[1]:.6f} |")
        del data
    print(f"largest difference between a recorded and a reloaded AUC: {worst:.1e}")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
