"""te-matrix: both input formats, the planted-network example, and bad input (one line, exit 2,
no file left behind)."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch

import te_ext
from te_ext import matrix
from te_ext.recordings.io import InputError, SafeOutput

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _series(T=400, n=6, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.random((T, n)) < 0.3
    x[3:, 1] = x[:-3, 0] ^ (rng.random(T - 3) < 0.05)  # 0 -> 1 at delay 3
    return x


def _check_output(path, x, delays, dtype=np.float64, k=1, l=1):
    with np.load(path) as z:
        te, d, peak, pd = z["te"], z["delays"], z["peak"], z["peak_delay"]
    n = x.shape[1]
    assert te.shape == (len(delays), n, n) and te.dtype == dtype
    assert list(d) == delays
    want = te_ext.transfer_entropy_delays(torch.from_numpy(x), torch.from_numpy(x), delays, k=k,
                                          l=l).numpy().astype(dtype)
    np.testing.assert_array_equal(te, want)
    np.testing.assert_array_equal(peak, want.max(axis=0))
    np.testing.assert_array_equal(pd, np.asarray(delays)[want.argmax(axis=0)])
    return te, peak, pd


def _leftovers(folder):
    return [f for f in os.listdir(folder) if f.startswith(".te-matrix-")]


@pytest.mark.parametrize("as_ints", [False, True])
def test_npy_input(tmp_path, as_ints):
    x = _series()
    np.save(tmp_path / "rec.npy", x.astype(np.int8) if as_ints else x)
    out = tmp_path / "te.npz"
    assert matrix.main([str(tmp_path / "rec.npy"), "--delays", "1:5", "--out", str(out),
                        "--block", "4"]) == 0
    _, _, pd = _check_output(out, x, [1, 2, 3, 4, 5])
    assert pd[0, 1] == 3
    assert _leftovers(tmp_path) == []


def test_npz_spike_times_binned(tmp_path):
    x = _series(T=300, n=5, seed=1)
    t, i = np.nonzero(x)
    bin_w = 0.002
    times = 10.0 + (t + np.random.default_rng(2).random(len(t)) * 0.9) * bin_w  # inside bins
    np.savez(tmp_path / "spk.npz", spike_times=times, spike_neurons=i)
    out = tmp_path / "te.npz"
    rc = matrix.main([str(tmp_path / "spk.npz"), "--bin", str(bin_w), "--t0", "10.0", "--t1",
                      str(10.0 + 300 * bin_w), "--neurons", "5", "--delays", "2", "--k", "2",
                      "--dtype", "float32", "--out", str(out)])
    assert rc == 0
    _check_output(out, x, [2], dtype=np.float32, k=2)


def test_binning_rules():
    times = np.array([0.0, 0.05, 0.1, 0.29, 0.31, 5.0])
    neurons = np.array([0, 1, 0, 1, 0, 1])
    b = matrix.bin_spikes(times, neurons, bin=0.1, t0=0.0, t1=0.3, n=3)
    assert b.shape == (3, 3)
    assert b[:, 0].tolist() == [True, True, False] and b[:, 1].tolist() == [True, False, True]
    assert not b[:, 2].any()
    d = matrix.bin_spikes(times, neurons, bin=1.0, t0=None, t1=None, n=None)
    assert d.shape == (6, 2) and d[5, 1]  # defaults: first spike to just past the last


def test_runs_as_module_and_console_script_entry(tmp_path):
    x = _series(T=200, n=3)
    np.save(tmp_path / "rec.npy", x)
    out = tmp_path / "o.npz"
    r = subprocess.run([sys.executable, "-m", "te_ext.matrix", str(tmp_path / "rec.npy"),
                        "--delays", "1,3", "--threads", "1", "--out", str(out)],
                       capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT})
    assert r.returncode == 0, r.stderr
    _check_output(out, x, [1, 3])
    with open(os.path.join(ROOT, "setup.py")) as f:
        assert '"te-matrix = te_ext.recordings.cli:main"' in f.read()


def test_example_recovers_planted_links(tmp_path, capsys):
    """The example's network at seed 0: the peak TE ranks planted links far above the rest."""
    out = tmp_path / "ex.npz"
    assert matrix.main(["--example", "--example-neurons", "80", "--example-bins", "8000",
                        "--delays", "1:8", "--out", str(out)]) == 0
    text = capsys.readouterr().out
    auc = float(text.split("ROC AUC ")[1].split(",")[0])
    prec = float(text.split("(the true number of links) ")[1].split(",")[0])
    assert auc > 0.9, text  # stated floor: 0.9 (chance is 0.5)
    assert prec > 0.5, text
    with np.load(out) as z:
        adj, peak = z["adjacency"], z["peak"]
        off = ~np.eye(len(adj), dtype=bool)
        assert np.isclose(matrix.roc_auc(peak[off], adj[off]), auc, atol=1e-4)
        sign, link_sign, signed = z["sign"], z["link_sign"], z["signed_peak"]
        assert (link_sign < 0).any() and (link_sign > 0).any()  # both kinds are planted
        assert np.array_equal(sign, np.sign(signed))
        teci = z["teci"][adj.astype(bool)]  # planted links: a peak among 8 delays
        assert z["ci_window"] == 5 and np.all((teci > 0) & (teci <= 1))
        assert np.median(teci) > 5 / 8  # sharper than a flat scan's window / D
    sign_ok = float(text.split("sign (sorted local TE at the peak delay) right for ")[1].split("%")[0])
    assert sign_ok >= 95.0, text  # the floor, over the planted links the TE finds
    assert (tmp_path / "ex.png").stat().st_size > 1000


