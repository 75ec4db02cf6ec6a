"""``te-matrix``: a spike recording in, a delayed-TE connectivity matrix out.

    te-matrix rec.npy --delays 1:30 --out te.npz                  # bool/0-1 [T, N]
    te-matrix spikes.npz --bin 0.001 --t0 0 --t1 600 --out te.npz  # spike_times + spike_neurons
    torchrun --nproc-per-node 4 -m te_ext.matrix rec.npy --out te.npz
    te-matrix --example                                            # planted network, AUC, PNG

The output ``.npz`` holds:

- ``te [D, N, N]``: entry ``[d, i, j]`` is TE(neuron i -> neuron j) in bits at ``delays[d]``;
- ``delays [D]``;
- ``peak [N, N]``: the maximum over delays;
- ``peak_delay [N, N]``: the delay of the peak (the first on ties);
- ``signed_peak [N, N]``: the sorted local TE (Kajiwara et al. 2021) at the peak delay,
  positive for an excitatory link and negative for an inhibitory one, and ``sign [N, N]``
  (int8: +1, -1, or 0 where it is exactly 0), both from the scan's own joint counts;
- ``teci [N, N]``: the coincidence index (Ito et al. 2011): TE summed over ``--ci-window``
  delays around the peak over TE summed over all delays (NaN where all are 0), and
  ``ci_window``;
- with ``--significance S``, ``p_value [N, N]``: the peak's p-value at its delay;
- for spike-time input, ``t0``, ``t1`` and ``bin``: the range binned (also printed, with
  where it came from: the options, the file's ``t_start``/``t_stop``, or the spikes).

The matrix is computed in blocks of source neurons, spread over the ranks under
``torchrun``. Spike times (``.npz``) are binned straight into bit-packed words in one CPU
process, so the recording never exists as a ``[T, N]`` byte array. It is written through temporaries beside the output, which only a complete
result replaces (see :mod:`te_ext.recordings.io`). A signal (SIGINT, SIGTERM, SIGHUP) or a
failure removes the temporaries.

Every error is one line, ``te-matrix: error: ...``, with exit code 2.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from typing import List, Optional

import numpy as np
import torch

from .. import _prepare
from ..delays import parse_delays
from .example import (example_network, found_links, precision_at_true_count, roc_auc,
                      sign_accuracy)
from .io import (InputError, PackedRecording, SafeOutput, check_fits_disk, check_fits_memory,
                 check_output, load_series)
from .scan import BLOCK_BYTES, PackedSeries, Ranks, block_size, delay_scan, peak_p_values

PROG = "te-matrix"
MAX_EXAMPLE_NEURONS = 20_000  # its n x n link matrices live in memory


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
    p.add_argument("--bin", type=float, help=".npz input: bin width, in the unit of spike_times (default 1 for integer "
                        "spike_times, which are then bin indices; required otherwise)")
    p.add_argument("--t0", type=float, help=".npz input: start of the binned range (default: "
                   "the file's t_start, else the first spike)")
    p.add_argument("--t1", type=float, help=".npz input: end of the range, exclusive (default: "
                   "the file's t_stop, else just past the last spike)")
    p.add_argument("--neurons", type=int, help=".npz input: number of neurons (default: the "
                   "largest spike_neurons + 1)")
    p.add_argument("--device", default="cpu", choices=["cpu", "cuda"])
    p.add_argument("--threads", type=int, help="CPU threads (torch.set_num_threads)")
    p.add_argument("--dtype", default="float64", choices=["float32", "float64"],
                   help="dtype of te and peak in the output (default float64)")
    p.add_argument("--block", type=int, help="source neurons per block (default: sized to "
                   f"{BLOCK_BYTES >> 20} MiB of TE and sign per block)")
    p.add_argument("--significance", type=int, metavar="S", help="surrogates for p_value of "
                   "the peak")
    p.add_argument("--ci-window", type=int, default=5, metavar="W",
                   help="delays summed around the peak for the coincidence index teci (odd, "
                        "default 5, as the Transfer Entropy Toolbox's ASDFTE)")
    p.add_argument("--seed", type=int, default=0, help="seed of --significance and --example")
    p.add_argument("--example", action="store_true", help="run on a generated network with "
                   "planted links; print ROC AUC and precision; write the matrix and a PNG")
    p.add_argument("--example-neurons", type=int, default=200)
    p.add_argument("--example-bins", type=int, default=20000)
    return p


def _validate(args) -> None:
    for name in ("k", "l"):
        if getattr(args, name) < 1:
            raise InputError(f"--{name} must be >= 1, got {getattr(args, name)}")
    try:
        parse_delays(args.delays)
    except ValueError as e:
        raise InputError(f"--{e}") from None
    for name in ("bin", "t0", "t1"):
        v = getattr(args, name)
        if v is not None and not math.isfinite(v):
            raise InputError(f"--{name} must be a finite number, got {v}")
    if args.neurons is not None and args.neurons < 1:
        raise InputError(f"--neurons must be >= 1, got {args.neurons}")
    if args.ci_window < 1 or args.ci_window % 2 == 0:
        raise InputError(f"--ci-window must be an odd number >= 1, got {args.ci_window}")
    if args.block is not None and args.block < 1:
        raise InputError(f"--block must be >= 1, got {args.block}")
    if args.threads is not None and args.threads < 1:
        raise InputError(f"--threads must be >= 1, got {args.threads}")
    if args.device == "cuda" and not torch.cuda.is_available():
        raise InputError("--device cuda, but torch.cuda.is_available() is False here")
    if args.significance is not None and args.significance < 1:
        raise InputError(f"--significance must be >= 1 surrogates, got {args.significance}")
    if args.example:
        if args.input is not None:
            raise InputError("--example takes no input file")
        if not 2 <= args.example_neurons <= MAX_EXAMPLE_NEURONS or args.example_bins < 100:
            raise InputError(f"--example-neurons must be in [2, {MAX_EXAMPLE_NEURONS}] and "
                             f"--example-bins >= 100")
        check_fits_memory(args.example_bins * args.example_neurons
                          + 6 * args.example_neurons ** 2 * 8, "--example's network")
    elif args.input is None:
        raise InputError("an input file (.npy or .npz) is required, or --example")
    elif args.out is None:
        raise InputError("--out is required")


def compute_and_write(args, series: np.ndarray, out: str, ranks: Ranks, extra=None):
    k, l = args.k, args.l
    T, n = series.shape
    try:  # each delay checked against T as it is read: a huge range stops at once
        delays = _prepare.delays(parse_delays(args.delays), longest=T, l=l, op="te-matrix")
    except ValueError as e:
        raise InputError(str(e).replace("te.te-matrix: ", "--")) from None
    n0 = max(k, l - 1 + max(delays))
    if T <= n0:
        raise InputError(f"the recording has {T} bins, too few for k={k}, l={l} and delay "
                         f"{max(delays)} (need more than {n0})")
    dtype = np.dtype(args.dtype)
    D = len(delays)
    te_bytes = D * n * n * dtype.itemsize
    if ranks.rank == 0:  # the te temporary, its copy in the .npz, and the rest
        check_fits_disk(out, 2 * te_bytes + n * n * (dtype.itemsize + 4 + 8) + (1 << 20))
    block = block_size(n, D, args.block)
    packed = isinstance(series, PackedRecording)
    # the words are read in place; a raster is packed by the op (its copy, 1/8 the size)
    raster = series.words.nbytes if packed else T * n * 2
    check_fits_memory(raster + 4 * D * block * n * 8, f"the scan (T={T}, N={n}, D={D}, "
                                                         f"block={block})")
    if packed:
        x = PackedSeries(torch.from_numpy(series.words), T)
    else:
        x = torch.from_numpy(np.ascontiguousarray(series))
        if args.device == "cuda":
            x = x.cuda()
    writer = SafeOutput(out, (D, n, n), dtype) if ranks.rank == 0 else None
    try:
        peak = np.empty((n, n), dtype=dtype) if writer else None
        peak_delay = np.empty((n, n), dtype=np.int32) if writer else None
        signed = np.empty((n, n), dtype=np.float64) if writer else None
        teci = np.empty((n, n), dtype=np.float64) if writer else None
        delay_scan(x, delays, k=k, l=l, block=block, ranks=ranks,
                   write_rows=writer.write_rows if writer else None, peak=peak,
                   peak_delay=peak_delay, signed_peak=signed, teci=teci,
                   ci_window=args.ci_window)
        if writer is None:
            return None
        arrays = {"delays": np.asarray(delays, dtype=np.int64), "peak": peak,
                  "peak_delay": peak_delay, "signed_peak": signed.astype(dtype),
                  "sign": np.sign(signed).astype(np.int8), "teci": teci.astype(dtype),
                  "ci_window": np.int64(args.ci_window), "k": np.int64(k), "l": np.int64(l)}
        if args.significance is not None:
            dense = torch.from_numpy(series.dense()) if packed else x  # significance reads [T, N]
            arrays["p_value"] = peak_p_values(dense, peak_delay, surrogates=args.significance, k=k,
                                              l=l, seed=args.seed)
        arrays.update(extra or {})
        writer.commit(**arrays)
        return peak, peak_delay, signed
    finally:
        if writer is not None:
            writer.discard()


def run_example(args, out: str, ranks: Ranks) -> None:
    spikes, adj, link_delay, link_sign = example_network(args.example_neurons, args.example_bins,
                                                         seed=args.seed)
    n = spikes.shape[1]
    result = compute_and_write(args, spikes, out, ranks,
                               extra={"adjacency": adj, "link_delay": link_delay,
                                      "link_sign": link_sign})
    if ranks.rank != 0:
        return
    peak, peak_delay, signed = result
    off = ~np.eye(n, dtype=bool)
    auc = roc_auc(peak[off], adj[off])
    prec = precision_at_true_count(peak[off], adj[off])
    delay_ok = float((peak_delay[adj] == link_delay[adj]).mean()) if adj.any() else float("nan")
    found = found_links(peak, adj)  # the planted links among the #links highest peaks
    sign_ok = sign_accuracy(signed, link_sign, found)
    png = os.path.splitext(out)[0] + ".png"
    from .example import plot_example
    plot_example(png, peak, signed, peak_delay, adj, link_sign, link_delay, auc, prec)
    print(f"{PROG} --example: {n} neurons, {spikes.shape[0]} bins, {int(adj.sum())} planted links "
          f"(delays 1-5 bins), mean rate {spikes.mean():.4f} spikes/bin, seed {args.seed}")
    print(f"peak TE over delays {args.delays}: ROC AUC {auc:.4f}, precision at "
          f"{int(adj.sum())} (the true number of links) {prec:.4f}, peak delay = planted delay "
          f"for {delay_ok:.1%} of the links")
    exc, inh = link_sign > 0, link_sign < 0
    print(f"sign (sorted local TE at the peak delay) right for {sign_ok:.1%} of the "
          f"{int(found.sum())} planted links found ({int((link_sign[found] < 0).sum())} of "
          f"them inhibitory); over all planted links: {sign_accuracy(signed, link_sign, exc):.1%} "
          f"of {int(exc.sum())} excitatory, {sign_accuracy(signed, link_sign, inh):.1%} of "
          f"{int(inh.sum())} inhibitory")
    print(f"wrote {out} and {png}")


def _fail(message: str) -> int:
    print(f"{PROG}: error: {message}", file=sys.stderr)
    return 2


class _Stopped(BaseException):
    """A signal asked the run to stop: unwinds through every ``finally`` (the temporaries)."""

    def __init__(self, signum: int):
        super().__init__(signum)
        self.signum = signum


def _stop(signum, frame):
    raise _Stopped(signum)


_SIGNALS = [s for s in ("SIGINT", "SIGTERM", "SIGHUP") if hasattr(signal, s)]


def main(argv: Optional[List[str]] = None) -> int:
    try:
        args = _parser().parse_args(argv)
        _validate(args)
    except InputError as e:
        return _fail(str(e))
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    previous = {}
    try:  # a signal unwinds through the finally blocks, which remove the temporaries
        for name in _SIGNALS:
            previous[name] = signal.signal(getattr(signal, name), _stop)
        if hasattr(signal, "SIGXFSZ"):  # over a file-size limit: an OSError, not a kill
            previous["SIGXFSZ"] = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    except ValueError:  # not the main thread: leave signals alone
        previous = {}
    try:
        return _run(args)
    except _Stopped as s:
        print(f"{PROG}: stopped by signal {s.signum}; no output written", file=sys.stderr)
        return 128 + s.signum
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def _run(args) -> int:
    ranks = Ranks(args.device)
    out = None
    try:
        try:
            out = (check_output(args.out if args.out is not None else "te_matrix_example.npz",
                                (args.input,)) if ranks.rank == 0 else None)
            ok = True
        except InputError as e:
            ok, err = False, e
        if not ranks.all_ok(ok):
            return _fail(str(err)) if ranks.rank == 0 else 2
        try:
            if args.example:
                run_example(args, out, ranks)
                return 0
            # Spike times are binned into packed words where the scan reads them (one CPU
            # process); a dense raster elsewhere.
            bounds: dict = {}
            series = load_series(args.input, bin=args.bin, t0=args.t0, t1=args.t1,
                                 neurons=args.neurons,
                                 packed=args.device == "cpu" and ranks.world == 1, bounds=bounds)
            extra = None
            if bounds:  # spike times: keep the range binned with the result, and say it
                t1 = bounds["t0"] + bounds["bins"] * bounds["bin"]
                extra = {"t0": np.float64(bounds["t0"]), "t1": np.float64(t1),
                         "bin": np.float64(bounds["bin"])}
            compute_and_write(args, series, out, ranks, extra)
            if bounds and ranks.rank == 0:
                print(f"{PROG}: binned [{bounds['t0']:.15g}, {t1:.15g}) into {bounds['bins']} "
                      f"bins of {bounds['bin']:.15g} ({bounds['range_from']})", file=sys.stderr)
        except InputError as e:
            return _fail(str(e))
        except MemoryError:
            return _fail("out of memory; use a shorter range, fewer neurons or fewer delays")
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
