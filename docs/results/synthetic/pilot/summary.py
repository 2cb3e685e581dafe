"""The pilot's table for docs/results-synthetic.md (section I.2), from the JSON files of the pilot's runs:
    .venv/bin/python docs/results/synthetic/pilot/summary.py > docs/results/synthetic/pilot/summary.md"""
import json
from pathlib import Path

LABELS = {"shared-bottom": "Shared-Bottom (113)", "omoe": "OMoE", "mmoe": "MMoE"}
here = Path(__file__).parent
docs = sorted((json.loads(p.read_text()) for p in here.glob("lr*-steps*/synthetic.json")),
              key=lambda d: (-d["config"]["lr"], d["config"]["steps"]))
print("| lr | steps | runs | model | p = 1: mean [median] | change, last 20% | p = 0.5: mean [median] "
      "| change, last 20% | wall time (shared machine, load 5-13) |")
print("| --- | --- | --- | --- | --- | --- | --- | --- | --- |")
for d in docs:
    c = d["config"]
    for m, label in LABELS.items():
        s, conv = d["summary"][m], d["convergence"]["cells"][m]
        cells = [f"{s[p]['mean']:.4f} [{s[p]['median']:.4f}] | {100 * conv[p]['change']:.1f}%" for p in ("1", "0.5")]
        print(f"| {c['lr']:g} | {c['steps']:,} | {c['runs']} | {label} | {cells[0]} | {cells[1]} | "
              + (f"{d['seconds'] / 60:.1f} min |" if m == "shared-bottom" else "|"))
