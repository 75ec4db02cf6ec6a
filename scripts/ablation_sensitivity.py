"""Paired differences of a merged te-train results.json at several accuracy targets, against
the baseline and against the shuffled control (``te_shifted``).

te-train-merge reports one target. When every arm reaches it at the same epoch (FashionMNIST's
0.90 on training accuracy is reached at epoch 5 by every run), a stricter target is the
question whether a small effect hides behind it. Each cell is the mean difference in epochs
with its paired 95% CI (Student t over seeds); a run that never reaches a target leaves
that (arm, target) out and says so.

    python scripts/ablation_sensitivity.py docs/experiments/fashionmnist-ablations/results.json \
        --train 0.90,0.92,0.93,0.94,0.95 --test 0.89,0.90,0.91
"""

from __future__ import annotations

import argparse
import json
import sys

from te_ext.experiments.results import _paired, _to_target

CONTROLS = ("baseline", "te_shifted")


def _epochs(runs, arm, target, key):
    out, missing = {}, 0
    for r in runs:
        if r["arm"] != arm:
            continue
        ep, _ = _to_target(r, target, key)
        if ep is None:
            missing += 1
        else:
            out[r["seed"]] = float(ep)
    return out, missing


def _cell(p) -> str:
    if p["ci95"] is None:
        return f"{p['mean_diff']:+.2f} (n={p['n']})"
    lo, hi = p["ci95"]
    return f"{p['mean_diff']:+.2f} [{lo:+.2f}, {hi:+.2f}]"


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("results")
    ap.add_argument("--train", default="0.90,0.92,0.93,0.94,0.95")
    ap.add_argument("--test", default="0.89,0.90,0.91")
    args = ap.parse_args(argv)
    with open(args.results) as f:
        runs = json.load(f)["runs"]
    arms = list(dict.fromkeys(r["arm"] for r in runs))
    targets = [("train_acc", float(t)) for t in args.train.split(",")] + \
              [("test_acc", float(t)) for t in args.test.split(",")]
    for control in CONTROLS:
        if control not in arms:
            continue
        others = [a for a in arms if a != control and a != "baseline"]
        print(f"\nΔ epochs to target, arm − {control}, paired over seeds (95% CI)\n")
        print("| target | " + " | ".join(others) + " |")
        print("|---" * (len(others) + 1) + "|")
        for key, target in targets:
            ref, ref_missing = _epochs(runs, control, target, key)
            cells = []
            for arm in others:
                mine, missing = _epochs(runs, arm, target, key)
                cell = _cell(_paired(mine, ref)) if set(mine) & set(ref) else "—"
                if missing or ref_missing:
                    cell += f" (never reached: {missing} {arm}, {ref_missing} {control})"
                cells.append(cell)
            name = "train" if key == "train_acc" else "test"
            print(f"| {target:.2f} {name} | " + " | ".join(cells) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
