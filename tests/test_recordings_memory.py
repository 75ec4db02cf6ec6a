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