def test_roc_auc_and_precision_helpers():
    assert matrix.roc_auc([0.1, 0.4, 0.35, 0.8], [0, 0, 1, 1]) == 0.75
    assert matrix.roc_auc([1, 1, 1], [0, 1, 0]) == 0.5  # ties count half
    assert matrix.precision_at_true_count([0.9, 0.1, 0.8, 0.7], [1, 0, 0, 1]) == 0.5


def _bad_cases(tmp_path):
    np.save(tmp_path / "two.npy", np.array([[0, 1], [2, 0], [1, 1]] * 10))
    np.save(tmp_path / "good.npy", _series(T=100, n=3))
    np.save(tmp_path / "flat.npy", np.zeros(10, dtype=bool))
    np.savez(tmp_path / "nan.npz", spike_times=np.array([0.1, np.nan]),
             spike_neurons=np.array([0, 1]))
    np.savez(tmp_path / "range.npz", spike_times=np.array([0.1, 0.2]),
             spike_neurons=np.array([0, 7]))
    np.savez(tmp_path / "spk.npz", spike_times=np.array([0.1, 0.2, 0.5]),
             spike_neurons=np.array([0, 1, 1]))
    np.savez(tmp_path / "nokeys.npz", times=np.array([0.1]))
    out = str(tmp_path / "out.npz")
    good = str(tmp_path / "good.npy")
    spk = str(tmp_path / "spk.npz")
    return [
        ([str(tmp_path / "two.npy"), "--out", out], "not binary: value 2"),
        ([str(tmp_path / "flat.npy"), "--out", out], "expected a [T, N] array"),
        ([str(tmp_path / "nan.npz"), "--bin", "0.1", "--out", out],
         "spike_times[1] is nan; every spike time must be finite"),
        ([str(tmp_path / "range.npz"), "--bin", "0.1", "--neurons", "3", "--out", out],
         "spike_neurons holds 7, out of range [0, 3)"),
        ([spk, "--bin", "0.1", "--t0", "1.0", "--t1", "1.0", "--out", out], "empty time range"),
        ([spk, "--bin", "0.1", "--t0", "2.0", "--t1", "1.0", "--out", out], "empty time range"),
        ([spk, "--out", out], "needs --bin"),
        ([str(tmp_path / "nokeys.npz"), "--bin", "0.1", "--out", out],
         "missing spike_times, spike_neurons"),
        ([spk, "--bin", "0.1", "--delays", "1:30", "--out", out], "too long for series of length T = 5"),
        ([good, "--out", str(tmp_path / "no" / "such" / "dir.npz")], "no such directory"),
        ([good, "--out", str(tmp_path)], "it is a directory"),
        ([good, "--delays", "0:3", "--out", out], "delays must all be >= 1"),
        ([good, "--delays", "a:b", "--out", out], "delays must look like"),
        ([good, "--k", "0", "--out", out], "--k must be >= 1"),
        ([good], "--out is required"),
        ([str(tmp_path / "missing.npy"), "--out", out], "no such input file"),
        ([good, "--out", out, "--bogus"], "unrecognized arguments: --bogus"),
        ([good, "--device", "cuda", "--out", out] if not torch.cuda.is_available() else
         [good, "--block", "0", "--out", out],
         "torch.cuda.is_available() is False" if not torch.cuda.is_available() else
         "--block must be >= 1"),
    ]


def test_bad_input_one_line_exit_2_no_file(tmp_path, capsys):
    for argv, message in _bad_cases(tmp_path):
        assert matrix.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("te-matrix: error: ") and err.count("\n") == 1, (argv, err)
        assert message in err, (argv, err)
        assert not (tmp_path / "out.npz").exists()
        assert _leftovers(tmp_path) == []


