"""``te-train``: the paper's method against plain backprop, seed by seed, on held-out data.

For every seed ``0 .. N-1`` each arm (``baseline``: plain SGD; ``te``: SGD with
``te_ext.TEFeedback`` on the model's ``te_layer``; ``te:RULE[:ESTIMATOR]``: the same with
another rule or estimator, see :mod:`te_ext.experiments.arms`) starts from the same initial weights
(``torch.manual_seed(seed)`` before building the model) and sees the same sample order
(each epoch's permutation is derived from ``(seed, epoch)`` alone). After every epoch it
measures accuracy on the test split (and, for TE arms, the distribution of T: see
:mod:`te_ext.experiments.diagnostics`), writes ``OUT/checkpoints/<arm>-seed<seed>.pt``
(``:`` in the arm written ``+``) atomically with its SHA-256 (model, optimizer, TEFeedback
state, RNG states, epoch, metrics so far) and rewrites ``OUT/results.json`` and
``OUT/results.csv``. At the end it draws ``OUT/curves.png`` (and ``OUT/te_diagnostics.png`` when
a TE arm ran) and prints a markdown summary table. ``--resume`` verifies each checkpoint's hash
and that it belongs to this run (see :meth:`_Runner.load_verified`) before any run trains, and
removes the temp files of a write that a kill interrupted.

Exit status: 0; 2 for bad arguments, a dataset that is missing, an output directory that
cannot be written, or a checkpoint that fails its checks on ``--resume`` (one line on stderr,
``te-train: error: ...``, and the checkpoint is left as it was); 3 when a run stopped on
a NaN/inf loss (its measured epochs are kept and the other runs go on); 130 on Ctrl-C (the
last checkpoint stays valid: rerun with ``--resume``).

Example (the README's main job)::

    te-train --dataset digits --arms baseline,te --seeds 5 --out runs/digits
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
import time
from typing import List, Optional

import torch
import torch.nn.functional as F

from ..feedback import TEFeedback
from .._checks import usable_memory
from .arms import ALL_LINEAR, ArmError, file_stem, parse_arms, te_settings
from .checkpoint import (CheckpointError, load_checkpoint, remove_stale_temps, rng_state,
                         save_checkpoint, set_rng_state, write_json)
from .data import DATASETS, DatasetUnavailable, epoch_order, limit_train, load_dataset
from .diagnostics import TEDiagnostics
from .models import PRESETS, build_model
from .results import plot_curves, plot_te_diagnostics, summarize, summary_markdown, write_csv

__all__ = ["main", "build_parser"]

EXIT_USAGE, EXIT_NONFINITE, EXIT_INTERRUPTED = 2, 3, 130
# What must match for --resume to continue a checkpoint (the rest may change, e.g. epochs).
_RESUME_KEYS = ("dataset", "model", "batch_size", "lr", "momentum", "weight_decay", "device",
                "limit_train")
MAX_SEEDS, MAX_THREADS = 10_000, 1024


class NonFiniteLoss(RuntimeError):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse with a one-line usage on errors (the full block is in --help)."""

    def error(self, message):
        message = " ".join(str(message).split())
        self.exit(EXIT_USAGE, f"usage: {self.prog} --dataset NAME [options]\n"
                              f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="te-train",
        description="Train a paper CNN with and without TE feedback (Moldovan, Caţaron & "
                    "Andonie, Entropy 2021) over several seeds; accuracy is measured on "
                    "the test split.")
    p.add_argument("--dataset", required=True, choices=DATASETS)
    p.add_argument("--model", choices=sorted(PRESETS),
                   help="network and hyper-parameter preset (default: the dataset's; "
                        "digits for synthetic)")
    p.add_argument("--arms", default="baseline,te",
                   help="comma-separated runs to compare, each NAME[:RULE[:ESTIMATOR]]: "
                        "baseline; te (the preset's rule); te:paper, te:authors_code; "
                        "te:RULE:ESTIMATOR with ESTIMATOR plugin, analytic or effective "
                        "(the last two need TEFeedback estimator support)")
    p.add_argument("--epochs", type=int, help="default: the preset's")
    p.add_argument("--seeds", type=int, default=1, help="run seeds 0 .. N-1 (default 1)")
    p.add_argument("--first-seed", type=int, default=0, metavar="S",
                   help="start at seed S instead of 0 (seeds S .. N-1), to split the seeds "
                        "over processes; merge their results with te-train-merge")
    p.add_argument("--target-acc", type=float,
                   help="test accuracy for epochs/seconds-to-target (default: the preset's)")
    p.add_argument("--batch-size", type=int, help="default: the preset's")
    p.add_argument("--lr", type=float, help="default: the preset's")
    p.add_argument("--momentum", type=float, help="SGD momentum (default: the preset's)")
    p.add_argument("--weight-decay", type=float, help="SGD weight decay (default: the preset's)")
    p.add_argument("--device", default="cpu", choices=("cpu", "cuda"))
    p.add_argument("--threads", type=int,
                   help="torch CPU threads (default: the preset's, else torch's default)")
    p.add_argument("--out", help="output directory (default: runs/<dataset>)")
    p.add_argument("--data-dir", default="data",
                   help="where torchvision datasets live (default: ./data)")
    p.add_argument("--limit-train", type=int, metavar="N",
                   help="train on a fixed stratified subset of N training samples (the same "
                        "for every seed; for smoke tests and CI); the test split stays whole")
    p.add_argument("--download", action="store_true",
                   help="download a missing torchvision dataset into --data-dir")
    p.add_argument("--resume", action="store_true",
                   help="continue from the checkpoints in --out")
    p.add_argument("--quiet", action="store_true", help="no progress bars or per-run lines")
    p.add_argument("--eval-train", action="store_true",
                   help="also record training-set accuracy every epoch (train_acc: eval mode over "
                        "the whole training split after the epoch, which is what the seed "
                        "paper's code reports as validation accuracy; train_acc_running: the "
                        "mean accuracy of the epoch's mini-batches before their updates)")
    te = p.add_argument_group("TE feedback overrides (default: the preset's)")
    te.add_argument("--window", type=int, help="samples in the TE window (the paper's u)")
    te.add_argument("--source-threshold", type=float)
    te.add_argument("--target-threshold", type=float, help="the paper's g")
    te.add_argument("--target-transform", choices=("none", "softmax", "sigmoid"))
    te.add_argument("--rule", choices=("paper", "authors_code"))
    te.add_argument("--every", type=int, help="refresh TE every N optimizer steps")
    te.add_argument("--pair-fraction", type=float)
    return p


