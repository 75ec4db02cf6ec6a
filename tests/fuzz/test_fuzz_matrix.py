"""Fuzz te-matrix: random input files (valid, truncated, mislabelled, hostile) and random option
values and combinations.

Each invocation runs in a child forked from one worker that has imported te_ext once
(tests/te_train_worker.py), with a timeout and an address-space cap 4 GiB above the worker's.
It must either succeed (exit 0 and a complete .npz at --out) or refuse with exit status 2 and
exactly one line on stderr, ``te-matrix: error: ...``. A traceback, another exit status, a
signal or a timeout fails; so does a temporary (``.te-matrix-*``) left beside the output, or an
input file that changed.

``TE_FUZZ_PROFILE=long`` runs many more examples than CI's deterministic short profile.
"""

from __future__ import annotations

import hashlib
import os
import zipfile

import numpy as np
import pytest
import torch

hypothesis = pytest.importorskip("hypothesis")
from hypothesis import HealthCheck, given, settings, strategies as st  # noqa: E402

from te_train_worker import te_train_worker  # noqa: E402

LONG = os.environ.get("TE_FUZZ_PROFILE", "") == "long"
EXAMPLES = 400 if LONG else 40
TIMEOUT_S = 120
ADDRESS_SPACE = None if torch.cuda.is_available() else 4 << 30


def _inputs(folder):
    """name -> path of every input kind, written once."""
    rng = np.random.default_rng(0)
    paths = {}

    def save(name, write):
        path = os.path.join(folder, name)
        write(path)
        paths[name] = path

    raster = rng.random((300, 6)) < 0.2
    times = np.sort(rng.random(500)) * 3.0
    ids = rng.integers(0, 6, 500)
    save("raster.npy", lambda p: np.save(p, raster))
    save("raster01.npy", lambda p: np.save(p, raster.astype(np.float32)))
    save("spikes.npz", lambda p: np.savez(p, spike_times=times, spike_neurons=ids))
    save("bins.npz", lambda p: np.savez(p, spike_times=(times * 100).astype(np.int64),
                                        spike_neurons=ids, t_start=0, t_stop=300))
    save("empty", lambda p: open(p, "wb").close())
    save("truncated.npz", lambda p: open(p, "wb").write(open(paths["spikes.npz"], "rb").read()[:300]))
    save("npy-named.npz", lambda p: open(p, "wb").write(open(paths["raster.npy"], "rb").read()))
    save("npz-named.npy", lambda p: open(p, "wb").write(open(paths["spikes.npz"], "rb").read()))
    save("missing.npz", lambda p: np.savez(p, spike_times=times))
    save("nan.npz", lambda p: np.savez(p, spike_times=np.where(ids == 2, np.nan, times),
                                       spike_neurons=ids))
    save("huge-id.npz", lambda p: np.savez(p, spike_times=times,
                                           spike_neurons=np.where(ids == 1, 2**40, ids)))
    save("negative-id.npz", lambda p: np.savez(p, spike_times=times, spike_neurons=ids - 3))
    save("uint64-id.npz", lambda p: np.savez(p, spike_times=times,
                                             spike_neurons=ids.astype(np.uint64) + 2**63))
    save("object.npy", lambda p: np.save(p, np.array([{"a": 1}], dtype=object), allow_pickle=True))
    save("3d.npy", lambda p: np.save(p, raster.reshape(2, 150, 6)))
    save("nonbinary.npy", lambda p: np.save(p, raster * 2))
    save("transposed.npy", lambda p: np.save(p, raster.T))
    save("complex.npz", lambda p: np.savez(p, spike_times=times.astype(np.complex128),
                                           spike_neurons=ids))
    save("corrupt.npz", lambda p: _corrupt_zip(paths["spikes.npz"], p))
    return paths


def _corrupt_zip(src, dst):
    data = bytearray(open(src, "rb").read())
    with zipfile.ZipFile(src) as z:
        info = z.infolist()[0]
    start = info.header_offset + 30 + len(info.filename) + 40
    for q in range(start, min(start + 64, len(data))):
        data[q] ^= 0x5A
    open(dst, "wb").write(bytes(data))


