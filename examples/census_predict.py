"""Load the trained models a census run saved, predict the test set, and check the AUCs it recorded.

    python examples/census_predict.py RESULTS_DIR [--group G] [--data-dir ../shared/data/census-income]

RESULTS_DIR is the --out folder of ``mmoe-np census`` (for example docs/results/census/tuned-group1): its
``group{G}.json`` records every run, and ``model-{model}-group{G}-best.npz`` is each model's run with the best main-task
*validation* AUC. Each model is read back with ``mn.load`` (plain arrays, nothing unpickled), the data are encoded
the way that model was trained (recipe, split, numeric transform, standardisation: all in the JSON, and in the
model file itself, ``mn.checkpoint_info(path)["data"]``, which must agree), and
``model.predict`` gives the probability of each task on the test rows. Their AUCs must be the ones the run recorded
(to 1e-6: the run ranked the logits, and float32 probabilities can tie where logits do not); the script exits with
1 if one is not.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import mmoe_np as mn
from mmoe_np.experiments.census_jobs import CensusSource
from mmoe_np.experiments.census_runs import slug


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="the --out folder of mmoe-np census")
    parser.add_argument("--group", type=int, choices=(1, 2), help="which group{G}.json (needed when both are there)")
    parser.add_argument("--data-dir", default="../shared/data/census-income")
    args = parser.parse_args()
    found = sorted(args.results.glob("group[12].json")) if args.group is None else \
        [args.results / f"group{args.group}.json"]
    if len(found) != 1 or not found[0].is_file():
        parser.error(f"{args.results} must hold one group1.json or group2.json (or name it with --group); "
                     f"found {[p.name for p in found if p.is_file()]}")
    doc = json.loads(found[0].read_text())
    s = doc["settings"]
    group, tasks = s["group"], doc["task_names"]
    source = CensusSource(args.data_dir, group, s["recipe"], s["split_seed"], s["dtype"],
                          train_rows=s.get("train_rows"), standardize=s.get("standardize", False))
    by_transform: dict[str | None, list[dict]] = {}
    for m in doc["models"]:
        if m["best_run"] is not None:
            by_transform.setdefault(m["training"].get("numeric"), []).append(m)
    print(f"{found[0]}: group {group}, recipe {s['recipe']}, split seed {s['split_seed']}")
    print(f"| model | best run (seed) | {tasks[0]} test AUC: recorded / reloaded | {tasks[1]}: recorded / reloaded |")
    print("| --- | --- | --- | --- |")
    worst, undescribed = 0.0, []
    for numeric, models in by_transform.items():  # one encoding of the data at a time (~0.4 GB each)
        data = source.load(numeric)
        for m in models:
            path = args.results / f"model-{slug(m['model'])}-group{group}-best.npz"
            if not path.is_file():  # e.g. a results folder kept with only some of the models
                print(f"| {m['model']} | (no {path.name} here) | | |")
                continue
            described = mn.checkpoint_info(path)["data"]  # the encoding saved with the model (None in older files)
            expected = {"group": group, "recipe": s["recipe"], "split_seed": s["split_seed"], "numeric": numeric,
                        "standardize": s.get("standardize", False), "train_rows": s.get("train_rows")}
            if described is None:  # written before models carried it, or loaded and saved again without data=
                undescribed.append(path.name)
            elif {k: described.get(k) for k in expected} != expected:
                print(f"{path.name}: saved for inputs {described}, but {found[0].name} gives {expected}")
                return 1
            model = mn.load(path)
            p = model.predict(data.X_test)  # (n_test, 2): the probability of each task
            reloaded = [mn.metrics.roc_auc(data.Y_test[:, k], p[:, k]) for k in range(2)]
            run = m["runs"][m["best_run"]]
            worst = max(worst, *(abs(a - b) for a, b in zip(reloaded, run["test_auc"])))
            print(f"| {m['model']} | {m['best_run'] + 1} ({run['seed']}) | {run['test_auc'][0]:.6f} / "
                  f"{reloaded[0]:.6f} | {run['test_auc'][1]:.6f} / {reloaded[1]:.6f} |")
        del data
    if undescribed:
        print(f"no description of their inputs in {', '.join(undescribed)} (older files): encoded as "
              f"{found[0].name} says")
    print(f"largest difference between a recorded and a reloaded AUC: {worst:.1e}")
    return 0 if worst < 1e-6 else 1


if __name__ == "__main__":
    sys.exit(main())