def _config(args, parser) -> dict:
    try:
        arm_specs = parse_arms(args.arms)
    except ArmError as exc:
        parser.error(f"--arms: {exc}")
    arms = [a.name for a in arm_specs]
    model = args.model or ("digits" if args.dataset == "synthetic" else args.dataset)
    preset = PRESETS[model]
    for flag, value, ok in (("--epochs", args.epochs, lambda v: v >= 1),
                            ("--seeds", args.seeds, lambda v: 1 <= v <= MAX_SEEDS),
                            ("--batch-size", args.batch_size, lambda v: v >= 1),
                            ("--lr", args.lr, lambda v: math.isfinite(v) and v > 0),
                            ("--momentum", args.momentum, lambda v: 0 <= v < 1),
                            ("--weight-decay", args.weight_decay,
                             lambda v: math.isfinite(v) and v >= 0),
                            ("--target-acc", args.target_acc, lambda v: 0 < v <= 1),
                            ("--threads", args.threads, lambda v: 1 <= v <= MAX_THREADS),
                            ("--limit-train", args.limit_train, lambda v: v >= 2),
                            ("--window", args.window, lambda v: v >= 2),
                            ("--every", args.every, lambda v: v >= 1),
                            ("--pair-fraction", args.pair_fraction, lambda v: 0 < v <= 1)):
        if value is not None and not ok(value):
            parser.error(f"{flag}: invalid value {value!r}")
    if not 0 <= args.first_seed < args.seeds:
        parser.error(f"--first-seed: invalid value {args.first_seed!r} (seeds S .. N-1 run, so "
                     f"0 <= S < --seeds {args.seeds} is needed)")
    if args.device == "cuda" and not torch.cuda.is_available():
        parser.error("--device cuda: torch.cuda.is_available() is false on this machine")
    te = preset.te_kwargs()
    for key in ("window", "source_threshold", "target_threshold", "rule", "every",
                "pair_fraction"):
        if getattr(args, key) is not None:
            te[key] = getattr(args, key)
    if args.target_transform is not None:
        te["target_transform"] = None if args.target_transform == "none" else args.target_transform
    return {
        "dataset": args.dataset,
        "model": model,
        "arms": arms,
        "arm_te": te_settings(arm_specs, te),
        "limit_train": args.limit_train,
        "epochs": args.epochs or preset.epochs,
        "seeds": list(range(args.first_seed, args.seeds)),
        "target_acc": args.target_acc if args.target_acc is not None else preset.target_acc,
        "batch_size": args.batch_size or preset.batch_size,
        "lr": args.lr if args.lr is not None else preset.lr,
        "momentum": args.momentum if args.momentum is not None else preset.momentum,
        "weight_decay": (args.weight_decay if args.weight_decay is not None
                         else preset.weight_decay),
        "optimizer": "torch.optim.SGD",
        "device": args.device,
        "te": te,
        "preset": preset.to_dict(),
        "data_dir": args.data_dir,
        "seconds": "wall time of each epoch's training steps (forward, backward, TE "
                   "feedback, optimizer); evaluation and checkpointing excluded",
        "torch": torch.__version__,
        "threads": args.threads or preset.threads or torch.get_num_threads(),
        "eval_train": bool(args.eval_train),
    }


