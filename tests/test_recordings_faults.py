"""te-matrix against the outside campaign's repros: binning exact at the edges, every bad input
one line and exit 2, outputs that are never partial, clobbered or special, and no temporary left
after a full disk (RLIMIT_FSIZE), SIGTERM or SIGKILL."""

from __future__ import annotations

import os
import resource
import signal
import subprocess
import sys
import time
import zipfile

import numpy as np
import pytest

from te_ext import matrix
from te_ext.recordings.io import bin_spikes

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _unnamed_temporaries(folder) -> bool:
    try:
        os.close(os.open(folder, os.O_TMPFILE | os.O_RDWR, 0o600))
        return True
    except (AttributeError, OSError):
        return False


def _leftovers(folder):
    return [f for f in os.listdir(folder) if f.startswith(".te-matrix-")]


# ---- binning -------------------------------------------------------------------------------

def test_the_last_spike_is_kept():
    # 0.29 / 0.01 = 28.999999999999996: the default range used to end at 0.29, excluding it.
    r = bin_spikes(np.array([0.0, 0.29]), np.array([0, 1]), bin=0.01, t0=None, t1=None, n=None)
    assert r.sum(0).tolist() == [1, 1] and r.shape == (29, 2) and r[28, 1]


def test_every_spike_in_range_lands_in_exactly_one_bin():
    rng = np.random.default_rng(5)
    for trial in range(300):
        n_spikes = int(rng.integers(1, 60))
        scale = 10.0 ** rng.integers(-3, 4)
        times = np.round(rng.random(n_spikes) * scale, int(rng.integers(0, 6)))
        ids = rng.integers(0, 4, n_spikes)
        bin_ = float(rng.choice([1e-3, 0.01, 0.1, 1.0, 0.3])) * scale
        t0 = None if trial % 3 == 0 else float(times.min() - rng.random() * bin_)
        t1 = None if trial % 2 == 0 else float(times.max() + rng.random() * bin_ * 2)
        r = bin_spikes(times, ids, bin=bin_, t0=t0, t1=t1, n=4)
        lo = times.min() if t0 is None else t0
        inside = (times >= lo) & ((times < t1) if t1 is not None else np.ones_like(times, bool))
        # each (neuron, spike) in range is somewhere; a bin holds 1 however many spikes it has
        want = {(int(i), int(np.floor((t - lo) / bin_))) for t, i in zip(times[inside], ids[inside])}
        want = {(i, min(b, r.shape[0] - 1)) for i, b in want}
        got = {(int(i), int(b)) for b, i in zip(*np.nonzero(r))}
        assert got == want, (trial, times, bin_, t0, t1)


# ---- bad input: one line, exit 2 -------------------------------------------------------------

def _npz(path, **arrays):
    np.savez(path, **arrays)
    return str(path)


def _cases(tmp_path):
    good = tmp_path / "good.npy"
    np.save(good, np.random.default_rng(0).random((300, 4)) < 0.3)
    spk = _npz(tmp_path / "spk.npz", spike_times=np.array([0.1, 0.2, 0.5]),
               spike_neurons=np.array([0, 1, 1]))
    (tmp_path / "empty.npz").write_bytes(b"")
    data = open(spk, "rb").read()
    (tmp_path / "trunc.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "corrupt.npz").write_bytes(data[:60] + b"\x00" * 40 + data[100:])
    np.save(tmp_path / "named.npz.npy", np.zeros((5, 2), bool))
    os.rename(tmp_path / "named.npz.npy", tmp_path / "npy_named.npz")
    os.rename(spk, tmp_path / "npz_named.npy")
    spk = _npz(tmp_path / "spk.npz", spike_times=np.array([0.1, 0.2, 0.5]),
               spike_neurons=np.array([0, 1, 1]))
    long = _npz(tmp_path / "long.npz", spike_times=np.array([0.1, 1000.0]),
                spike_neurons=np.array([0, 1]))
    u64 = _npz(tmp_path / "u64.npz", spike_times=np.array([0.1, 0.2]),
               spike_neurons=np.array([0, 2**63 + 5], dtype=np.uint64))
    huge_id = _npz(tmp_path / "huge_id.npz", spike_times=np.array([0.1, 0.2]),
                   spike_neurons=np.array([0, 2**40]))
    out = str(tmp_path / "out.npz")
    g = str(good)
    return [
        ([g, "--out", ""], "--out must name a file"),
        ([spk, "--bin", "0.1", "--t0", "nan", "--out", out], "--t0 must be a finite number"),
        ([spk, "--bin", "0.1", "--t0", "inf", "--out", out], "--t0 must be a finite number"),
        ([spk, "--bin", "0.1", "--t1=-inf", "--out", out], "--t1 must be a finite number"),
        ([spk, "--bin", "0.1", "--t1", "1e300", "--out", out], "GiB of memory"),
        ([long, "--bin", "1e-9", "--out", out], "GiB of memory"),
        ([spk, "--bin", "0.1", "--t1", "1e12", "--out", out], "GiB of memory"),
        ([u64, "--bin", "0.1", "--out", out], "GiB of memory"),
        ([huge_id, "--bin", "0.1", "--out", out], "GiB of memory"),
        ([spk, "--bin", "0.1", "--neurons", str(2**40), "--out", out], "GiB of memory"),
        ([g, "--delays", "1:10000000000", "--out", out], "too long for series of length T = 300"),
        ([g, "--delays", "1:1e10", "--out", out], "delays must look like"),
        ([str(tmp_path / "empty.npz"), "--bin", "0.1", "--out", out], "is empty"),
        ([str(tmp_path / "trunc.npz"), "--bin", "0.1", "--out", out], "cannot read"),
        ([str(tmp_path / "corrupt.npz"), "--bin", "0.1", "--out", out], "cannot read"),
        # the content decides the format, not the name: both work
        ([str(tmp_path / "npy_named.npz"), "--delays", "1:2", "--out", out], None),
        ([str(tmp_path / "npz_named.npy"), "--bin", "0.1", "--delays", "1:2", "--out", out], None),
        (["--example", "--example-neurons", "10000000"], "--example-neurons must be in"),
        (["--example", "--example-neurons", "1e7"], "invalid int value"),
        ([g, "--out", g], "is the input file"),
    ]


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    for argv, message in _cases(tmp_path):
        code = matrix.main(argv)
        err = capsys.readouterr().err
        if message is None:
            assert code == 0, (argv, err)
            os.remove(tmp_path / "out.npz")
            continue
        assert code == 2, (argv, err)
        assert err.startswith("te-matrix: error: ") and err.count("\n") == 1, (argv, err)
        assert message in err, (argv, err)
        assert not (tmp_path / "out.npz").exists()
        assert _leftovers(tmp_path) == []
    assert np.load(tmp_path / "good.npy").shape == (300, 4)  # --out = input left it alone


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_special_files_are_not_replaced(tmp_path, capsys):
    np.save(tmp_path / "good.npy", np.zeros((50, 2), bool))
    fifo = tmp_path / "fifo.npz"
    os.mkfifo(fifo)
    assert matrix.main([str(tmp_path / "good.npy"), "--out", str(fifo)]) == 2
    assert "is not a regular file" in capsys.readouterr().err
    assert os.path.exists(fifo) and not os.path.isfile(fifo)


# ---- faults in a child process ----------------------------------------------------------------

def _child(args, tmp_path, preexec=None):
    env = {**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "te_ext.matrix", *args], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=preexec)


