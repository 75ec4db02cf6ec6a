"""One markdown row per (arm, seed) of te-train results.json files, for an experiment still in
progress (te-train-merge summarises finished ones, with CIs). A run in several files keeps its
longest copy; a run with fewer epochs than configured is marked in progress.

    python scripts/ablation_runs_table.py docs/experiments/fashionmnist-ablations/partial/*.json
"""

from __future__ import annotations

import json
import sys

ARMS = ["baseline", "te", "mi", "phi", "te_shifted", "te_deep"]


def first_epoch_at(epochs, key, target):
    return next((e["epoch"] for e in epochs if e.get(key) is not None and e[key] >= target), None)


def main(paths) -> int:
    runs, target, planned = {}, None, None
    for path in paths:
        with open(path) as f:
            data = json.load(f)
        target, planned = data["config"]["target_acc"], data["config"]["epochs"]
        for run in data["runs"]:
            key = (run["arm"], run["seed"])
            if key not in runs or len(run["epochs"]) > len(runs[key]["epochs"]):
                runs[key] = run
    print(f"| arm | seed | epochs | epoch reaching {target:.2f} test | epoch reaching {target:.2f} "
          f"train (the paper's metric) | last test acc | last train acc |")
    print("|---|---|---|---|---|---|---|")
    order = sorted(runs, key=lambda k: (k[1], ARMS.index(k[0]) if k[0] in ARMS else 99, k[0]))
    for arm, seed in order:
        ep = runs[(arm, seed)]["epochs"]
        if not ep:
            continue
        n = f"{len(ep)}" if len(ep) >= planned else f"{len(ep)} (in progress)"
        cells = [first_epoch_at(ep, "test_acc", target), first_epoch_at(ep, "train_acc", target)]
        cells = ["—" if c is None else str(c) for c in cells]
        last = ep[-1]
        train = "—" if last.get("train_acc") is None else f"{last['train_acc']:.4f}"
        print(f"| {arm} | {seed} | {n} | {cells[0]} | {cells[1]} | {last['test_acc']:.4f} | {train} |")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