_FLOATS = ["0", "0.01", "0.5", "1", "-1", "nan", "inf", "-inf", "1e300", "1e-300", "abc", ""]
FLAGS = {
    "--bin": st.sampled_from(["0.01", "1", "0.1", "0", "-0.01", "1e-9", "nan", "inf", "x"]),
    "--t0": st.sampled_from(_FLOATS),
    "--t1": st.sampled_from(_FLOATS + ["3", "1e12"]),
    "--delays": st.sampled_from(["1:3", "1:30", "2", "1,2,5", "0", "3:1", "1:100000000", "1:1e10",
                                 "", "a", "1:3:0", "-1", "299", "1:3:2"]),
    "--neurons": st.sampled_from(["6", "7", "1", "0", "-1", "1099511627776", "x"]),
    "--k": st.sampled_from(["1", "2", "3", "0", "62", "-1", "x"]),
    "--l": st.sampled_from(["1", "2", "0", "62", "x"]),
    "--dtype": st.sampled_from(["float32", "float64", "int8", ""]),
    "--block": st.sampled_from(["1", "2", "0", "-1", "1000000", "x"]),
    "--ci-window": st.sampled_from(["5", "1", "3", "4", "0", "-1", "x"]),
    "--significance": st.sampled_from(["2", "0", "-1", "x"]),
    "--threads": st.sampled_from(["1", "2", "0", "-1", "x"]),
    "--device": st.sampled_from(["cpu", "cuda", "tpu"]),
}
OUTS = ["out.npz", "", ".", "/dev/full", "no-such-dir/out.npz", "INPUT", "existing.npz"]


@st.composite
def invocations(draw):
    inp = draw(st.sampled_from(["raster.npy", "raster01.npy", "spikes.npz", "bins.npz", "empty",
                                "truncated.npz", "npy-named.npz", "npz-named.npy", "missing.npz",
                                "nan.npz", "huge-id.npz", "negative-id.npz", "uint64-id.npz",
                                "object.npy", "3d.npy", "nonbinary.npy", "transposed.npy",
                                "complex.npz", "corrupt.npz", "no-such-file.npy"]))
    flags = draw(st.lists(st.sampled_from(sorted(FLAGS)), max_size=4, unique=True))
    options = []
    for flag in flags:
        value = draw(FLAGS[flag])
        options += [f"{flag}={value}"] if draw(st.booleans()) else [flag, value]
    if "--delays" not in flags:  # keep the default scan cheap
        options += ["--delays", "1:3"]
    return inp, options, draw(st.sampled_from(OUTS))


@settings(max_examples=EXAMPLES, derandomize=True, database=None, deadline=None,
          suppress_health_check=list(HealthCheck))
@given(case=invocations())
def test_te_matrix_refuses_cleanly_or_writes_a_complete_result(tmp_path_factory, case):
    inp_name, options, out_name = case
    folder = str(tmp_path_factory.mktemp("inputs"))
    paths = _inputs(folder)
    inp = paths.get(inp_name, os.path.join(folder, inp_name))
    before = {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths.values()}
    work = str(tmp_path_factory.mktemp("run"))
    out = {"INPUT": inp}.get(out_name, os.path.join(work, out_name) if out_name not in
                             ("", "/dev/full") else out_name)
    if out_name == "existing.npz":
        with open(out, "wb") as f:
            f.write(b"previous result")
    argv = [inp, "--out", out, *options]
    r = te_train_worker().run(argv, work, timeout=TIMEOUT_S, entry="te-matrix",
                              extra_address_space=ADDRESS_SPACE)
    assert not r.timed_out and r.signal is None, (argv, r)
    err = [line for line in r.stderr.splitlines() if line.strip()]
    if r.rc == 0:
        with np.load(out) as z:
            te = z["te"]
            assert te.ndim == 3 and z["peak"].shape == te.shape[1:]
            assert np.all(np.isfinite(te)) and np.all(te >= 0)
    else:
        assert r.rc == 2, (argv, r.rc, r.stderr)
        errors = [line for line in err if line.startswith("te-matrix: error: ")]
        assert len(errors) == 1 and "Traceback" not in r.stderr, (argv, r.stderr)
        if out_name == "existing.npz":
            assert open(out, "rb").read() == b"previous result"
    for folder_ in {work, folder}:
        assert not [f for f in os.listdir(folder_) if f.startswith(".te-matrix-")], argv
    after = {p: hashlib.sha256(open(p, "rb").read()).hexdigest() for p in paths.values()}
    assert after == before, argv  # no input was replaced