def test_unwritable_output_directory(tmp_path, capsys):
    if os.geteuid() == 0:
        pytest.skip("root can write into a read-only directory")
    np.save(tmp_path / "good.npy", _series(T=100, n=3))
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(0o500)
    try:
        assert matrix.main([str(tmp_path / "good.npy"), "--out", str(ro / "o.npz")]) == 2
        assert "is not writable" in capsys.readouterr().err
    finally:
        ro.chmod(0o700)


def test_failure_while_writing_leaves_nothing(tmp_path, capsys, monkeypatch):
    """A failure after the computation started (here: the final write) removes the temporaries
    and leaves no output, and an existing output is left as it was."""
    np.save(tmp_path / "good.npy", _series(T=100, n=3))
    out = tmp_path / "out.npz"
    out.write_bytes(b"old")

    def boom(*a, **k):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(SafeOutput, "commit", boom)
    assert matrix.main([str(tmp_path / "good.npy"), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert err == f"te-matrix: error: cannot write {out}: No space left on device\n"
    assert out.read_bytes() == b"old"
    assert _leftovers(tmp_path) == []


def test_significance_flag(tmp_path, capsys):
    np.save(tmp_path / "good.npy", _series(T=200, n=3))
    out = tmp_path / "out.npz"
    argv = [str(tmp_path / "good.npy"), "--delays", "1:3", "--significance", "20", "--out",
            str(out)]
    if not hasattr(te_ext, "significance"):
        assert matrix.main(argv) == 2
        assert "--significance needs te_ext.significance" in capsys.readouterr().err
        assert not out.exists()
        return
    assert matrix.main(argv) == 0
    with np.load(out) as z:
        p = z["p_value"]
    assert p.shape == (3, 3) and ((p > 0) & (p <= 1)).all()
    assert p[0, 1] == 1 / 21  # the planted 0 -> 1 link


def test_under_torchrun_equals_single_process(tmp_path):
    """Two gloo ranks through torchrun (uneven blocks of pairs): the same file as one process."""
    import socket

    import torch.distributed as dist
    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    x = _series(T=300, n=7, seed=4)
    np.save(tmp_path / "rec.npy", x)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    out = tmp_path / "dist.npz"
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc-per-node", "2",
                        "--master-addr", "127.0.0.1", "--master-port", str(port), "-m",
                        "te_ext.matrix", str(tmp_path / "rec.npy"), "--delays", "1:4", "--block",
                        "3", "--out", str(out)], capture_output=True, text=True, cwd=ROOT,
                       env={**os.environ, "PYTHONPATH": ROOT, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-2000:]
    _check_output(out, x, [1, 2, 3, 4])
    assert _leftovers(tmp_path) == []


def test_integer_spike_times_are_bin_indices_by_default():
    times = np.array([0, 3, 3, 7], dtype=np.int64)
    neurons = np.array([0, 1, 0, 1])
    b = matrix.bin_spikes(times, neurons, bin=None, t0=0, t1=10, n=2)
    assert b.shape == (10, 2)
    assert np.flatnonzero(b[:, 0]).tolist() == [0, 3] and np.flatnonzero(b[:, 1]).tolist() == [3, 7]
    assert np.array_equal(b, matrix.bin_spikes(times, neurons, bin=1.0, t0=0, t1=10, n=2))
    with pytest.raises(InputError, match="non-integer spike_times needs --bin"):
        matrix.bin_spikes(times.astype(float), neurons, bin=None, t0=0, t1=10, n=2)


@pytest.mark.parametrize("stored,options,said", [
    ({}, [], "(the first spike to just past the last spike)"),
    ({"t_start": 0.0, "t_stop": 1.0}, [], "(the file's t_start to the file's t_stop)"),
    ({"t_start": 0.0, "t_stop": 1.0}, ["--t0", "0.1", "--t1", "0.9"], "(--t0 to --t1)"),
])
def test_the_binned_range_is_said_and_kept(tmp_path, capsys, stored, options, said):
    rng = np.random.default_rng(2)
    times = np.sort(rng.random(400)) * 0.8 + 0.1
    inp, out = tmp_path / "s.npz", tmp_path / "te.npz"
    np.savez(inp, spike_times=times, spike_neurons=rng.integers(0, 3, 400), **stored)
    assert matrix.main([str(inp), "--bin", "0.01", "--delays", "1:3", "--out", str(out),
                        *options]) == 0
    assert said in capsys.readouterr().err
    if options:
        t0, bins = 0.1, 80
    elif stored:
        t0, bins = 0.0, 100
    else:
        t0, bins = times.min(), int(np.floor((times.max() - times.min()) / 0.01)) + 1
    with np.load(out) as z:
        assert z["t0"] == t0 and z["bin"] == 0.01
        assert np.isclose(z["t1"], t0 + bins * 0.01, rtol=0, atol=1e-12)
