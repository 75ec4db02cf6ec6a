"""The fused Triton kernel (te_ext/_triton) on the CPU, under the Triton interpreter.

Triton reads ``TRITON_INTERPRET`` when it is imported, so the kernel tests run in one child
pytest process of this same file with ``TRITON_INTERPRET=1`` set before anything imports
triton (``test_kernel_under_interpreter``); this process never imports triton for them and
the other tests are unaffected. Inside the child, ``INTERPRETER`` is true and the
``test_interpreted_*`` tests run: counts equal the C++ op bit for bit and TE agrees to 1e-12,
for k, l in {1, 2} and delays 1..2, with replicates, strides, tile edges and thresholds.

The rest needs no triton: the generated source, the threshold rounding, the dispatch rules
and the heuristic table.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

import te_ext
from reference import coupled_series, random_series
from te_ext._triton import codegen, dispatch, heuristic

INTERPRETER = os.environ.get("TRITON_INTERPRET") == "1" and os.environ.get("TE_EXT_FUSED_CHILD") == "1"
ROOT = Path(__file__).resolve().parents[1]
TOL = 1e-12


def _triton_missing() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    if not (hasattr(torch.library, "triton_op") and hasattr(torch.library, "wrap_triton")):
        return f"torch {torch.__version__} has no torch.library.triton_op / wrap_triton (needs >= 2.6)"
    return None


# ---- the child run ----------------------------------------------------------------------

@pytest.mark.skipif(INTERPRETER, reason="this is the child run itself")
@pytest.mark.skipif(_triton_missing() is not None, reason=str(_triton_missing()))
def test_kernel_under_interpreter(tmp_path):
    env = dict(os.environ, TRITON_INTERPRET="1", TE_EXT_FUSED_CHILD="1",
               TE_EXT_TRITON_CACHE=str(tmp_path / "kernels"))
    env.pop("TE_EXT_TRITON_TILES", None)
    env.pop("TE_EXT_FUSED", None)
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", __file__, "-q", "-p", "no:cacheprovider", "-x",
         "-k", "interpreted", "-rs"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    assert " passed" in out and "skipped" not in out, out


# ---- interpreted tests (child only) ------------------------------------------------------

interpreted = pytest.mark.skipif(not INTERPRETER, reason="runs in the TRITON_INTERPRET=1 child")


def _series(seed, T, I, J, R=None, lag=1):
    rng = np.random.default_rng(seed)
    x = random_series(rng, T, I, R=R)
    return torch.from_numpy(x), torch.from_numpy(coupled_series(rng, x, J, lag=lag, noise=0.2))


def _check(x, y, k, l, delay, threshold=None):
    kw = dict(k=k, l=l, delay=delay, threshold=threshold)
    counts = dispatch.run("joint_counts", x, y, **kw)
    te = dispatch.run("transfer_entropy", x, y, **kw)
    assert counts is not None and te is not None
    assert counts.dtype == torch.int64 and te.dtype == torch.float64
    assert torch.equal(counts, te_ext.joint_counts(x, y, **kw))
    torch.testing.assert_close(te, te_ext.transfer_entropy(x, y, **kw), rtol=0, atol=TOL)
    return te


@interpreted
@pytest.mark.parametrize("delay", [1, 2])
@pytest.mark.parametrize("k,l", [(1, 1), (1, 2), (2, 1), (2, 2)])
def test_interpreted_matches_cpu_op(k, l, delay):
    x, y = _series(10 * k + l + delay, 300, 48, 40, lag=delay)
    te = _check(x, y, k, l, delay)
    assert te.max() > 0.1  # the coupled pairs carry information: not a vacuous comparison


@interpreted
def test_interpreted_tiles_replicates_strides(monkeypatch):
    # Small tiles: 2 x 2 programs with partial tiles at the edges, K steps that cross
    # replicate boundaries; int64 input read through transposed strides.
    monkeypatch.setenv("TE_EXT_TRITON_TILES", "16,16,64")
    x, y = _series(7, 60, 20, 18, R=2, lag=2)
    xs = x.to(torch.int64).transpose(1, 2).contiguous().transpose(1, 2)
    assert not xs.is_contiguous()
    _check(xs, y.to(torch.int8), 2, 1, 2)


@interpreted
def test_interpreted_constant_series_give_exactly_zero():
    x, y = _series(3, 300, 8, 8)
    x[:, 0], x[:, 1] = True, False
    y[:, 2], y[:, 3] = True, False
    for k, l in [(1, 1), (2, 2)]:
        te = _check(x, y, k, l, 1)
        assert (te[:2] == 0).all() and (te[:, 2:4] == 0).all()


@interpreted
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float64])
def test_interpreted_threshold(dtype):
    g = torch.Generator().manual_seed(5)
    thr = 0.1  # not representable: values at and around its rounding in dtype decide
    near = torch.tensor([thr], dtype=torch.float64).to(dtype)
    pool = torch.cat([near, torch.nextafter(near, torch.tensor([2.0], dtype=dtype)),
                      torch.nextafter(near, torch.tensor([-2.0], dtype=dtype)),
                      torch.tensor([-1.0, 0.0, 1.0], dtype=dtype)])
    x = pool[torch.randint(0, len(pool), (200, 24), generator=g)]
    y = pool[torch.randint(0, len(pool), (200, 16), generator=g)]
    _check(x, y, 1, 1, 1, threshold=thr)
    if dtype == torch.float32:
        _check(x, y, 2, 1, 1, threshold=-0.5)


@interpreted
def test_interpreted_bad_values_fall_back_to_the_op():
    x, y = _series(1, 100, 4, 4)
    bad = x.to(torch.int8)
    bad[5, 2] = 2
    assert dispatch.run("transfer_entropy", bad, y) is None
    with pytest.raises(ValueError, match="source contains the value 2"):
        te_ext.transfer_entropy(bad, y)  # the C++ op raises what the fused path declines
    f = torch.rand(100, 4)
    f[3, 1] = float("nan")
    assert dispatch.run("transfer_entropy", f, f, threshold=0.5) is None


# ---- no triton needed --------------------------------------------------------------------

@pytest.mark.parametrize("k,l", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 1)])
def test_generated_source(k, l):
    src = codegen.render(k, l)
    assert src == codegen.render(k, l)  # deterministic: stable Triton cache keys
    # One MMA per (source stream, target stream) of states >= 1, as the popcount path.
    assert src.count("tl.dot(") == ((1 << l) - 1) * ((1 << (k + 1)) - 1)
    # Every bin stored once in counts mode, every (ynext=0, ynext=1) bin pair mixed once.
    assert src.count("tl.store(out_ptr + pair * ") == 1 << (k + l + 1)
    assert src.count("pair_sum += _g(") == 1 << (k + l)
    compile(src, "generated", "exec")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_threshold_rounding_matches_double_comparison(dtype):
    g = torch.Generator().manual_seed(0)
    for thr in [0.1, -0.3, 1 / 3, 0.0, 1e-30, -1e-30, 2.0 ** -20, 1e300, -1e300, 65504.5]:
        exact = torch.tensor([thr], dtype=torch.float64)
        t = dispatch.threshold_in(thr, dtype, "cpu")
        assert t.dtype == dtype and float(t) <= thr
        around = exact.to(dtype)
        v = torch.cat([(torch.randn(2000, generator=g, dtype=torch.float64) * abs(thr)).to(dtype),
                       around, torch.nextafter(around, torch.tensor([np.inf], dtype=dtype)),
                       torch.nextafter(around, torch.tensor([-np.inf], dtype=dtype)),
                       torch.tensor([np.inf, -np.inf], dtype=dtype)])
        assert torch.equal(v > t, v.double() > thr), thr


def test_applicable_declines_what_the_kernel_does_not_take():
    b = torch.zeros(64, 4, dtype=torch.bool)
    f = torch.zeros(64, 4)
    assert dispatch.applicable(b, b, 1, 1, 1, None)
    assert dispatch.applicable(f, f, 2, 2, 3, 0.5)
    assert not dispatch.applicable(f, f, 1, 1, 1, None)  # floats need a threshold
    assert not dispatch.applicable(b, b, 1, 1, 1, 0.5)  # threshold on non-floats: C++ path
    assert not dispatch.applicable(f, f.double(), 1, 1, 1, 0.5)
    assert not dispatch.applicable(f, f, 1, 1, 1, float("nan"))
    assert not dispatch.applicable(b, b, 3, 2, 1, None)  # 7 x 15 streams: too many
    assert not dispatch.applicable(b, b, 1, 1, 64, None)  # T <= n0
    assert not dispatch.applicable(b, b[:63], 1, 1, 1, None)
    assert not dispatch.applicable(b, b, 0, 1, 1, None)
    assert not dispatch.applicable(b, b, True, 1, 1, None)
    assert not dispatch.applicable(b, b.unsqueeze(0), 1, 1, 1, None)
    assert not dispatch.applicable(b, b, 1, 1, 1, "0.5")
    # CPU calls never reach the fused kernel through te_ext.transfer_entropy.
    assert dispatch.maybe_transfer_entropy(b, b) is None


def test_heuristic_table(tmp_path, monkeypatch):
    table = {"device": "test", "fused": [{"k": 1, "l": 1, "min_pairs": 1 << 20, "min_obs": 2048}]}
    path = tmp_path / "gpu-heuristic-test.json"
    path.write_text(json.dumps(table))
    monkeypatch.setenv("TE_EXT_GPU_HEURISTIC", str(path))
    monkeypatch.delenv("TE_EXT_FUSED", raising=False)
    assert heuristic.prefer_fused(1024, 1024, 4095, 1, 1)
    assert not heuristic.prefer_fused(1024, 1023, 4095, 1, 1)
    assert not heuristic.prefer_fused(1024, 1024, 2047, 1, 1)
    assert not heuristic.prefer_fused(4096, 4096, 4095, 2, 1)
    monkeypatch.setenv("TE_EXT_FUSED", "0")
    assert not heuristic.prefer_fused(1024, 1024, 4095, 1, 1)
    monkeypatch.setenv("TE_EXT_FUSED", "1")
    assert heuristic.prefer_fused(16, 16, 100, 2, 2)
    monkeypatch.delenv("TE_EXT_FUSED")
    path.write_text(json.dumps({"fused": [{"k": 1, "l": 1, "min_pairs": "many"}]}))
    monkeypatch.setenv("TE_EXT_GPU_HEURISTIC", str(tmp_path / "other.json"))
    (tmp_path / "other.json").write_text(path.read_text())
    with pytest.raises(ValueError, match="min_pairs"):
        heuristic.prefer_fused(1024, 1024, 4095, 1, 1)


def test_no_table_means_no_fused_kernel(monkeypatch, tmp_path):
    monkeypatch.delenv("TE_EXT_FUSED", raising=False)
    monkeypatch.delenv("TE_EXT_GPU_HEURISTIC", raising=False)
    monkeypatch.setattr(heuristic, "RESULTS", tmp_path)
    assert heuristic.table_path() is None
    assert not heuristic.prefer_fused(8192, 8192, 8191, 1, 1)


# ---- on a GPU (skipped without one): every path, k, l in {1, 2, 3}, delays 1..3 ------------

@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.skipif(_triton_missing() is not None, reason=str(_triton_missing()))
@pytest.mark.parametrize("delay", [1, 2, 3])
@pytest.mark.parametrize("k,l", [(k, l) for k in (1, 2, 3) for l in (1, 2, 3)])
def test_cuda_fused_or_fallback_equals_cpu_op(k, l, delay):
    x, y = _series(900 + 10 * k + l + delay, 700, 70, 67, lag=delay)
    kw = dict(k=k, l=l, delay=delay)
    want_counts = te_ext.joint_counts(x, y, **kw)
    want_te = te_ext.transfer_entropy(x, y, **kw)
    xd, yd = x.cuda(), y.cuda()
    counts = dispatch.run("joint_counts", xd, yd, **kw)
    te = dispatch.run("transfer_entropy", xd, yd, **kw)
    fused = dispatch.applicable(xd, yd, k, l, delay, None)
    assert (counts is not None) == fused and (te is not None) == fused
    if fused:  # the fused kernel itself
        assert torch.equal(counts.cpu(), want_counts)
        torch.testing.assert_close(te.cpu(), want_te, rtol=0, atol=TOL)
    # and whatever transfer_entropy picks on CUDA, forced fused or not
    for forced in ("1", "0"):
        os.environ["TE_EXT_FUSED"] = forced
        try:
            got = te_ext.transfer_entropy(xd, yd, **kw)
        finally:
            os.environ.pop("TE_EXT_FUSED", None)
        torch.testing.assert_close(got.cpu(), want_te, rtol=0, atol=TOL)