def _diverged(model, xb) -> bool:
    """Whether the weights or the plain forward pass (no TE recording under no_grad) of
    ``xb`` hold a NaN or inf."""
    with torch.no_grad():
        if not all(bool(torch.isfinite(p).all()) for p in model.parameters()):
            return True
        return not bool(torch.isfinite(model(xb)).all())


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class _Runner:
    """Trains the runs of one invocation and keeps ``runs`` (the results so far) current."""

    def __init__(self, config: dict, data, out: str, resume: bool, quiet: bool):
        self.cfg, self.data, self.out = config, data, out
        self.resume, self.quiet = resume, quiet
        self.device = torch.device(config["device"])
        self.runs: List[dict] = []
        self.ckpt_dir = os.path.join(out, "checkpoints")
        self._shapes: Optional[dict] = None  # the model's weight shapes, for --resume checks

    def ckpt_path(self, arm: str, seed: int) -> str:
        return os.path.join(self.ckpt_dir, f"{file_stem(arm)}-seed{seed}.pt")

    def write_results(self, plot: bool = False) -> dict:
        cfg = self.cfg
        summary = summarize(self.runs, cfg["arms"], cfg["target_acc"])
        write_json(os.path.join(self.out, "results.json"),
                   {"config": cfg, "runs": self.runs, "summary": summary})
        write_csv(os.path.join(self.out, "results.csv"), self.runs)
        if plot:
            title = f"{cfg['dataset']} ({cfg['model']} network), {len(cfg['seeds'])} seed(s)"
            plot_curves(os.path.join(self.out, "curves.png"), self.runs, cfg["arms"],
                        cfg["target_acc"], title=title)
            te_arms = [a for a in cfg["arms"] if cfg["arm_te"][a] is not None]
            if te_arms:
                plot_te_diagnostics(os.path.join(self.out, "te_diagnostics.png"), self.runs,
                                    te_arms, title=title)
        return summary

    def _signature(self, arm: str) -> dict:
        sig = {k: self.cfg[k] for k in _RESUME_KEYS}
        if self.cfg.get("eval_train"):  # a resumed run must keep measuring what it measured
            sig["eval_train"] = True
        if self.cfg["arm_te"][arm] is not None:
            sig["te"] = self.cfg["arm_te"][arm]
        return sig

    def load_verified(self, arm: str, seed: int) -> Optional[dict]:
        """The checkpoint of ``(arm, seed)`` if ``--resume`` and it exists, after its
        integrity check (in load_checkpoint) and its consistency check against this run's
        config; CheckpointError (naming the file) if either fails."""
        path = self.ckpt_path(arm, seed)
        if not (self.resume and os.path.exists(path)):
            return None
        state = load_checkpoint(path)
        if state["arm"] != arm or state["seed"] != seed:
            raise CheckpointError(path, f"was written for arm {state['arm']!r} seed "
                                  f"{state['seed']!r}, not for arm {arm!r} seed {seed}")
        if state["signature"] != self._signature(arm):
            raise CheckpointError(path, f"was made with {state['signature']}, but this run asks "
                                  f"for {self._signature(arm)}; use another --out or drop --resume")
        epoch, history = state["epoch"], state["epochs"]
        if type(epoch) is not int or not isinstance(history, list) or [
                e.get("epoch") if isinstance(e, dict) else None for e in history] != list(
                range(1, len(history) + 1)) or epoch != len(history):
            raise CheckpointError(path, f"epoch {epoch!r} does not match its history of "
                                  f"{len(history) if isinstance(history, list) else '?'} "
                                  f"measured epoch(s)")
        if not 0 <= epoch <= self.cfg["epochs"]:
            raise CheckpointError(path, f"is at epoch {epoch}, outside this run's 0..--epochs "
                                  f"{self.cfg['epochs']}; pass --epochs {epoch} or more to "
                                  f"continue it")
        shapes = self._weight_shapes()
        model = state["model"]
        got = ({k: tuple(v.shape) if isinstance(v, torch.Tensor) else type(v).__name__
                for k, v in model.items()} if isinstance(model, dict) else type(model).__name__)
        if got != shapes:
            bad = (sorted(k for k in set(shapes) | set(got) if shapes.get(k) != got.get(k))
                   if isinstance(got, dict) else got)
            raise CheckpointError(path, f"its weights do not fit the {self.cfg['model']} "
                                  f"network (differing: {bad})")
        return state

    def _weight_shapes(self) -> dict:
        if self._shapes is None:
            with torch.device("meta"):  # shapes only, no memory
                self._shapes = {k: tuple(v.shape)
                                for k, v in build_model(self.cfg["model"]).state_dict().items()}
        return self._shapes

    def run(self, arm: str, seed: int) -> None:
        cfg, device = self.cfg, self.device
        record = {"arm": arm, "seed": seed, "epochs": []}
        self.runs.append(record)
        torch.manual_seed(seed)  # identical initial weights for every arm of this seed
        model = build_model(cfg["model"]).to(device)
        opt = torch.optim.SGD(model.parameters(), lr=cfg["lr"], momentum=cfg["momentum"],
                              weight_decay=cfg["weight_decay"])
        fb = diag = None
        extra: List[TEFeedback] = []  # te_deep: feedback on the other Linear layers too
        if cfg["arm_te"][arm] is not None:
            kw = dict(cfg["arm_te"][arm])
            layers = kw.pop("layers", None)
            fb = TEFeedback(model.te_layer, **kw, seed=seed)
            diag = TEDiagnostics(fb)
            if layers == ALL_LINEAR:
                # A hidden layer's targets are ReLU units, binarised as they are where they
                # are sources (value > source_threshold); only the classifier's targets are
                # its softmax against the paper's g.
                hidden = dict(kw, target_transform=None,
                              target_threshold=kw.get("source_threshold", 0.0))
                extra = [TEFeedback(m, **hidden, seed=seed) for m in model.classifier
                         if isinstance(m, torch.nn.Linear) and m is not model.te_layer]
        try:
            start = 0
            path = self.ckpt_path(arm, seed)
            state = self.load_verified(arm, seed)
            if state is not None:
                try:
                    model.load_state_dict(state["model"])
                    opt.load_state_dict(state["optimizer"])
                    if fb is not None:
                        fb.load_state_dict(state["te_feedback"])
                    saved = state.get("te_feedback_extra") or []
                    if len(saved) != len(extra):
                        raise ValueError(f"{len(saved)} extra TE feedback states for "
                                         f"{len(extra)} layers")
                    for f, st in zip(extra, saved):
                        f.load_state_dict(st)
                    set_rng_state(state["rng"])
                except (KeyError, TypeError, ValueError, RuntimeError, IndexError) as exc:
                    raise CheckpointError(path, f"does not fit this run's model, optimizer or "
                                          f"TE feedback ({type(exc).__name__}: "
                                          f"{_one_line(exc)})") from exc
                record["epochs"] = state["epochs"]
                start = state["epoch"]
                del state  # its tensors, while this run trains
            for epoch in range(start, cfg["epochs"]):
                loss, seconds, te_seconds, running = self._train_epoch(
                    model, opt, [f for f in [fb, *extra] if f is not None], arm, seed, epoch, diag)
                acc = self._evaluate(model, self.data.test)
                trained = ({"train_acc": self._evaluate(model, self.data.train),
                            "train_acc_running": running} if cfg.get("eval_train") else {})
                record["epochs"].append({"epoch": epoch + 1, "train_loss": loss,
                                         "test_acc": acc, **trained, "seconds": seconds,
                                         "te_seconds": te_seconds,
                                         **(diag.end_epoch() if diag is not None else {})})
                if not self.quiet:
                    self._epoch_line(record)
                save_checkpoint(path, {
                    "signature": self._signature(arm), "arm": arm, "seed": seed,
                    "epoch": epoch + 1, "epochs": record["epochs"],
                    "model": model.state_dict(), "optimizer": opt.state_dict(),
                    "te_feedback": None if fb is None else fb.state_dict(),
                    "te_feedback_extra": [f.state_dict() for f in extra],
                    "rng": rng_state()})
                self.write_results()
        except NonFiniteLoss as exc:
            record["error"] = str(exc)
            raise
        finally:
            for f in [fb, *extra]:
                if f is not None:
                    f.remove()
        if not self.quiet:
            self._report(record)

    def _train_epoch(self, model, opt, fbs, arm, seed, epoch, diag=None):
        from tqdm import tqdm

        train, device, bs = self.data.train, self.device, self.cfg["batch_size"]
        order = epoch_order(seed, epoch, len(train))
        starts = list(range(0, len(order), bs))
        if len(order) - starts[-1] < 2 and len(starts) > 1:
            starts.pop()  # a batch of one breaks BatchNorm's training statistics
        model.train()
        total, seen = 0.0, 0
        correct = torch.zeros((), dtype=torch.int64, device=device)  # no sync a step
        te0 = sum(f.seconds for f in fbs)
        if diag is not None:
            diag.start_epoch(len(starts))
        # disable=None: no bar when stderr is not a terminal (a log file would fill with
        # thousands of bar fragments).
        bar = tqdm(total=len(starts), desc=f"{arm} seed {seed} epoch {epoch + 1}/"
                   f"{self.cfg['epochs']}", leave=False, disable=True if self.quiet else None,
                   file=sys.stderr, dynamic_ncols=True)
        try:
            _sync(device)
            t0 = time.perf_counter()
            for step, s in enumerate(starts):
                xb, yb = train.batch(order[s:s + bs], device)
                where = f"{arm} seed {seed}: {{}} at epoch {epoch + 1}, step {step + 1}; " \
                        f"run stopped (lower --lr?)"
                try:
                    logits = model(xb)
                except (ValueError, RuntimeError) as exc:
                    # TEFeedback refuses NaN activations before the loss could show them.
                    if fbs and _diverged(model, xb):
                        raise NonFiniteLoss(where.format(
                            f"the forward pass is no longer finite ({exc})")) from exc
                    raise
                loss = F.cross_entropy(logits, yb)
                correct += (logits.detach().argmax(1) == yb).sum()
                value = float(loss.detach())
                if not math.isfinite(value):
                    raise NonFiniteLoss(where.format(f"loss is {value}"))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                if diag is not None:
                    diag.observe()
                total += value * len(yb)
                seen += len(yb)
                bar.update(1)
            _sync(device)
            seconds = time.perf_counter() - t0
        finally:
            bar.close()
        te_seconds = sum(f.seconds for f in fbs) - te0
        return total / seen, seconds, te_seconds, int(correct) / seen

    @torch.no_grad()
    def _evaluate(self, model, test) -> float:
        """Accuracy over a whole split in eval mode (TE feedback records nothing then)."""
        model.eval()
        correct = 0
        for s in range(0, len(test), 1000):
            xb, yb = test.batch(torch.arange(s, min(s + 1000, len(test))), self.device)
            correct += int((model(xb).argmax(1) == yb).sum())
        return correct / len(test)

    def _epoch_line(self, record: dict) -> None:
        from tqdm import tqdm

        e = record["epochs"][-1]
        te = "" if e.get("te_median") is None else (
            f", T median {e['te_median']:.2e} p99 {e['te_p99']:.2e} bits")
        tqdm.write(f"{record['arm']} seed {record['seed']} epoch {e['epoch']}/"
                   f"{self.cfg['epochs']}: train loss {e['train_loss']:.4f}, test acc "
                   f"{e['test_acc']:.4f}, {e['seconds']:.1f} s{te}", file=sys.stdout)
        sys.stdout.flush()

    def _report(self, record: dict) -> None:
        from tqdm import tqdm

        eps = record["epochs"]
        target = self.cfg["target_acc"]
        hit = next((e for e in eps if e["test_acc"] >= target), None)
        reached = ("not reached" if hit is None else
                   f"reached at epoch {hit['epoch']} "
                   f"({sum(e['seconds'] for e in eps[:hit['epoch']]):.2f} s)")
        spe = sum(e["seconds"] for e in eps) / max(len(eps), 1)
        tqdm.write(f"{record['arm']:>8} seed {record['seed']}: {len(eps)} epochs, final test "
                   f"acc {eps[-1]['test_acc']:.4f}, target {target:g} {reached}, "
                   f"{spe:.3f} s/epoch")


