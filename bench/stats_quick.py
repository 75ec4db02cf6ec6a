"""S1 and S2 alone, interleaved, with the background load from /proc/stat: a short check
of the statistics targets without the whole report.

    python bench/stats_quick.py [--threads N] [--budget SECONDS] [--full]
"""

from __future__ import annotations

import argparse
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import torch  # noqa: E402

import report  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--threads", type=int, default=None)
    ap.add_argument("--budget", type=float, default=6.0, help="seconds of interleaved timing each")
    ap.add_argument("--full", action="store_true", help="1000 surrogates instead of 100")
    args = ap.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    level = "full" if args.full else "quick"
    load = report.CpuLoad()
    load.start()
    results = {"S1": report.target_s1(args.budget, level), "S2": report.target_s2(args.budget, level)}
    background = load.stop()
    print(f"torch threads {torch.get_num_threads()}, te_ext kernel "
          f"{__import__('te_ext').build_info()['cpu_kernel']}; other processes used "
          f"{background:.0%} of the CPU meanwhile")
    rows = [r for r in report.target_rows(results) if r["what"].startswith("**S")]
    print(report.markdown_table(rows, [], []))


if __name__ == "__main__":
    main()
