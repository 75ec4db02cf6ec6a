"""The summary of a ``scripts/gpu_check.sh`` call, rebuilt from its log folder.

    python scripts/gpu_check_report.py LOGS_DIR OUT_PREFIX SECONDS

Writes ``OUT_PREFIX.json`` and ``OUT_PREFIX.md`` from whatever the stages have written to
``LOGS_DIR`` so far (``stages.log``, ``env.txt``, ``*.log``, ``bad_inputs.json``,
``bench.json``/``bench.md``, ``gpu-heuristic-*.json``), with the end of every log. gpu_check.sh
runs it after every stage, so a call cut off at its time limit still leaves a readable summary.
"""

from __future__ import annotations

import glob
import json
import os
import sys
from typing import Any, Dict, List

LOG_TAIL = 12000  # characters kept of each log


def _read(folder: str, name: str, default: Any = None) -> Any:
    try:
        with open(os.path.join(folder, name)) as fh:
            return json.load(fh) if name.endswith(".json") else fh.read()
    except (OSError, ValueError):
        return default


def _stages(text: str) -> Dict[str, str]:
    stages = {}
    for line in text.splitlines():
        if line.startswith("== gpu_check: "):
            name, _, result = line[len("== gpu_check: "):].partition(": ")
            stages[name] = result
    return stages


def summary(folder: str, seconds: int) -> Dict[str, Any]:
    fused = sorted(glob.glob(os.path.join(folder, "gpu-heuristic-*.json")))
    return {
        "seconds": seconds,
        "environment": _read(folder, "env.txt", ""),
        "stages": _stages(_read(folder, "stages.log", "")),
        # the end of every log, so the summary alone says what happened (the device tool
        # returns at most 8 files; the whole logs travel as one tarball beside it)
        "logs": {os.path.basename(path): (_read(folder, os.path.basename(path), "") or "")[-LOG_TAIL:]
                 for path in sorted(glob.glob(os.path.join(folder, "*.log")))},
        "bad_inputs": _read(folder, "bad_inputs.json"),
        "bench": _read(folder, "bench.json"),
        "fused_table": _read(folder, os.path.basename(fused[-1])) if fused else None,
    }


def markdown(result: Dict[str, Any]) -> str:
    md: List[str] = [f"# GPU check ({result['seconds']} s)", "", "```",
                     result["environment"].strip(), "```", "", "| stage | result |", "|---|---|"]
    md += [f"| {k} | {v.replace('|', '/')} |" for k, v in result["stages"].items()]
    bad = result["bad_inputs"]
    if bad:
        md += ["", f"Bad inputs ({bad['device']}, one process each): {bad['raised']} of "
               f"{bad['cases']} raised a Python exception, {bad['crashed']} crashed.", "",
               "| input | outcome |", "|---|---|"]
        md += [f"| {r['name']} | {r['outcome']} {r.get('type') or ''}: "
               f"{str(r.get('message', '')).replace('|', '/')} |" for r in bad["results"]]
    folder_md = result.get("bench_md")
    if folder_md:
        md += ["", folder_md]
    fused = result["logs"].get("fused.log", "")
    if fused:
        md += ["", "## Fused kernel (scripts/gpu_bench_fused.py)", "", "```",
               fused.strip()[-4000:], "```"]
    for name, text in result["logs"].items():
        if name.startswith("tests_") and ("FAILED" in text or "Error" in text):
            failed = [line for line in text.splitlines() if line.startswith(("FAILED", "ERROR"))]
            md += ["", f"## {name}: failures", "", "```", "\n".join(failed[:40]), "```"]
    return "\n".join(md) + "\n"


def main(argv: List[str]) -> int:
    folder, prefix, seconds = argv[1], argv[2], int(argv[3])
    result = summary(folder, seconds)
    result["bench_md"] = _read(folder, "bench.md")
    with open(prefix + ".json", "w") as fh:
        json.dump(result, fh, indent=2, default=str)
    with open(prefix + ".md", "w") as fh:
        fh.write(markdown(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