def _error(message) -> int:
    """The CLI's one-line error (exit status 2)."""
    text = _one_line(message) if isinstance(message, BaseException) else message
    print(f"te-train: error: {text}", file=sys.stderr)
    return EXIT_USAGE


def _prepare_out(out: str, quiet: bool) -> None:
    """Create ``out`` and ``out/checkpoints``, prove both writable (OSError if not) and
    remove the temp files that a kill during an earlier write left there."""
    for directory in (out, os.path.join(out, "checkpoints")):
        os.makedirs(directory, exist_ok=True)
        fd, probe = tempfile.mkstemp(prefix=".te-train-probe.", dir=directory)
        os.close(fd)
        os.unlink(probe)
        removed = remove_stale_temps(directory)
        if removed and not quiet:
            print(f"te-train: removed {len(removed)} unfinished temp file(s) of an interrupted "
                  f"write in {directory}", file=sys.stderr)


def _window_error(cfg: dict) -> Optional[str]:
    """Why the TE window cannot fit in memory, naming --window; None if it can. Counted
    generously as the window's unpacked series (one byte a neuron a sample), which a refresh
    with pair_fraction < 1 materialises, against half the memory available now."""
    with torch.device("meta"):
        layer = build_model(cfg["model"]).te_layer
    window, neurons = cfg["te"]["window"], layer.in_features + layer.out_features
    need, avail = window * neurons, usable_memory(cfg["device"])
    if need <= avail // 2:
        return None
    return (f"--window {window}: a window of {window} samples over the {neurons} neurons of "
            f"the {cfg['model']} network's TE layer needs about {need / 2**30:.3g} GiB, more "
            f"than half the {avail / 2**30:.3g} GiB of {cfg['device']} memory available; "
            f"use a smaller --window")


