"""``te-matrix``: a spike recording in, a delayed-TE connectivity matrix out.

    te-matrix rec.npy --delays 1:30 --out te.npz                  # bool/0-1 [T, N]
    te-matrix spikes.npz --bin 0.001 --t0 0 --t1 600 --out te.npz  # spike_times + spike_neurons
    torchrun --nproc-per-node 4 -m te_ext.matrix rec.npy --out te.npz
    te-matrix --example                                            # planted network, AUC, PNG

The output ``.npz`` holds ``te [D, N, N]`` (entry ``[d, i, j]`` = TE(neuron i -> neuron j) in
bits at ``delays[d]``), ``delays [D]``, ``peak [N, N]`` (max over delays), ``peak_delay [N, N]``
(the delay of the peak; the first on ties) and, with ``--significance S``, ``p_value [N, N]``
of the peak at its delay. The matrix is computed in blocks of target neurons (the memory of
one block is ``D * N * block * 8`` bytes), spread over the ranks under ``torchrun``, written
to a disk-backed array and packed into a temporary ``.npz`` that is renamed over ``--out``
only when complete. Bad input: one line ``te-matrix: error: ...`` and exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import sys
import tempfile
from typing import List, Optional, Tuple

import numpy as np
import torch

import te_ext

from . import distributed as te_dist
from .delays import parse_delays

PROG = "te-matrix"
# Bytes of float64 TE per block of targets ([D, N, block]); the op's workspace is about as much.
BLOCK_BYTES = 256 << 20


class InputError(Exception):
    """Bad input or output: reported as one line and exit code 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line, not argparse's usage + error
        raise InputError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog=PROG, description="Delayed transfer entropy between all pairs of neurons "
                "of a binned spike recording.")
    p.add_argument("input", nargs="?", help=".npy bool/0-1 [T, N], or .npz with spike_times "
                   "(float) and spike_neurons (int)")
    p.add_argument("--out", help="output .npz (default: te_matrix_example.npz with --example)")
    p.add_argument("--k", type=int, default=1, help="target history length (default 1)")
    p.add_argument("--l", type=int, default=1, help="source history length (default 1)")
    p.add_argument("--delays", default="1:30", help="a scan 1:30 (inclusive), 1:30:2, a list "
                   "1,2,5, or one delay 1 (default 1:30)")
    p.add_argument("--bin", type=float, help=".npz input: bin width, in the unit of spike_times")
    p.add_argument("--t0", type=float, help=".npz input: start of the binned range (default: "
                   "the first spike)")
    p.add_argument("--t1", type=float, help=".npz input: end of the range, exclusive (default: "
                   "just past the last spike)")
    p.add_argument("--neurons", type=int, help=".npz input: number of neurons (default: the "
                   "largest spike_neurons + 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                   help="dtype of te and peak in the output (default float64)")
    p.add_argument("--block", type=int, help="target neurons per block (default: sized to "
                   f"{BLOCK_BYTES >> 20} MiB of TE per block)")
    p.add_argument("--significance", type=int, metavar="S", help="surrogates for p_value of "
                   "the peak (needs te_ext.significance)")
    p.add_argument("--seed", type=int, default=0, help="seed of --significance and --example")
    p.add_argument("--example", action="store_true", help="run on a generated network with "
                   "planted links; print ROC AUC and precision; write the matrix and a PNG")
    p.add_argument("--example-neurons", type=int, default=200)
    p.add_argument("--example-bins", type=int, default=20000)
    return p


# ----------------------------------------------------------------------------- input


def load_npy(path: str) -> np.ndarray:
    """A bool ``[T, N]`` array from a bool or 0/1 ``.npy``."""
    try:
        a = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as e:
        raise InputError(f"cannot read {path}: {e}") from None
    if a.ndim != 2:
        raise InputError(f"{path}: expected a [T, N] array of 0/1, got shape {a.shape}")
    if a.dtype == np.bool_:
        return np.array(a)  # into memory, off the memmap
    if not (np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)):
        raise InputError(f"{path}: expected bool or 0/1 numbers, got dtype {a.dtype}")
    rows = max(1, (64 << 20) // max(1, a.shape[1] * a.itemsize))
    out = np.empty(a.shape, dtype=np.bool_)
    for t in range(0, a.shape[0], rows):
        chunk = np.asarray(a[t:t + rows])
        bad = (chunk != 0) & (chunk != 1)
        if bad.any():
            t_bad, n_bad = np.argwhere(bad)[0]
            raise InputError(f"{path}: not binary: value {chunk[t_bad, n_bad].item()!r} at [{t + t_bad}, "
                             f"{n_bad}]; expected only 0 and 1")
        out[t:t + rows] = chunk != 0
    return out


def bin_spikes(times: np.ndarray, neurons: np.ndarray, *, bin: float, t0: Optional[float],
               t1: Optional[float], n: Optional[int], where: str = "input") -> np.ndarray:
    """Bool ``[T, N]``: bin ``[t0 + b*bin, t0 + (b+1)*bin)`` of neuron ``i`` is 1 if it has a
    spike there. Spikes outside ``[t0, t1)`` are dropped."""
    times = np.asarray(times)
    neurons = np.asarray(neurons)
    if times.ndim != 1 or neurons.ndim != 1 or times.shape != neurons.shape:
        raise InputError(f"{where}: spike_times and spike_neurons must be 1-d of one length, got "
                         f"{times.shape} and {neurons.shape}")
    if not np.issubdtype(times.dtype, np.number) or np.issubdtype(times.dtype, np.complexfloating):
        raise InputError(f"{where}: spike_times must be real numbers, got dtype {times.dtype}")
    if not np.issubdtype(neurons.dtype, np.integer):
        raise InputError(f"{where}: spike_neurons must be integers, got dtype {neurons.dtype}")
    times = times.astype(np.float64)
    if not np.isfinite(times).all():
        q = int(np.flatnonzero(~np.isfinite(times))[0])
        raise InputError(f"{where}: spike_times[{q}] is {times[q]}; every spike time must be finite")
    if bin is None:
        raise InputError(f"{where}: .npz spike input needs --bin (the bin width)")
    if not (bin > 0 and math.isfinite(bin)):
        raise InputError(f"--bin must be a positive number, got {bin}")
    if n is None:
        if neurons.size == 0:
            raise InputError(f"{where}: no spikes, and no --neurons to say how many neurons")
        n = int(neurons.max()) + 1
    if n < 1:
        raise InputError(f"--neurons must be >= 1, got {n}")
    if neurons.size and (neurons.min() < 0 or neurons.max() >= n):
        bad = int(neurons.min()) if neurons.min() < 0 else int(neurons.max())
        raise InputError(f"{where}: spike_neurons holds {bad}, out of range [0, {n})")
    if t0 is None:
        t0 = float(times.min()) if times.size else 0.0
    nbins = (math.floor((float(times.max()) - t0) / bin) + 1 if times.size else 0) \
        if t1 is None else math.ceil((t1 - t0) / bin)
    if t1 is None:
        t1 = t0 + nbins * bin
    if not (math.isfinite(t0) and math.isfinite(t1)) or t1 <= t0 or nbins < 1:
        raise InputError(f"empty time range [{t0}, {t1}) with --bin {bin}")
    keep = (times >= t0) & (times < t1)
    b = np.floor((times[keep] - t0) / bin).astype(np.int64)
    ok = b < nbins  # float rounding at t1
    out = np.zeros((nbins, n), dtype=np.bool_)
    out[b[ok], neurons[keep][ok]] = True
    return out


def load_series(args) -> np.ndarray:
    path = args.input
    if not os.path.isfile(path):
        raise InputError(f"no such input file: {path}")
    if path.endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                missing = [k for k in ("spike_times", "spike_neurons") if k not in z.files]
                if missing:
                    raise InputError(f"{path}: missing {', '.join(missing)} (has "
                                     f"{', '.join(z.files) or 'nothing'})")
                times, neurons = z["spike_times"], z["spike_neurons"]
        except (OSError, ValueError) as e:
            raise InputError(f"cannot read {path}: {e}") from None
        return bin_spikes(times, neurons, bin=args.bin, t0=args.t0, t1=args.t1, n=args.neurons,
                          where=path)
    if path.endswith(".npy"):
        return load_npy(path)
    raise InputError(f"input must be a .npy or .npz file, got {path}")


# ----------------------------------------------------------------------------- compute


class _Ranks:
    """torch.distributed under torchrun (WORLD_SIZE > 1), a no-op otherwise."""

    def __init__(self, device: str):
        self.world = int(os.environ.get("WORLD_SIZE", "1"))
        self.rank = 0
        self.owned = False
        if self.world > 1:
            import torch.distributed as dist
            if device == "cuda":
                torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", "0")))
            if not dist.is_initialized():
                dist.init_process_group("nccl" if device == "cuda" else "gloo")
                self.owned = True
            self.rank = dist.get_rank()

    def all_ok(self, ok: bool) -> bool:
        if self.world == 1:
            return ok
        import torch.distributed as dist
        flag = torch.tensor([1 if ok else 0])
        dist.all_reduce(flag, op=dist.ReduceOp.MIN)
        return bool(flag.item())

    def close(self):
        if self.owned:
            import torch.distributed as dist
            dist.destroy_process_group()


def _progress(total: int, enabled: bool):
    try:
        from tqdm import tqdm
    except ImportError:  # tqdm is optional: no bar
        return None
    return tqdm(total=total, desc=PROG, unit="block", disable=None if enabled else True,
                file=sys.stderr)


def block_size(n: int, d: int, requested: Optional[int]) -> int:
    if requested is not None:
        if requested < 1:
            raise InputError(f"--block must be >= 1, got {requested}")
        return min(requested, n)
    return max(1, min(n, BLOCK_BYTES // max(1, d * n * 8)))


def delay_scan(x: torch.Tensor, delays: List[int], *, k: int, l: int, te_out: np.ndarray,
               peak: np.ndarray, peak_delay: np.ndarray, block: int, ranks: _Ranks) -> None:
    """Fills ``te_out [D, N, N]``, ``peak`` and ``peak_delay`` block of targets by block."""
    n = x.shape[-1]
    dl = np.asarray(delays)
    starts = list(range(0, n, block))
    bar = _progress(len(starts), ranks.rank == 0)
    for j0 in starts:
        j1 = min(n, j0 + block)
        tgt = x[:, j0:j1]
        if ranks.world > 1:
            te = te_dist.transfer_entropy_delays(x, tgt, delays, k=k, l=l)
        else:
            te = te_ext.transfer_entropy_delays(x, tgt, delays, k=k, l=l)
        te = te.cpu().numpy()
        if te_out is not None:
            te_out[:, :, j0:j1] = te
            best = np.argmax(te, axis=0)  # the first delay on ties
            peak[:, j0:j1] = np.take_along_axis(te, best[None], axis=0)[0]
            peak_delay[:, j0:j1] = dl[best]
        if bar is not None:
            bar.update(1)
    if bar is not None:
        bar.close()


def peak_p_values(x: torch.Tensor, peak_delay: np.ndarray, *, surrogates: int, k: int, l: int,
                  seed: int) -> np.ndarray:
    """p-value of each pair's peak TE at its peak delay, from ``te_ext.significance``."""
    p = np.empty(peak_delay.shape, dtype=np.float64)
    for d in np.unique(peak_delay):
        ij = np.argwhere(peak_delay == d)
        res = te_ext.significance(x, x, surrogates=surrogates, k=k, l=l, delay=int(d),
                                  pairs=torch.from_numpy(ij).to(x.device), seed=seed)
        p[ij[:, 0], ij[:, 1]] = res.p_value.cpu().numpy()
    return p


# ----------------------------------------------------------------------------- output


def check_writable(out: str) -> str:
    out = os.path.abspath(out)
    folder = os.path.dirname(out)
    if os.path.isdir(out):
        raise InputError(f"cannot write {out}: it is a directory")
    if not os.path.isdir(folder):
        raise InputError(f"cannot write {out}: no such directory {folder}")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"cannot write {out}: directory {folder} is not writable")
    return out


class AtomicNpz:
    """The output: ``te`` in a disk-backed temporary array beside ``out``, then everything
    packed into a temporary ``.npz`` there, renamed over ``out`` by :meth:`commit`. Any exit
    before that removes the temporaries, so ``out`` is complete or untouched."""

    def __init__(self, out: str, te_shape: Tuple[int, ...], dtype):
        self.out = out
        folder = os.path.dirname(out)
        fd, self.te_path = tempfile.mkstemp(prefix=".te-matrix-", suffix=".npy", dir=folder)
        os.close(fd)
        fd, self.npz_path = tempfile.mkstemp(prefix=".te-matrix-", suffix=".npz", dir=folder)
        os.close(fd)
        self.te = np.lib.format.open_memmap(self.te_path, mode="w+", dtype=dtype, shape=te_shape)

    def commit(self, **arrays) -> None:
        self.te.flush()
        np.savez(self.npz_path, te=self.te, **arrays)  # written in chunks from the memmap
        umask = os.umask(0)
        os.umask(umask)
        os.chmod(self.npz_path, 0o666 & ~umask)  # mkstemp's 0600 is for the temporary only
        os.replace(self.npz_path, self.out)

    def discard(self) -> None:
        self.te = None
        for path in (self.te_path, self.npz_path):
            try:
                os.remove(path)
            except FileNotFoundError:
                pass


# ----------------------------------------------------------------------------- example


def example_network(n: int = 200, bins: int = 20000, *, p_link: float = 0.015,
                    rate: float = 0.02, weight: Tuple[float, float] = (0.15, 0.35),
                    max_delay: int = 5, seed: int = 0):
    """A spiking network with planted links: ``(spikes bool [bins, n], adjacency bool [n, n],
    link_delay int [n, n])``. Each neuron fires with background probability ``rate`` per bin;
    a link ``i -> j`` with delay ``d`` (1..``max_delay`` bins) and weight ``w`` makes a spike of
    ``i`` at ``t - d`` raise ``j``'s firing probability at ``t`` by ``w``
    (``p = 1 - (1 - rate) * prod(1 - w x_i[t - d])``). Links are drawn independently with
    probability ``p_link``, no self-links."""
    rng = np.random.default_rng(seed)
    adj = rng.random((n, n)) < p_link
    np.fill_diagonal(adj, False)
    link_delay = np.where(adj, rng.integers(1, max_delay + 1, size=(n, n)), 0)
    w = np.where(adj, rng.uniform(*weight, size=(n, n)), 0.0)
    log_keep = np.log1p(-w)  # log(1 - w) per link
    spikes = np.zeros((bins, n), dtype=np.bool_)
    base = np.log1p(-rate)
    noise = rng.random((bins, n))
    by_delay = [np.where(link_delay == d, log_keep, 0.0) for d in range(1, max_delay + 1)]
    for t in range(bins):
        lk = np.full(n, base)
        for d in range(1, min(max_delay, t) + 1):
            src = spikes[t - d]
            if src.any():
                lk += by_delay[d - 1][src].sum(axis=0)
        spikes[t] = noise[t] < -np.expm1(lk)
    return spikes, adj, link_delay


def roc_auc(scores: np.ndarray, labels: np.ndarray) -> float:
    """Area under the ROC curve (Mann-Whitney, ties counted half)."""
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=bool)
    npos, nneg = int(labels.sum()), int((~labels).sum())
    if npos == 0 or nneg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    s = scores[order]
    ranks = np.empty(len(s), dtype=np.float64)
    i = 0
    while i < len(s):  # average ranks over ties
        j = i
        while j + 1 < len(s) and s[j + 1] == s[i]:
            j += 1
        ranks[i:j + 1] = 0.5 * (i + j) + 1.0
        i = j + 1
    r = np.empty_like(ranks)
    r[order] = ranks
    return float((r[labels].sum() - npos * (npos + 1) / 2) / (npos * nneg))


def precision_at_true_count(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of true links among the ``#links`` highest scores."""
    labels = np.asarray(labels, dtype=bool)
    top = np.argsort(-np.asarray(scores), kind="mergesort")[:int(labels.sum())]
    return float(labels[top].mean()) if len(top) else float("nan")


def _plot_example(png: str, peak: np.ndarray, adj: np.ndarray, auc: float, prec: float) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    off = ~np.eye(len(adj), dtype=bool)
    fig, ax = plt.subplots(1, 3, figsize=(12, 3.8))
    ax[0].imshow(adj, cmap="Greys", interpolation="nearest")
    ax[0].set_title(f"planted links ({int(adj.sum())})")
    shown = np.where(off, peak, 0.0)
    im = ax[1].imshow(shown, cmap="magma", interpolation="nearest",
                      vmax=np.quantile(shown[off], 0.995))
    ax[1].set_title("peak TE over delays (bits)")
    fig.colorbar(im, ax=ax[1], fraction=0.046)
    for a in ax[:2]:
        a.set_xlabel("target j")
        a.set_ylabel("source i")
    bins = np.linspace(0, np.quantile(peak[off], 0.999), 60)
    ax[2].hist(peak[off & ~adj], bins=bins, alpha=0.6, label="no link", log=True)
    ax[2].hist(peak[off & adj], bins=bins, alpha=0.8, label="planted link", log=True)
    ax[2].set_xlabel("peak TE (bits)")
    ax[2].set_title(f"AUC {auc:.3f}, precision@{int(adj.sum())} {prec:.3f}")
    ax[2].legend()
    fig.tight_layout()
    fig.savefig(png, dpi=80)
    plt.close(fig)


def run_example(args, out: str, ranks: _Ranks) -> None:
    spikes, adj, link_delay = example_network(args.example_neurons, args.example_bins,
                                              seed=args.seed)
    n = spikes.shape[1]
    result = compute_and_write(args, spikes, out, ranks,
                               extra={"adjacency": adj, "link_delay": link_delay})
    if ranks.rank != 0:
        return
    peak, peak_delay = result
    off = ~np.eye(n, dtype=bool)
    auc = roc_auc(peak[off], adj[off])
    prec = precision_at_true_count(peak[off], adj[off])
    delay_ok = float((peak_delay[adj] == link_delay[adj]).mean()) if adj.any() else float("nan")
    png = os.path.splitext(out)[0] + ".png"
    _plot_example(png, peak, adj, auc, prec)
    print(f"{PROG} --example: {n} neurons, {spikes.shape[0]} bins, {int(adj.sum())} planted links "
          f"(delays 1-5 bins), mean rate {spikes.mean():.4f} spikes/bin, seed {args.seed}")
    print(f"peak TE over delays {args.delays}: ROC AUC {auc:.4f}, precision at "
          f"{int(adj.sum())} (the true number of links) {prec:.4f}, peak delay = planted delay "
          f"for {delay_ok:.1%} of the links")
    print(f"wrote {out} and {png}")


# ----------------------------------------------------------------------------- main


def compute_and_write(args, series: np.ndarray, out: str, ranks: _Ranks, extra=None):
    k, l = args.k, args.l
    delays = parse_delays(args.delays) if isinstance(args.delays, str) else list(args.delays)
    T, n = series.shape
    n0 = max(k, l - 1 + max(delays))
    if T <= n0:
        raise InputError(f"the recording has {T} bins, too few for k={k}, l={l} and delay "
                         f"{max(delays)} (need more than {n0})")
    x = torch.from_numpy(np.ascontiguousarray(series))
    if args.device == "cuda":
        x = x.cuda()
    dtype = np.dtype(args.dtype)
    writer = AtomicNpz(out, (len(delays), n, n), dtype) if ranks.rank == 0 else None
    try:
        peak = np.empty((n, n), dtype=dtype) if writer else None
        peak_delay = np.empty((n, n), dtype=np.int32) if writer else None
        delay_scan(x, delays, k=k, l=l, te_out=writer.te if writer else None, peak=peak,
                   peak_delay=peak_delay, block=block_size(n, len(delays), args.block),
                   ranks=ranks)
        if writer is None:
            return None
        arrays = {"delays": np.asarray(delays, dtype=np.int64), "peak": peak,
                  "peak_delay": peak_delay, "k": np.int64(k), "l": np.int64(l)}
        if args.significance is not None:
            arrays["p_value"] = peak_p_values(x, peak_delay, surrogates=args.significance, k=k,
                                              l=l, seed=args.seed)
        arrays.update(extra or {})
        writer.commit(**arrays)
        return peak, peak_delay
    finally:
        if writer is not None:
            writer.discard()


def _validate(args) -> None:
    for name in ("k", "l"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    try:
        parse_delays(args.delays)
    except ValueError as e:
        raise InputError(f"--{e}") from None
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda, but torch.cuda.is_available() is False here")
    if args.significance is not None:
        if not hasattr(te_ext, "significance"):
            raise InputError("--significance needs te_ext.significance (TE statistics), which "
                             f"this te_ext {te_ext.__version__} does not have")
        if args.significance < 1:
            raise InputError(f"--significance must be >= 1 surrogates, got {args.significance}")
    if args.example:
        if args.input is not None:
            raise InputError("--example takes no input file")
        if args.example_neurons < 2 or args.example_bins < 100:
            raise InputError("--example-neurons must be >= 2 and --example-bins >= 100")
    elif args.input is None:
        raise InputError("an input file (.npy or .npz) is required, or --example")
    elif args.out is None:
        raise InputError("--out is required")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = _parser().parse_args(argv)
        _validate(args)
    except InputError as e:
        return _fail(str(e))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    ranks = _Ranks(args.device)
    try:
        try:
            out = check_writable(args.out or "te_matrix_example.npz") if ranks.rank == 0 else None
            ok = True
        except InputError as e:
            ok, err = False, e
        if not ranks.all_ok(ok):
            return _fail(str(err)) if ranks.rank == 0 else 2
        try:
            if args.example:
                run_example(args, out, ranks)
                return 0
            series = load_series(args)
            compute_and_write(args, series, out, ranks)
        except InputError as e:
            return _fail(str(e))
        except (ValueError, TypeError) as e:  # from the ops: already names the argument
            return _fail(str(e).splitlines()[0])
        except OSError as e:
            return _fail(f"cannot write {out}: {e.strerror or e}")
        if ranks.rank == 0:
            print(f"wrote {out}", file=sys.stderr)
        return 0
    finally:
        ranks.close()


if __name__ == "__main__":
    sys.exit(main())