def _check_out(path, shape):
    with np.load(path) as z:
        assert z["te"].shape == shape and z["peak"].shape == shape[1:]


def test_file_size_limit_fails_cleanly(tmp_path):
    # A disk that fills up: RLIMIT_FSIZE turns the first write past 200 KB into EFBIG (te-matrix
    # ignores SIGXFSZ), where a memory-mapped output used to die of SIGBUS and leak its files.
    np.save(tmp_path / "rec.npy", np.random.default_rng(1).random((400, 60)) < 0.2)
    limit = 200_000

    def cap():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))

    p = _child(["rec.npy", "--delays", "1:10", "--out", "out.npz"], tmp_path, cap)
    _, err = p.communicate(timeout=300)
    assert p.returncode == 2, err
    assert err.startswith("te-matrix: error: cannot write") and err.count("\n") == 1, err
    assert not (tmp_path / "out.npz").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP, signal.SIGKILL])
def test_signals_leave_no_temporary_and_no_partial_output(tmp_path, sig):
    rng = np.random.default_rng(2)
    np.save(tmp_path / "rec.npy", rng.random((20000, 160)) < 0.1)
    (tmp_path / "out.npz").write_bytes(b"old")
    before = b"old"
    for wait in (0.5, 4.0, 7.0):  # at different points of the run
        p = _child(["rec.npy", "--delays", "1:30", "--block", "4", "--out", "out.npz"], tmp_path)
        time.sleep(wait)
        p.send_signal(sig)
        _, err = p.communicate(timeout=300)
        if sig == signal.SIGKILL:
            # Nothing runs after SIGKILL. The output is the old one or a complete new one; the
            # temporaries are unnamed files (O_TMPFILE) that the kernel frees, where the file
            # system has them (a named one exists only between its link and its rename).
            assert (tmp_path / "out.npz").read_bytes() == b"old" or zipfile.is_zipfile(tmp_path / "out.npz")
            if _unnamed_temporaries(tmp_path):
                assert _leftovers(tmp_path) == []
            for f in _leftovers(tmp_path):
                os.remove(tmp_path / f)
            continue
        if p.returncode == 0 or err.startswith("wrote "):
            # finished before the signal (or the signal came after the rename, while Python was
            # exiting): a complete output
            _check_out(tmp_path / "out.npz", (30, 160, 160))
            before = (tmp_path / "out.npz").read_bytes()  # what a later stopped run must keep
        else:
            # 128 + sig once te-matrix handles signals; -sig while Python is still importing
            # (nothing is written then)
            # (a SIGINT then is Python's KeyboardInterrupt: exit status 1)
            allowed = (128 + sig, -sig) + ((1,) if sig == signal.SIGINT else ())
            assert p.returncode in allowed, (p.returncode, err)
            unchanged = (tmp_path / "out.npz").read_bytes() == before  # no byte diff in the report
            assert unchanged, (p.returncode, err)
        assert _leftovers(tmp_path) == [], err