def main(argv: Optional[List[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    cfg = _config(args, parser)
    out = args.out or os.path.join("runs", cfg["dataset"])
    window_error = _window_error(cfg)
    if window_error:
        return _error(window_error)
    try:
        _prepare_out(out, args.quiet)
    except OSError as exc:
        return _error(f"--out {out}: cannot write there ({exc.strerror or _one_line(exc)}: "
                      f"{exc.filename or out})")
    try:
        data = load_dataset(cfg["dataset"], cfg["data_dir"], args.download)
    except DatasetUnavailable as exc:
        return _error(exc)
    data = limit_train(data, cfg["limit_train"])
    preset = PRESETS[cfg["model"]]
    if data.input_shape != preset.input_shape or data.num_classes != preset.num_classes:
        parser.error(f"--model {cfg['model']} takes {preset.input_shape} inputs and "
                     f"{preset.num_classes} classes, but --dataset {cfg['dataset']} has "
                     f"{data.input_shape} and {data.num_classes}")
    threads = torch.get_num_threads()
    torch.set_num_threads(cfg["threads"])
    try:
        return _run_all(cfg, data, out, args)
    finally:
        torch.set_num_threads(threads)  # main() may be called in-process (tests)


def _run_all(cfg: dict, data, out: str, args) -> int:
    runner = _Runner(cfg, data, out, args.resume, args.quiet)
    failed = []
    try:
        # Every checkpoint passes its checks before any run trains (and overwrites its own).
        for seed in cfg["seeds"]:
            for arm in cfg["arms"]:
                runner.load_verified(arm, seed)
    except ValueError as exc:
        return _error(exc)
    except KeyboardInterrupt:
        print("\nte-train: interrupted while checking the checkpoints; nothing was written",
              file=sys.stderr)
        return EXIT_INTERRUPTED
    try:
        for seed in cfg["seeds"]:
            for arm in cfg["arms"]:  # interleaved, so background load hits both arms alike
                try:
                    runner.run(arm, seed)
                except NonFiniteLoss as exc:
                    failed.append(str(exc))
                    print(f"te-train: {exc}; kept its {len(runner.runs[-1]['epochs'])} "
                          f"measured epoch(s)", file=sys.stderr)
                runner.write_results()
    except KeyboardInterrupt:
        runner.write_results(plot=True)
        print(f"\nte-train: interrupted; results so far are in {out}/results.json and the "
              f"last complete epoch of each run is checkpointed in {runner.ckpt_dir}/. "
              f"Rerun the same command with --resume to continue.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except ValueError as exc:  # a checkpoint that fails its checks, bad TE settings
        return _error(exc)
    except OSError as exc:  # a full disk, an output directory removed mid-run
        return _error(f"writing the results in {out}: {_one_line(exc)}")
    summary = runner.write_results(plot=True)
    print(summary_markdown(summary, cfg["target_acc"]))
    print(f"\nwrote {out}/results.json, {out}/results.csv, {out}/curves.png")
    if failed:
        print(f"te-train: {len(failed)} run(s) stopped on a non-finite loss:\n  "
              + "\n  ".join(failed), file=sys.stderr)
        return EXIT_NONFINITE
    return 0


if __name__ == "__main__":
    sys.exit(main())
