"""te-matrix's memory on a recording the size of Kaji_EICont's data1 (218 units, 4.75 M bins of
1 ms, 1.43 M spikes): spike times are binned straight into packed words, so the run fits under
an address-space limit (RLIMIT_AS) of what importing te_ext maps plus 768 MiB, where the bool
[T, N] raster alone would need 0.96 GiB; and its peak resident memory, import included, stays
under 1 GiB."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"),
                                reason="reads /proc/self/status and sets RLIMIT_AS")

CHILD = textwrap.dedent("""
    import resource, sys
    def status(key):
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    from te_ext.recordings.cli import main
    cap = status("VmSize") + (768 << 20)
    resource.setrlimit(resource.RLIMIT_AS, (cap, cap))
    rc = main([sys.argv[1], "--out", sys.argv[2], "--threads", "2"])
    print(rc, status("VmHWM"))
""")


def test_data1_sized_recording_fits_in_a_gibibyte(tmp_path):
    rng = np.random.default_rng(0)
    T, n, spikes = 4_746_866, 218, 1_430_000
    times = np.sort(rng.integers(1, T + 1, size=spikes))
    inp, out = tmp_path / "spikes.npz", tmp_path / "te.npz"
    np.savez(inp, spike_times=times, spike_neurons=rng.integers(0, n, size=spikes),
             t_start=1, t_stop=T + 1)
    run = subprocess.run([sys.executable, "-c", CHILD, str(inp), str(out)], capture_output=True,
                         text=True, timeout=600)
    assert run.returncode == 0, run.stderr
    rc, peak = (int(v) for v in run.stdout.split())
    assert rc == 0, run.stderr
    with np.load(out) as z:
        assert z["te"].shape == (30, n, n) and z["signed_peak"].shape == (n, n)
    assert peak <= 1 << 30, f"peak resident memory {peak / 2**30:.3f} GiB"


def _ci_reduce(cells, window):
    """The Transfer Entropy Toolbox's CIReduce.m, transcribed (1-based MATLAB indices)."""
    peak_idx = int(np.argmax(cells)) + 1
    left = max(1, peak_idx - window // 2)
    right = min(len(cells), peak_idx + window // 2)
    total = cells.sum()
    return cells[left - 1:right].sum() / total if total else np.nan


def test_coincidence_index_is_the_toolbox_reduction():
    from te_ext.recordings.scan import coincidence_index

    rng = np.random.default_rng(4)
    te = rng.random((30, 6, 5)) ** 4
    te[:, 0, 0] = 0.0          # all zero: 0/0
    te[:, 1, 1] = 0.0
    te[0, 1, 1] = 1.0          # peak at the first delay: the window is clipped
    te[-1, 2, 2] = 9.0         # and at the last
    best = np.argmax(te, axis=0)
    for window in (1, 3, 5, 31):
        got = coincidence_index(te, best, window)
        want = np.array([[_ci_reduce(te[:, i, j], window) for j in range(5)] for i in range(6)])
        np.testing.assert_allclose(got, want, rtol=1e-12, equal_nan=True)
    assert np.isnan(coincidence_index(te, best, 5)[0, 0])
    assert coincidence_index(te, best, 5)[1, 1] == 1.0
