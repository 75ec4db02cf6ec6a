#!/usr/bin/env python
"""Static facts of the fused Triton kernels, compiled for GPUs this machine does not have.

For each (k, l) the dispatcher sends to the fused kernel and each architecture, compiles the
kernel with ``te_ext/_triton/aot.py`` (Triton's ``GPUTarget``, its bundled ``ptxas``) and
records what ptxas reports: registers and spill bytes per thread, shared memory, and how many
int8 tensor-core MMA instructions the PTX issues. No timing: spills are what this machine can
see of the kernel's speed, and the tile candidates that the GPU benchmark
(``scripts/gpu_bench_fused.py``) times are the spill-free ones.

    python scripts/triton_static_report.py                    # default tiles, sm_80 and sm_90
    python scripts/triton_static_report.py --kl 1,1 --tiles 64,64,64,8 128,64,64,8 --cc 90

Writes ``bench/results/triton-static-<date>.json`` and ``.md`` (``--out-dir``). Each compile
takes 5-80 s of one CPU core.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import torch  # noqa: E402

from te_ext._triton import aot, dispatch  # noqa: E402

DEFAULT_KL = [(1, 1), (1, 2), (2, 1), (2, 2), (3, 1), (1, 3)]


def parse_pair(text: str):
    a, b = (int(v) for v in text.split(","))
    return a, b


def write(out: Path, meta: dict, rows: list) -> None:
    out.with_suffix(".json").write_text(json.dumps({**meta, "kernels": rows}, indent=2) + "\n")
    md = [f"# Fused Triton kernel, compiled without a GPU ({meta['date']})", "",
          f"torch {meta['torch']}, triton {meta['triton']}; {meta['input']} input, TE output. "
          "Per thread, from `ptxas -v`; the marginals kernel runs first (4 warps). A split "
          "launch (small grids) runs the MMA kernel's partial-count variant, then the split "
          "epilogue.", "",
          "| arch | k, l | tiles (I×J×K/warps) | registers | spill stores | spill loads | shared | "
          "int8 MMA instr. | marginals kernel: registers, spills | split MMA kernel: registers, "
          "spills | split epilogue: registers, spills |",
          "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| sm_{r['cc']} | {r['k']}, {r['l']} | {r['tiles']} | {r['registers']} | "
                  f"{r['spill_store_bytes']} B | {r['spill_load_bytes']} B | "
                  f"{r['shared_bytes'] // 1024} KB | {r['int8_mma_instructions']} | "
                  f"{r['marginals_registers']}, {r['marginals_spill_store_bytes']} B | "
                  f"{r.get('split_registers', '–')}, {r.get('split_spill_store_bytes', '–')} B | "
                  f"{r.get('epilogue_registers', '–')}, {r.get('epilogue_spill_store_bytes', '–')} B |")
    out.with_suffix(".md").write_text("\n".join(md) + "\n")


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cc", type=int, nargs="+", default=[80, 90],
                    choices=sorted(aot.PTXAS_ARCH), help="compute capabilities (default 80 90)")
    ap.add_argument("--kl", type=parse_pair, nargs="+", default=DEFAULT_KL,
                    help="k,l pairs (default: every pair the fused kernel takes)")
    ap.add_argument("--tiles", nargs="+", default=[None],
                    help="BLOCK_I,BLOCK_J,BLOCK_K,num_warps candidates (default: kernels.tiles)")
    ap.add_argument("--out-dir", default=str(ROOT / "bench" / "results"))
    args = ap.parse_args(argv)
    for k, l in args.kl:
        if ((1 << l) - 1) * ((1 << (k + 1)) - 1) > dispatch.MAX_STREAM_PRODUCTS:
            ap.error(f"--kl {k},{l}: the fused kernel does not take it (too many stream pairs)")
    import triton

    now = datetime.datetime.now(datetime.timezone.utc)
    out = Path(args.out_dir) / f"triton-static-{now.strftime('%Y-%m-%d_%H%M%S')}"
    out.parent.mkdir(parents=True, exist_ok=True)
    meta = {"date": now.isoformat(timespec="seconds"), "torch": torch.__version__,
            "triton": triton.__version__, "input": "bool, contiguous [T, N]",
            "per_thread": "registers and spill bytes are per thread (ptxas -v)"}
    rows = []
    for cc in args.cc:
        for k, l in args.kl:
            marginals = aot.compile_marginals_for(cc, k, l)
            m_usage = aot.ptxas_usage(marginals.asm["ptx"], cc)
            epilogue = aot.compile_epilogue_for(cc, k, l, split=4, marg_split=2)
            e_usage = aot.ptxas_usage(epilogue.asm["ptx"], cc)
            for tiles in args.tiles:
                if tiles:
                    os.environ["TE_EXT_TRITON_TILES"] = tiles
                else:
                    os.environ.pop("TE_EXT_TRITON_TILES", None)
                facts = aot.static_facts(cc, k, l, torch.bool).as_dict()
                facts["marginals_registers"] = m_usage["registers"]
                facts["marginals_spill_store_bytes"] = m_usage["spill_store_bytes"]
                facts["epilogue_registers"] = e_usage["registers"]
                facts["epilogue_spill_store_bytes"] = e_usage["spill_store_bytes"]
                split, _ = aot.compile_for(cc, k, l, split=4)
                s_usage = aot.ptxas_usage(split.asm["ptx"], cc)
                facts["split_registers"] = s_usage["registers"]
                facts["split_spill_store_bytes"] = s_usage["spill_store_bytes"]
                rows.append(facts)
                print(f"sm_{cc} k={k} l={l} {facts['tiles']}: {facts['registers']} registers, "
                      f"{facts['spill_store_bytes']} B spill stores, {facts['shared_bytes']} B shared, "
                      f"{facts['int8_mma_instructions']} int8 MMA instructions", flush=True)
                # Rewritten after every kernel: a run cut short keeps what it measured.
                write(out, meta, rows)
    os.environ.pop("TE_EXT_TRITON_TILES", None)
    print(f"wrote {out.with_suffix('.json')} and .md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
