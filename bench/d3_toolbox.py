"""Target D3 of TARGETS.md: te_ext's delay scan on two real recordings against the Transfer
Entropy Toolbox's C routine (Ito et al. 2011), on the same job, side by side in one run.

The job: all pairs, delays 1..30, k = l = 1 on the whole of each recording, and k = 3, l = 2 on
the first 10% of data1 (as the issue measured it). The recordings are data1 and data5 of
Kajiwara et al.'s repository Motoki878/Kaji_EICont (deleted from its tree; read from its
history), and the toolbox file is MATLAB/transent.c of shixnya/transfer-entropy-toolbox. Both
are read at run time from git mirrors (``--kaji-git``, ``--toolbox-git``; the ``fetch`` tool
makes them) and never copied into this repository: transent.c is built unchanged, in a scratch
directory, behind bench/d3/mex.h (the few mex calls it makes) and bench/d3/main.c, which calls
its mexFunction once per delay as the toolbox's ASDFTE.m does.

Ours: the recording binned from its spike times into a bool raster, then
``transfer_entropy_delays(raster, raster, 1..30)`` at 2 threads (auto path: the sparse one at
these densities). Then ``te-matrix`` end to end in a process of its own (reading a spike-time
.npz, binning, the scan with its sign, the peak, writing the .npz), with its peak RSS. The
toolbox: 1 thread, as it ships. Times are wall clock, each side once, in one run; the ratios
are toolbox / ours. Values are compared (max |difference|).

    python bench/d3_toolbox.py --kaji-git /work/.mirror/Motoki878+Kaji_EICont/repo \\
        --toolbox-git /work/.mirror/shixnya+transfer-entropy-toolbox/repo
"""

from __future__ import annotations

import argparse
import io
import json
import os
import subprocess
import sys
import tempfile
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
# where each recording's spike.mat was last in the tree: the parent of the commit deleting it
RECORDINGS = {"data1": ("e040106", "data1/spike.mat"), "data5": ("b21878f", "data5/spike.mat")}
DELAYS = (1, 30)


def git_blob(repo: str, rev: str, path: str) -> bytes:
    return subprocess.run(["git", "--git-dir", repo if repo.endswith(".git") or os.path.isfile(
        os.path.join(repo, "HEAD")) else os.path.join(repo, ".git"), "show", f"{rev}:{path}"],
        check=True, capture_output=True).stdout


def load_asdf(mat: bytes):
    """(list of 1-based int spike-bin arrays, duration) from a Kaji_EICont spike.mat."""
    import scipy.io

    cells = scipy.io.loadmat(io.BytesIO(mat))["spike"][:, 0]
    duration = int(np.asarray(cells[-1]).ravel()[1])
    return [np.asarray(c).ravel().astype(np.int64) for c in cells[:-2]], duration


def truncate(spikes, duration, fraction):
    end = int(duration * fraction)
    return [s[s <= end] for s in spikes], end


def write_asdf(path, spikes, duration):
    with open(path, "wb") as f:
        f.write(np.int64(len(spikes)).tobytes())
        for s in spikes:
            f.write(np.int64(s.size).tobytes())
            f.write(s.astype(np.float64).tobytes())
        f.write(np.array([0.0, float(duration)]).tobytes())


def build_toolbox(transent_c: bytes, scratch: str) -> str:
    src = os.path.join(scratch, "transent.c")
    with open(src, "wb") as f:
        f.write(transent_c)
    exe = os.path.join(scratch, "transent_main")
    subprocess.run(["cc", "-O3", "-march=native", "-I", os.path.join(HERE, "d3"), src,
                    os.path.join(HERE, "d3", "main.c"), "-lm", "-o", exe], check=True)
    return exe


def run_toolbox(exe, spikes, duration, k, l, scratch):
    inp, out = os.path.join(scratch, "in.bin"), os.path.join(scratch, "out.bin")
    write_asdf(inp, spikes, duration)
    t = time.perf_counter()
    # x is the toolbox's target (x_order = our k), y its delayed source (y_order = our l)
    subprocess.run([exe, inp, out, str(DELAYS[0]), str(DELAYS[1]), str(k), str(l)], check=True,
                   env=dict(os.environ, OMP_NUM_THREADS="1"))
    seconds = time.perf_counter() - t
    n = len(spikes)
    te = np.fromfile(out, dtype=np.float64).reshape(-1, n, n)  # [d][target][source]
    return seconds, te.transpose(0, 2, 1)  # -> [d][source][target], as ours


