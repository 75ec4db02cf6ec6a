"""``te-train-merge``: one result from ``te-train`` runs split over processes or machines.

A run's result depends only on its seed and its arm's settings (initial weights from
``torch.manual_seed(seed)``, sample order from ``(seed, epoch)``), so seeds and arms can be
trained in separate ``--out`` directories, even by different versions of ``te-train``, and
summarised together afterwards::

    te-train --dataset fashionmnist --arms baseline,te --seeds 3 --out runs/a
    te-train --dataset fashionmnist --arms te:paper:effective --seeds 3 --out runs/b
    te-train-merge runs/a/results.json runs/b/results.json --out runs/all

The inputs must agree on everything that shapes a run (dataset, model, epochs, target,
optimizer settings, device, ``--limit-train``), and an arm present in several inputs must have
the same TE settings in each. A run (arm, seed) present in several inputs must agree, epoch for
epoch, on train loss and test accuracy (bit-identical, as CPU training is; wall times may
differ); the one with more epochs is kept. The output holds ``results.json`` (with
``config["merged_from"]``), ``results.csv``, ``curves.png``, ``te_diagnostics.png`` and prints
the summary table. Errors are one line, ``te-train-merge: error: ...``, exit status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Dict, List, Optional, Sequence, Tuple

from .checkpoint import write_json
from .results import plot_curves, plot_te_diagnostics, summarize, summary_markdown, write_csv

__all__ = ["merge_results", "main"]

# Config keys that decide what a run computes; they must be equal in every input.
SAME_KEYS = ("dataset", "model", "limit_train", "epochs", "target_acc", "batch_size", "lr",
             "momentum", "weight_decay", "optimizer", "device", "preset")
# What a run's reproducibility is checked on when two inputs hold it (not wall times).
EXACT_FIELDS = ("epoch", "train_loss", "test_acc")

EXIT_USAGE = 2


class MergeError(ValueError):
    pass


def _check_same_config(docs: Sequence[dict], names: Sequence[str]) -> None:
    first = docs[0]["config"]
    for doc, name in zip(docs[1:], names[1:]):
        for key in SAME_KEYS:
            a, b = first.get(key), doc["config"].get(key)
            if a != b:
                raise MergeError(f"{names[0]} and {name} differ in {key!r} ({a!r} vs {b!r}); "
                                 f"only runs of the same experiment can be merged")


def _merge_arms(docs: Sequence[dict], names: Sequence[str]) -> Tuple[List[str], Dict]:
    arms: List[str] = []
    arm_te: Dict[str, Optional[dict]] = {}
    origin: Dict[str, str] = {}
    for doc, name in zip(docs, names):
        for arm in doc["config"]["arms"]:
            te = doc["config"]["arm_te"][arm]
            if arm in arm_te:
                if arm_te[arm] != te:
                    raise MergeError(f"arm {arm!r} has different TE settings in {origin[arm]} "
                                     f"({arm_te[arm]}) and {name} ({te})")
                continue
            arms.append(arm)
            arm_te[arm] = te
            origin[arm] = name
    return arms, arm_te


def _same_epochs(a: dict, b: dict) -> bool:
    n = min(len(a["epochs"]), len(b["epochs"]))
    return all(a["epochs"][e][f] == b["epochs"][e][f] for e in range(n) for f in EXACT_FIELDS)


def _merge_runs(docs: Sequence[dict], names: Sequence[str]) -> List[dict]:
    kept: Dict[Tuple[str, int], Tuple[dict, str]] = {}
    for doc, name in zip(docs, names):
        for run in doc["runs"]:
            key = (run["arm"], run["seed"])
            if key in kept:
                other, other_name = kept[key]
                if not _same_epochs(run, other):
                    raise MergeError(
                        f"run {run['arm']!r} seed {run['seed']} differs between {other_name} and "
                        f"{name} in an epoch both finished (train loss or test accuracy); the "
                        f"runs are not the same computation")
                if len(run["epochs"]) <= len(other["epochs"]):
                    continue
            kept[key] = (run, name)
    return [run for run, _ in kept.values()]


def merge_results(docs: Sequence[dict], names: Sequence[str]) -> dict:
    """The merged ``{"config", "runs", "summary"}`` of te-train ``results.json`` contents
    ``docs`` (``names`` label them in errors and in ``config["merged_from"]``)."""
    if not docs:
        raise MergeError("no results to merge")
    for doc, name in zip(docs, names):
        if (not isinstance(doc, dict) or not {"config", "runs"} <= set(doc)
                or not isinstance(doc["config"], dict)
                or not {"arms", "arm_te", "target_acc"} <= set(doc["config"])):
            raise MergeError(f"{name} is not a te-train results.json (it needs 'config' with "
                             f"'arms', 'arm_te' and 'target_acc', and 'runs')")
    _check_same_config(docs, names)
    arms, arm_te = _merge_arms(docs, names)
    runs = _merge_runs(docs, names)
    order = {arm: i for i, arm in enumerate(arms)}
    runs.sort(key=lambda r: (r["seed"], order[r["arm"]]))
    config = dict(docs[0]["config"])
    config.update(arms=arms, arm_te=arm_te, seeds=sorted({r["seed"] for r in runs}),
                  merged_from=list(names))
    torches = sorted({str(d["config"].get("torch")) for d in docs})
    config["torch"] = torches[0] if len(torches) == 1 else torches
    summary = summarize(runs, arms, config["target_acc"])
    return {"config": config, "runs": runs, "summary": summary}


def write_merged(out: str, merged: dict) -> None:
    cfg, runs = merged["config"], merged["runs"]
    os.makedirs(out, exist_ok=True)
    write_json(os.path.join(out, "results.json"), merged)
    write_csv(os.path.join(out, "results.csv"), runs)
    title = f"{cfg['dataset']} ({cfg['model']} network), {len(cfg['seeds'])} seed(s)"
    plot_curves(os.path.join(out, "curves.png"), runs, cfg["arms"], cfg["target_acc"],
                title=title)
    te_arms = [a for a in cfg["arms"] if cfg["arm_te"][a] is not None]
    if te_arms:
        plot_te_diagnostics(os.path.join(out, "te_diagnostics.png"), runs, te_arms, title=title)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="te-train-merge",
        description="Merge te-train results.json files of one experiment whose seeds or arms "
                    "ran in separate --out directories.")
    p.add_argument("results", nargs="+", help="te-train results.json files")
    p.add_argument("--out", required=True, help="directory for the merged results and figures")
    return p


def main(argv: Optional[List[str]] = None) -> int:
    args = _parser().parse_args(argv)
    docs = []
    try:
        for path in args.results:
            try:
                with open(path) as f:
                    docs.append(json.load(f))
            except (OSError, ValueError) as exc:
                raise MergeError(f"cannot read {path}: {exc}") from None
        merged = merge_results(docs, args.results)
        write_merged(args.out, merged)
    except (MergeError, OSError) as exc:
        print(f"te-train-merge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary_markdown(merged["summary"], merged["config"]["target_acc"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
