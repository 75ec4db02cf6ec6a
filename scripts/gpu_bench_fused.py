#!/usr/bin/env python
"""GPU measurements for the fused Triton kernel, and the heuristic table they decide.

Run on a machine with a CUDA GPU, from the repository root, after building te_ext
(``FORCE_CUDA=1 python setup.py build_ext --inplace``)::

    PYTHONPATH=$PWD python scripts/gpu_bench_fused.py            # about 5 minutes (estimated)
    PYTHONPATH=$PWD python scripts/gpu_bench_fused.py --quick    # fewer repetitions, k = l = 1 only

Most of the time is Triton compiling: one kernel per (k, l, counts or TE, threshold or not),
nine of them for the exactness check.

1. Checks the fused kernel against the CPU op on this GPU (counts bit for bit, TE to 1e-12;
   k, l in {1, 2}, delays 1..3, replicates, a threshold) before timing anything.
2. Times, at k = l = 1 with bool inputs, with CUDA events (median of --reps calls after
   warm-up): ``te_ext`` (the C++ CUDA path: popcount kernel or its unpacked int8 GEMM),
   ``fused`` (the Triton kernel), ``torch._int_mm`` of int8 ``[I x T] @ [T x 3J]`` (operands
   prepared outside the timing), the bf16 matmul of the same shape, and the plain-PyTorch TE
   (three fp32 GEMMs of the one-hot series, then float64 elementwise), at 256^2 T=4096,
   1024^2 T=1024, 1024^2 T=4096, 4096^2 T=4096 and 8192^2 T=8192; and te_ext vs fused for
   (k, l) = (2, 1), (1, 2), (2, 2) at 1024^2 and 4096^2, T=4096.
3. Peak extra memory (``torch.cuda.max_memory_allocated`` above what the inputs hold) of
   te_ext and fused at 4096^2 T=8192, against the output's size.
4. Times the fused kernel at k = l = 1 for each tile shape in ``TILE_CANDIDATES`` (those
   ptxas compiles without spills, ``scripts/triton_static_report.py``) at 1024^2 and 4096^2,
   T=4096, and keeps the fastest over both.
5. The split-K sweep at the small shapes (256^2 and 1024^2): the fused kernel with the
   observations split as ``kernels.split_count`` decides, and forced to each of
   ``SPLIT_CANDIDATES``; and each call's cost when calls are issued back to back with no
   synchronisation (``throughput``: the larger of the host's launch cost and the GPU time),
   next to ``torch._int_mm``'s. This is what tells whether the split rule, a reasoned default,
   is right on this GPU.
6. Writes ``bench/results/gpu-heuristic-<date>.json`` (every measurement, the chosen tiles, and
   the rules ``te_ext/_triton/heuristic.py`` reads: for each (k, l), the fused kernel from the
   smallest measured I*J from which it won at every larger measured size) and prints a
   markdown table.

To ship a recorded table in the package (so installed wheels on that GPU model use it)::

    python scripts/gpu_bench_fused.py --install-from bench/results/gpu-heuristic-<date>.json

which needs no GPU and writes ``te_ext/_triton/tables/gpu-heuristic-<model>.json``.

``--dry-run`` (with ``TRITON_INTERPRET=1``, no GPU): every step above at tiny shapes on the CPU
under Triton's interpreter; ``gpu_check.sh --dry-run --fused`` runs it in CI. The record is
rewritten after every step, so a run cut off at its time limit keeps what it measured.
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import te_ext  # noqa: E402
from te_ext._triton import dispatch, heuristic  # noqa: E402

SHAPES = [(256, 4096), (1024, 1024), (1024, 4096), (4096, 4096), (8192, 8192)]
OTHER_KL = [(2, 1), (1, 2), (2, 2)]
OTHER_SHAPES = [(1024, 4096), (4096, 4096)]
MEMORY_SHAPE = (4096, 8192)
# BLOCK_I, BLOCK_J, BLOCK_K, num_warps for k = l = 1, from ptxas's spills for sm_90
# (scripts/triton_static_report.py): the default (48 B), the spill-free one, a longer K step
# (68 B), the first default (3.2 KB), to see what spills cost, and the sm_80 default (32-row
# blocks: spill-free with 146 registers, but mma.sync instead of wgmma on sm_90).
TILE_CANDIDATES = [(64, 64, 64, 8), (64, 32, 64, 8), (64, 64, 128, 8), (128, 64, 64, 8),
                   (32, 64, 64, 8)]
QUICK_TILE_CANDIDATES = [TILE_CANDIDATES[i] for i in (0, 1, 4)]
COUNTS_MAX_BYTES = 2 << 30  # joint_counts timed where its output is at most 2 GiB
TILE_SHAPES = [(1024, 4096), (4096, 4096)]
SPLIT_SHAPES = [(256, 4096), (1024, 1024), (1024, 4096)]
SPLIT_CANDIDATES = [1, 2, 4, 8, 16]
DEVICE = "cuda"  # "cpu" with --dry-run


def dry_run_sizes():
    """--dry-run: the same steps at shapes the Triton interpreter runs in seconds."""
    global SHAPES, OTHER_KL, OTHER_SHAPES, MEMORY_SHAPE, TILE_SHAPES, SPLIT_SHAPES
    global TILE_CANDIDATES, QUICK_TILE_CANDIDATES, SPLIT_CANDIDATES, DEVICE
    DEVICE = "cpu"
    SHAPES = [(48, 256), (64, 512)]
    OTHER_KL, OTHER_SHAPES = [(2, 1)], [(48, 256)]
    MEMORY_SHAPE = (48, 256)
    TILE_SHAPES = [(64, 512)]
    SPLIT_SHAPES = [(48, 512)]
    TILE_CANDIDATES = QUICK_TILE_CANDIDATES = [(64, 64, 64, 1), (32, 32, 64, 1)]
    SPLIT_CANDIDATES = [1, 2]


def synchronize():
    if DEVICE == "cuda":
        torch.cuda.synchronize()


def series(I, T, seed=0, device=None):
    device = device or DEVICE
    g = torch.Generator(device=device).manual_seed(seed)
    x = torch.rand(T, I, device=device, generator=g) < 0.5
    noise = torch.rand(T, I, device=device, generator=g) < 0.1
    return x, torch.roll(x, 1, 0) ^ noise


def time_ms(fn, reps, warmup=3):
    import time

    for _ in range(warmup if DEVICE == "cuda" else 1):
        fn()
    synchronize()
    times = []
    for _ in range(reps):
        if DEVICE != "cuda":
            t0 = time.perf_counter()
            fn()
            times.append((time.perf_counter() - t0) * 1e3)
            continue
        start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
        start.record()
        fn()
        end.record()
        end.synchronize()
        times.append(start.elapsed_time(end))
    return statistics.median(times)


def throughput_ms(fn, calls=50, warmup=3):
    """Per call, ``calls`` calls issued back to back, synchronised once: max(host, GPU) cost."""
    import time

    calls = calls if DEVICE == "cuda" else 2
    for _ in range(warmup if DEVICE == "cuda" else 1):
        fn()
    synchronize()
    start = time.perf_counter()
    for _ in range(calls):
        fn()
    synchronize()
    return (time.perf_counter() - start) * 1e3 / calls


class env_set:
    """Environment variables set inside (None: unset), restored after."""

    def __init__(self, **values):
        self.values, self.saved = values, {}

    def __enter__(self):
        for key, value in self.values.items():
            self.saved[key] = os.environ.get(key)
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = str(value)

    def __exit__(self, *exc):
        for key, value in self.saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def sweep_splits(reps, tiles):
    """Fused TE at the small shapes: the rule's split, each forced split, and throughput."""
    from te_ext._triton import kernels

    rows = []
    for I, T in SPLIT_SHAPES:
        x, y = series(I, T)
        t = kernels.Tiles(*tiles)
        programs = -(-I // t.block_i) * -(-I // t.block_j)
        row = {"I": I, "T": T, "programs": programs,
               "rule_split": kernels.split_count(programs, T - 1, t.block_k, x.device)}
        if DEVICE != "cuda":  # the interpreter: a forced split is the only one it takes
            row["rule_split"] = 1
        a, b, _, _ = gemm_operands(x, y)
        row["int_mm_ms"] = time_ms(lambda: torch._int_mm(a, b.T), reps)
        row["int_mm_throughput_ms"] = throughput_ms(lambda: torch._int_mm(a, b.T))
        del a, b
        with tiles_env(tiles), env_set(TE_EXT_TRITON_SPLIT=None):
            fn = lambda: dispatch.run("transfer_entropy", x, y)  # noqa: E731
            row["rule_ms"] = time_ms(fn, reps)
            row["rule_throughput_ms"] = throughput_ms(fn)
        for split in SPLIT_CANDIDATES:
            with tiles_env(tiles), env_set(TE_EXT_TRITON_SPLIT=split):
                row[f"split_{split}_ms"] = time_ms(lambda: dispatch.run("transfer_entropy", x, y), reps)
        rows.append(row)
        del x, y
        empty_cache()
    return rows


def empty_cache():
    if DEVICE == "cuda":
        torch.cuda.empty_cache()


def plain_pytorch_te(x, y):
    """k = l = 1, delay 1, as a user writes it: three fp32 GEMMs, float64 elementwise."""
    xp, yp, yn = x[:-1].float(), y[:-1].float(), y[1:].float()
    n = xp.shape[0]
    both = yn * yp
    c111 = (xp.T @ both).double()          # N(x=1, ynext=1, ypast=1)
    c1_p = (xp.T @ yp).double()            # N(x=1, ypast=1)
    c1n_ = (xp.T @ yn).double()            # N(x=1, ynext=1)
    nx = xp.sum(0).double()[:, None]
    nyp, nyn, nb = yp.sum(0).double()[None], yn.sum(0).double()[None], both.sum(0).double()[None]
    c = {(1, 1, 1): c111, (1, 0, 1): c1_p - c111, (1, 1, 0): c1n_ - c111,
         (1, 0, 0): nx - c1_p - c1n_ + c111}  # (x, ynext, ypast)
    c[(0, 1, 1)] = nb - c111
    c[(0, 0, 1)] = (nyp - nb) - c[(1, 0, 1)]
    c[(0, 1, 0)] = (nyn - nb) - c[(1, 1, 0)]
    c[(0, 0, 0)] = n - nx - nyp - nyn + nb + c1_p + c1n_ - c111

    def f(v):
        return torch.special.xlogy(v, v) / math.log(2.0)

    total = sum(f(v) for v in c.values())
    for yp_ in (0, 1):
        total = total + f(sum(c[(x_, yn_, yp_)] for x_ in (0, 1) for yn_ in (0, 1)))
        for x_ in (0, 1):
            total = total - f(c[(x_, 0, yp_)] + c[(x_, 1, yp_)])
        for yn_ in (0, 1):
            total = total - f(c[(0, yn_, yp_)] + c[(1, yn_, yp_)])
    return (total / n).clamp_min(0.0)


def check_exactness():
    for split in (None, 3):  # the rule's split (2 at these shapes on an H100), and a forced one
        with env_set(TE_EXT_TRITON_SPLIT=split):
            _check_exactness()


def _check_exactness():
    cases = [(k, l, d) for k in (1, 2) for l in (1, 2) for d in (1, 2, 3)]
    if DEVICE != "cuda":
        cases = cases[::5]
    for i, (k, l, d) in enumerate(cases):
        g = torch.Generator().manual_seed(i)
        R = 2 if i % 3 == 0 else None
        shape = ((R, 700, 150) if R else (1500, 150)) if DEVICE == "cuda" else ((R, 90, 20) if R else (150, 20))
        x = torch.rand(*shape, generator=g) < 0.5
        J = shape[-1] * 3 // 5
        y = torch.roll(x, d, -2)[..., :J] ^ (torch.rand(*shape[:-1], J, generator=g) < 0.2)
        kw = dict(k=k, l=l, delay=d)
        counts = dispatch.run("joint_counts", x.to(DEVICE), y.to(DEVICE), **kw)
        te = dispatch.run("transfer_entropy", x.to(DEVICE), y.to(DEVICE), **kw)
        assert torch.equal(counts.cpu(), te_ext.joint_counts(x, y, **kw)), (k, l, d)
        torch.testing.assert_close(te.cpu(), te_ext.transfer_entropy(x, y, **kw), rtol=0, atol=1e-12)
    xf, yf = torch.randn(800, 70), torch.randn(800, 50)
    te = dispatch.run("transfer_entropy", xf.to(DEVICE), yf.to(DEVICE), threshold=0.1)
    torch.testing.assert_close(te.cpu(), te_ext.transfer_entropy(xf, yf, threshold=0.1), rtol=0, atol=1e-12)
    # The plain-PyTorch baseline computes the same TE (so its time is a fair comparison).
    x, y = series(*((256, 4096) if DEVICE == "cuda" else (32, 256)))
    torch.testing.assert_close(plain_pytorch_te(x, y), torch.ops.te.transfer_entropy(x, y, 1, 1, 1, None),
                               rtol=0, atol=1e-9)
    print(f"exactness: fused == CPU op in {len(cases) + 1} cases; plain-PyTorch baseline agrees")


def gemm_operands(x, y):
    """int8 and bf16 operands of the count GEMM [I x T'] @ [T' x 3J], K padded to 8."""
    T = x.shape[0] - 1
    K = (T + 7) // 8 * 8
    a = torch.zeros(x.shape[1], K, dtype=torch.int8, device=x.device)
    a[:, :T] = x[:-1].T.to(torch.int8)
    yp, yn = y[:-1].T.to(torch.int8), y[1:].T.to(torch.int8)
    b = torch.zeros(3 * y.shape[1], K, dtype=torch.int8, device=x.device)
    b[:, :T] = torch.cat([yn * yp, yp, yn])
    return a, b, a.to(torch.bfloat16), b.T.to(torch.bfloat16).contiguous()


def tiles_env(tiles):
    """TE_EXT_TRITON_TILES set to ``tiles`` (BLOCK_I, BLOCK_J, BLOCK_K, num_warps) inside."""
    return env_set(TE_EXT_TRITON_TILES=",".join(map(str, tiles)) if tiles else None)


def measure(I, T, k, l, reps, baselines, tiles=None):
    x, y = series(I, T)
    row = {"I": I, "J": I, "T": T, "k": k, "l": l, "nobs": T - max(k, l)}
    row["te_ext_ms"] = time_ms(lambda: torch.ops.te.transfer_entropy(x, y, k, l, 1, None), reps)
    with tiles_env(tiles):
        row["fused_ms"] = time_ms(lambda: dispatch.run("transfer_entropy", x, y, k, l, 1), reps)
    if I * I * (8 << (k + l + 1)) <= COUNTS_MAX_BYTES:  # joint_counts: [I, J, bins] int64 out
        row["te_ext_counts_ms"] = time_ms(lambda: torch.ops.te.joint_counts(x, y, k, l, 1, None), reps)
        with tiles_env(tiles):
            row["fused_counts_ms"] = time_ms(lambda: dispatch.run("joint_counts", x, y, k, l, 1), reps)
        empty_cache()
    if baselines:
        a, b, ab, bb = gemm_operands(x, y)
        row["int_mm_ms"] = time_ms(lambda: torch._int_mm(a, b.T), reps)
        row["bf16_ms"] = time_ms(lambda: ab @ bb, reps)
        row["plain_pytorch_ms"] = time_ms(lambda: plain_pytorch_te(x, y), max(3, reps // 3))
        del a, b, ab, bb
    del x, y
    empty_cache()
    return row


def peak_memory(I, T, tiles):
    x, y = series(I, T)
    out_bytes = I * I * 8
    result = {"I": I, "J": I, "T": T, "output_bytes": out_bytes}
    if DEVICE != "cuda":
        return dict(result, skipped="peak memory is measured with CUDA's allocator statistics")
    for name, fn in [("te_ext", lambda: torch.ops.te.transfer_entropy(x, y, 1, 1, 1, None)),
                     ("fused", lambda: dispatch.run("transfer_entropy", x, y))]:
        with tiles_env(tiles if name == "fused" else None):
            fn()  # compile / warm up outside the measurement
            torch.cuda.synchronize()
            torch.cuda.empty_cache()
            base = torch.cuda.memory_allocated()
            torch.cuda.reset_peak_memory_stats()
            out = fn()
            torch.cuda.synchronize()
        extra = torch.cuda.max_memory_allocated() - base
        result[f"{name}_peak_extra_bytes"] = extra
        result[f"{name}_peak_over_output"] = extra / out_bytes
        del out
    from te_ext._triton import ops

    # The f(c) table is built once per device and stream and kept (not per call): its size.
    result["fused_table_bytes"] = max((t.numel() * 8 for t in ops._TABLES.values()), default=0)
    return result


def sweep_tiles(reps, quick):
    """Fused-kernel time per candidate tile shape at k = l = 1; the fastest in total wins."""
    rows = []
    for tiles in QUICK_TILE_CANDIDATES if quick else TILE_CANDIDATES:
        try:
            with tiles_env(tiles):
                row = {"tiles": list(tiles)}
                for I, T in TILE_SHAPES[-1:] if quick else TILE_SHAPES:
                    x, y = series(I, T)
                    row[f"{I}_{T}_ms"] = time_ms(lambda: dispatch.run("transfer_entropy", x, y), reps)
                    del x, y
            rows.append(row)
        except Exception as e:  # a shape this GPU cannot run (shared memory): recorded, skipped
            rows.append({"tiles": list(tiles), "error": f"{type(e).__name__}: {e}"[:300]})
    timed = [r for r in rows if "error" not in r]
    best = min(timed, key=lambda r: sum(v for key, v in r.items() if key.endswith("_ms")))
    b = best["tiles"]
    chosen = [{"k": 1, "l": 1, "block_i": b[0], "block_j": b[1], "block_k": b[2], "num_warps": b[3]}]
    return rows, chosen


def install(record: Path) -> Path:
    """Copy a recorded table's device, rules and tiles into the package (no GPU needed)."""
    table = json.loads(record.read_text())
    for key in ("device", "fused"):
        if key not in table:
            sys.exit(f"gpu_bench_fused.py: {record} has no '{key}'; not a gpu-heuristic record")
    shipped = {key: table[key] for key in ("schema", "date", "device", "torch", "triton", "rule",
                                           "fused", "tiles") if key in table}
    shipped["measured_in"] = f"bench/results/{record.name}"
    out = heuristic.PACKAGED / f"gpu-heuristic-{heuristic.table_slug(table['device'])}.json"
    out.write_text(json.dumps(shipped, indent=2) + "\n")
    return out


def rules(rows, op="transfer_entropy"):
    """Per (k, l): the fused kernel from the smallest measured I*J from which it won at every
    larger measured size (``op``: which pair of timings, TE's or the joint counts')."""
    ours, theirs = ("fused_ms", "te_ext_ms") if op == "transfer_entropy" else \
        ("fused_counts_ms", "te_ext_counts_ms")
    out = []
    rows = [r for r in rows if ours in r and theirs in r]
    for k, l in sorted({(r["k"], r["l"]) for r in rows}):
        rs = sorted((r for r in rows if (r["k"], r["l"]) == (k, l)), key=lambda r: (r["I"] * r["J"], r["nobs"]))
        start = None
        for idx in range(len(rs) - 1, -1, -1):
            if rs[idx][ours] < rs[idx][theirs]:
                start = idx
            else:
                break
        if start is not None:
            won = rs[start:]
            rule = {"k": k, "l": l, "min_pairs": won[0]["I"] * won[0]["J"],
                    "min_obs": min(r["nobs"] for r in won)}
            if op != "transfer_entropy":
                rule["op"] = op
            out.append(rule)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--quick", action="store_true",
                    help="5 timed calls per point instead of 15, and only k = l = 1")
    ap.add_argument("--dry-run", action="store_true",
                    help="no GPU: every step at tiny shapes under TRITON_INTERPRET=1 on the CPU")
    ap.add_argument("--no-check", action="store_true", help="skip the exactness check")
    ap.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    ap.add_argument("--install-from", metavar="RECORD",
                    help="no measuring: ship this recorded gpu-heuristic JSON in the package")
    args = ap.parse_args()
    if args.install_from:
        print(f"wrote {install(Path(args.install_from))}")
        return
    if args.dry_run:
        if os.environ.get("TRITON_INTERPRET") != "1":
            sys.exit("gpu_bench_fused.py: --dry-run needs TRITON_INTERPRET=1 in the environment "
                     "(triton reads it when it is imported)")
        dry_run_sizes()
        args.quick = True
    elif not torch.cuda.is_available():
        sys.exit("gpu_bench_fused.py: no CUDA device; nothing measured (--dry-run runs the logic on the CPU)")
    if dispatch.ops() is None:
        sys.exit(f"gpu_bench_fused.py: the fused kernel is unavailable: {dispatch.unavailable_reason()}")
    os.environ.pop("TE_EXT_TRITON_TILES", None)
    os.environ.pop("TE_EXT_TRITON_SPLIT", None)
    reps = 2 if args.dry_run else 5 if args.quick else 15
    now = datetime.datetime.now(datetime.timezone.utc)
    import triton

    table = {
        "schema": 1,
        "date": now.isoformat(timespec="seconds"),
        "device": torch.cuda.get_device_name() if DEVICE == "cuda" else "cpu (dry run, Triton interpreter)",
        "torch": torch.__version__,
        "triton": triton.__version__,
        "reps": reps,
        "rule": "fused for (k, l) when I*J >= min_pairs and R*(T-n0) >= min_obs",
        "fused": [],
    }
    out = Path(args.out_dir) / f"gpu-heuristic-{now.strftime('%Y-%m-%d_%H%M%S')}.json"
    out.parent.mkdir(parents=True, exist_ok=True)

    def save(**fields):  # the record after every step: a run cut short keeps what it measured
        table.update(fields)
        out.write_text(json.dumps(table, indent=2) + "\n")
        print(f"[{datetime.datetime.now(datetime.timezone.utc):%H:%M:%S}] recorded: {', '.join(fields)}", flush=True)

    if not args.no_check:
        check_exactness()
        save(exactness="fused == CPU op (counts bit for bit, TE to 1e-12)")
    tile_rows, tiles = sweep_tiles(reps, args.quick)
    save(tiles=tiles, tile_sweep=tile_rows)
    best = [tiles[0][key] for key in ("block_i", "block_j", "block_k", "num_warps")]
    rows = []
    for I, T in SHAPES:
        rows.append(measure(I, T, 1, 1, reps, True, best))
        save(measurements=rows, fused=rules(rows) + rules(rows, "joint_counts"))
    if not args.quick or args.dry_run:
        for k, l in OTHER_KL:
            for I, T in OTHER_SHAPES:
                rows.append(measure(I, T, k, l, reps, False))
                save(measurements=rows, fused=rules(rows) + rules(rows, "joint_counts"))
    split_rows = sweep_splits(reps, best)
    save(split_sweep=split_rows)
    memory = peak_memory(*MEMORY_SHAPE, best)
    save(memory=memory)

    print(f"\n{table['device']}, torch {table['torch']}, triton {table['triton']}, median of {reps}")
    print("| I = J, T | k, l | te_ext | fused | `_int_mm` int8 | bf16 | plain PyTorch | te_ext / int8 | fused / int8 |")
    print("|---|---|---|---|---|---|---|---|---|")
    for r in rows:
        base = r.get("int_mm_ms")
        cell = lambda key: f"{r[key]:.3f} ms" if key in r else "–"  # noqa: E731
        ratio = lambda key: f"{r[key] / base:.2f}×" if base else "–"  # noqa: E731
        print(f"| {r['I']}, {r['T']} | {r['k']}, {r['l']} | {cell('te_ext_ms')} | {cell('fused_ms')} | "
              f"{cell('int_mm_ms')} | {cell('bf16_ms')} | {cell('plain_pytorch_ms')} | "
              f"{ratio('te_ext_ms')} | {ratio('fused_ms')} |")
    counted = [r for r in rows if "fused_counts_ms" in r]
    if counted:
        print("\njoint_counts: " + "; ".join(
            f"{r['I']}² T={r['T']} k,l={r['k']},{r['l']}: te_ext {r['te_ext_counts_ms']:.3f} ms, "
            f"fused {r['fused_counts_ms']:.3f} ms" for r in counted))
    m = memory
    if "skipped" in m:
        print(f"\npeak extra memory: not measured ({m['skipped']})")
    else:
        print(f"\npeak extra memory at {m['I']}^2 T={m['T']} (output {m['output_bytes'] / 1e6:.0f} MB): "
              f"te_ext {m['te_ext_peak_extra_bytes'] / 1e6:.0f} MB ({m['te_ext_peak_over_output']:.2f}x), "
              f"fused {m['fused_peak_extra_bytes'] / 1e6:.0f} MB ({m['fused_peak_over_output']:.2f}x)")
    print(f"tiles: {tiles}")
    print("\nsplit-K (TE, k = l = 1; ms; throughput: back-to-back calls):")
    for r in split_rows:
        forced = ", ".join(f"{s}: {r[f'split_{s}_ms']:.3f}" for s in SPLIT_CANDIDATES)
        print(f"  {r['I']}^2 T={r['T']}, {r['programs']} tiles: rule splits {r['rule_split']}, "
              f"{r['rule_ms']:.3f} ms ({r['rule_ms'] / r['int_mm_ms']:.1f}x int8), throughput "
              f"{r['rule_throughput_ms']:.3f} vs int8 {r['int_mm_throughput_ms']:.3f}; forced {forced}")
    print(f"rules: {table['fused']}\nwrote {out}")
    print(f"to ship it: python scripts/gpu_bench_fused.py --install-from {out}")


if __name__ == "__main__":
    main()