def run_ours(spikes, duration, k, l, threads):
    import torch
    import te_ext

    torch.set_num_threads(threads)
    t = time.perf_counter()
    raster = torch.zeros(duration, len(spikes), dtype=torch.bool)
    for i, s in enumerate(spikes):
        raster[torch.from_numpy(s - 1), i] = True  # 1-based bins
    binned = time.perf_counter()
    te = te_ext.transfer_entropy_delays(raster, raster, range(DELAYS[0], DELAYS[1] + 1), k=k, l=l)
    done = time.perf_counter()
    return done - t, done - binned, te.numpy()


def run_cli(spikes, duration, k, l, threads, scratch):
    """``te-matrix`` end to end in its own process, from a spike-time file to the written
    matrix: (wall seconds, peak RSS in bytes of that process, te [D, source, target])."""
    inp, out = os.path.join(scratch, "spikes.npz"), os.path.join(scratch, "te.npz")
    times = np.concatenate(spikes)
    neurons = np.concatenate([np.full(s.size, i, dtype=np.int64) for i, s in enumerate(spikes)])
    # 1-based integer bins 1..duration: bin width 1, the recording's bounds given in the file
    np.savez(inp, spike_times=times, spike_neurons=neurons, t_start=1, t_stop=duration + 1)
    exe = os.path.join(os.path.dirname(sys.executable), "te-matrix")
    cmd = [exe, inp, "--out", out, "--k", str(k), "--l", str(l), "--neurons", str(len(spikes)),
           "--delays", f"{DELAYS[0]}:{DELAYS[1]}", "--threads", str(threads)]
    peak = os.path.join(scratch, "peak_rss")
    t = time.perf_counter()
    # GNU time's %M is the child's own peak RSS. (The harness's rusage is not: a child forked
    # from this process inherits its high-water mark across exec.)
    subprocess.run(["/usr/bin/time", "-f", "%M", "-o", peak, *cmd], check=True,
                   stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - t
    with open(peak) as f:
        rss = int(f.read().split()[-1]) * 1024
    with np.load(out) as z:
        te = z["te"]
    return seconds, rss, te


def peak_delay_disagreements(te, te_tb) -> int:
    """Pairs (off the diagonal) whose peak delay differs between ours and the toolbox, which is
    within ~2e-16 of exact arithmetic: flat pairs differ between delays by less than a careless
    reduction's rounding."""
    off = ~np.eye(te.shape[1], dtype=bool)
    return int((te[:, off].argmax(0) != te_tb[:, off].argmax(0)).sum())


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--kaji-git", required=True, help="git dir of Motoki878/Kaji_EICont")
    ap.add_argument("--toolbox-git", required=True, help="git dir of shixnya/transfer-entropy-toolbox")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=os.path.join(HERE, "results"))
    ap.add_argument("--jobs", default="data1:1:1:1.0,data5:1:1:1.0,data1:3:2:0.1",
                    help="recording:k:l:fraction of its length, comma-separated")
    args = ap.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as scratch:
        exe = build_toolbox(git_blob(args.toolbox_git, "HEAD", "MATLAB/transent.c"), scratch)
        for job in args.jobs.split(","):
            name, k, l, frac = job.split(":")
            k, l, frac = int(k), int(l), float(frac)
            spikes, duration = load_asdf(git_blob(args.kaji_git, f"{RECORDINGS[name][0]}^",
                                                  RECORDINGS[name][1]))
            if frac < 1:
                spikes, duration = truncate(spikes, duration, frac)
            t_tb, te_tb = run_toolbox(exe, spikes, duration, k, l, scratch)
            t_ours, t_op, te = run_ours(spikes, duration, k, l, args.threads)
            t_cli, rss_cli, te_cli = run_cli(spikes, duration, k, l, args.threads, scratch)
            row = {"recording": name, "k": k, "l": l, "fraction": frac, "units": len(spikes),
                   "bins": duration, "spikes": int(sum(s.size for s in spikes)),
                   "t_toolbox_1_thread": t_tb, "t_ours": t_ours, "t_ours_op_only": t_op,
                   "threads": args.threads, "speedup": t_tb / t_ours,
                   "max_abs_diff": float(np.abs(te - te_tb).max()),
                   "peak_delay_disagreements": peak_delay_disagreements(te, te_tb),
                   "t_te_matrix": t_cli, "te_matrix_peak_rss_bytes": rss_cli,
                   "speedup_te_matrix": t_tb / t_cli,
                   "te_matrix_max_abs_diff": float(np.abs(te_cli - te_tb).max())}
            rows.append(row)
            print(json.dumps(row), flush=True)
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, time.strftime("d3-%Y-%m-%d_%H%M%S.json"))
    with open(path, "w") as f:
        json.dump({"target": "D3", "goal": ">= 10x the single-threaded toolbox", "rows": rows}, f,
                  indent=1)
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
