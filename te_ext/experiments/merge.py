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


def _number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def validate(doc, name: str) -> None:
    """MergeError naming the first field of ``doc`` that is not what te-train writes."""
    def fail(where: str, expected: str, value) -> None:
        shown = repr(value)
        raise MergeError(f"{name}: {where} must be {expected}, got "
                         f"{shown if len(shown) <= 60 else shown[:57] + '...'}")

    if not isinstance(doc, dict):
        fail("the file", "a JSON object (a te-train results.json)", type(doc).__name__)
    for key in ("config", "runs"):
        if key not in doc:
            raise MergeError(f"{name} is not a te-train results.json: it has no {key!r}")
    cfg = doc["config"]
    if not isinstance(cfg, dict):
        fail("config", "an object", cfg)
    for key in ("arms", "arm_te", "target_acc"):
        if key not in cfg:
            raise MergeError(f"{name}: config has no {key!r}")
    arms = cfg["arms"]
    if not isinstance(arms, list) or not arms or not all(isinstance(a, str) for a in arms):
        fail("config.arms", "a non-empty list of arm names", arms)
    if len(set(arms)) != len(arms):
        fail("config.arms", "a list of distinct names", arms)
    if not isinstance(cfg["arm_te"], dict):
        fail("config.arm_te", "an object", cfg["arm_te"])
    for arm in arms:
        if arm not in cfg["arm_te"]:
            raise MergeError(f"{name}: config.arm_te has no entry for arm {arm!r}")
        if cfg["arm_te"][arm] is not None and not isinstance(cfg["arm_te"][arm], dict):
            fail(f"config.arm_te[{arm!r}]", "an object or null", cfg["arm_te"][arm])
    if not _number(cfg["target_acc"]) or not 0 < cfg["target_acc"] <= 1:
        fail("config.target_acc", "a number in (0, 1]", cfg["target_acc"])
    if not isinstance(doc["runs"], list):
        fail("runs", "a list", doc["runs"])
    for r, run in enumerate(doc["runs"]):
        at = f"runs[{r}]"
        if not isinstance(run, dict):
            fail(at, "an object", run)
        if run.get("arm") not in arms:
            fail(f"{at}.arm", f"one of config.arms {arms}", run.get("arm"))
        seed = run.get("seed")
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            fail(f"{at}.seed", "an integer >= 0", seed)
        if "error" in run and not isinstance(run["error"], str):
            fail(f"{at}.error", "a string", run["error"])
        epochs = run.get("epochs")
        if not isinstance(epochs, list):
            fail(f"{at}.epochs", "a list", epochs)
        for e, rec in enumerate(epochs):
            where = f"{at}.epochs[{e}]"
            if not isinstance(rec, dict):
                fail(where, "an object", rec)
            if rec.get("epoch") != e + 1 or isinstance(rec.get("epoch"), bool):
                fail(f"{where}.epoch", f"{e + 1} (epochs count from 1, in order)", rec.get("epoch"))
            for key in ("train_loss", "test_acc", "seconds", "te_seconds"):
                if not _number(rec.get(key)):
                    fail(f"{where}.{key}", "a number", rec.get(key))
            for key in ("test_acc", "train_acc", "train_acc_running"):
                v = rec.get(key)
                if v is not None and (not _number(v) or not 0 <= v <= 1):
                    fail(f"{where}.{key}", "a number in [0, 1]", v)
            if rec["seconds"] < 0 or rec["te_seconds"] < 0:
                fail(f"{where}.seconds", "non-negative", (rec["seconds"], rec["te_seconds"]))
            for key, v in rec.items():
                if key not in ("epoch",) and v is not None and not _number(v):
                    fail(f"{where}.{key}", "a number or null", v)


def merge_results(docs: Sequence[dict], names: Sequence[str]) -> dict:
    """The merged ``{"config", "runs", "summary"}`` of te-train ``results.json`` contents
    ``docs`` (``names`` label them in errors and in ``config["merged_from"]``)."""
    if not docs:
        raise MergeError("no results to merge")
    for doc, name in zip(docs, names):
        validate(doc, name)
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
    p = _Parser(
        prog="te-train-merge",
        description="Merge te-train results.json files of one experiment whose seeds or arms "
                    "ran in separate --out directories.")
    p.add_argument("results", nargs="+", help="te-train results.json files")
    p.add_argument("--out", required=True, help="directory for the merged results and figures")
    return p


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line and exit status 2, not argparse's usage block
        print(f"te-train-merge: error: {message}", file=sys.stderr)
        sys.exit(EXIT_USAGE)


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
            except RecursionError:
                raise MergeError(f"cannot read {path}: nested too deeply to be a te-train "
                                 f"results.json") from None
        merged = merge_results(docs, args.results)
        write_merged(args.out, merged)
    except (MergeError, OSError) as exc:
        print(f"te-train-merge: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    print(summary_markdown(merged["summary"], merged["config"]["target_acc"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
