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
import math
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


def _interpreter_broken() -> str | None:
    """Triton 3.6's interpreter calls int() on 1-element numpy arrays, which numpy >= 2.4
    refuses (seen on the lent GPU machine: triton 3.6.0); 3.8.0 with numpy 2.4 works here."""
    if importlib.util.find_spec("triton") is None:
        return None
    from importlib.metadata import version

    def major_minor(v: str):
        return tuple(int(p) for p in v.split(".")[:2] if p.isdigit())

    triton_v, numpy_v = version("triton"), np.__version__
    if major_minor(triton_v) < (3, 8) and major_minor(numpy_v) >= (2, 4):
        return (f"triton {triton_v}'s interpreter fails with numpy {numpy_v} (int() of a 1-d array); "
                "needs triton >= 3.8 or numpy < 2.4")
    return None


# ---- the child run ----------------------------------------------------------------------

@pytest.mark.skipif(INTERPRETER, reason="this is the child run itself")
@pytest.mark.skipif(_triton_missing() is not None, reason=str(_triton_missing()))
@pytest.mark.skipif(_interpreter_broken() is not None, reason=str(_interpreter_broken()))
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
@pytest.mark.parametrize("k,l,split", [(1, 1, "2"), (1, 1, "9"), (2, 1, "3"), (1, 2, "3"),
                                       (2, 2, "3"), (1, 3, "2")])
def test_interpreted_split_observations(monkeypatch, k, l, split):
    # Split-K: each tile's observations in `split` parts of whole 16-step blocks (22 blocks: 9
    # parts of 3 leave the last part empty), partial counts summed by te_epilogue; the
    # marginals split the same way. Replicates put part boundaries inside and across them.
    monkeypatch.setenv("TE_EXT_TRITON_TILES", "32,32,16,1")
    monkeypatch.setenv("TE_EXT_TRITON_SPLIT", split)
    x, y = _series(40 + 10 * k + l, 170, 35, 37, R=2, lag=1)
    te = _check(x, y, k, l, 1)
    assert te.max() > 0.1
    x[:, :, 0] = True  # a constant source still gives exactly 0 through the split epilogue
    assert (_check(x, y, k, l, 1)[0] == 0).all()


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
    # Three kernels: the marginals, the MMAs with their epilogue, the split epilogue.
    marginals, rest = src.split(f"def {codegen.kernel_name(k, l)}(")
    fused, split = rest.split(f"def {codegen.epilogue_name(k, l)}(")
    assert f"def {codegen.marginals_name(k, l)}(" in marginals
    # Each epilogue stores every bin once in counts mode and mixes every (ynext=0, ynext=1)
    # bin pair once; the split one sums the partial planes of every stream product.
    for epilogue in (fused, split):
        assert epilogue.count("tl.store(out_ptr + pair * ") == 1 << (k + l + 1)
        assert epilogue.count("pair_sum += _g(") == 1 << (k + l)
    products = ((1 << l) - 1) * ((1 << (k + 1)) - 1)
    assert fused.count("tl.store(part_ptr") == products
    assert split.count("tl.load(part_ptr") == products and "tl.dot(" not in split
    # The marginals are counted by their own kernel, not inside the MMA loop.
    assert "tl.sum(" not in fused and "tl.dot(" not in marginals
    assert marginals.count("count_") == 3 * (((1 << l) - 1) + ((1 << (k + 1)) - 1))
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


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float32, torch.float64])
def test_threshold_bits_are_the_rounded_threshold(dtype):
    ints = {torch.float64: torch.int64, torch.float32: torch.int32}.get(dtype, torch.int16)
    for thr in [0.1, -0.3, 0.0, -0.0, 1e-30, 65504.5, -1e300]:
        bits = dispatch.threshold_bits(thr, dtype)
        back = torch.tensor([bits], dtype=ints).view(dtype)
        assert torch.equal(back, dispatch.threshold_in(thr, dtype, "cpu")), (thr, bits)


@interpreted
def test_interpreted_clog_table_is_built_once_per_centre_and_grows():
    from te_ext._triton import ops
    ops._TABLES.clear()
    assert [ops.clog_centre(n) for n in (0, 1, 15, 16, 17, 100, 4095, 4066)] == \
        [1, 1, 15, 16, 16, 96, 3840, 3840]
    t1 = ops.clog_table(100, "cpu")
    assert t1.numel() == 128 and ops.clog_table(97, "cpu") is t1  # the same centre: reused
    want = torch.tensor([0.0] + [v * math.log2(v / 96) for v in range(1, 128)], dtype=torch.float64)
    torch.testing.assert_close(t1, want, rtol=1e-15, atol=1e-13)
    assert t1[0] == 0 and t1[96] == 0  # f(centre) = centre * log2 1
    t2 = ops.clog_table(127, "cpu")  # another centre: another table
    assert t2 is not t1 and t2.numel() == 128 and t2[120] == 0
    for nobs in range(1, 10):
        ops.clog_table(nobs, "cpu")
    assert len(ops._TABLES) == ops._MAX_TABLES


def test_applicable_declines_a_table_larger_than_half_the_output():
    # nobs + 1 = 2^17 + 1 entries round up to 2^18 > max(I*J/2, 2^17): declined, while the
    # same series with many pairs (the table small next to the output) is taken.
    T = (1 << 17) + 1
    x = torch.zeros(T, 2, dtype=torch.bool)
    assert dispatch.table_size(T - 1) == 1 << 18
    assert not dispatch.applicable(x, x, 1, 1, 1, None)
    assert dispatch.applicable(x[: T - 1], x[: T - 1], 1, 1, 1, None)  # 2^17 entries: the floor
    wide = torch.zeros(T, 1024, dtype=torch.bool).expand(T, 1024)
    assert dispatch.applicable(wide, wide, 1, 1, 1, None)


def test_applicable_declines_what_the_kernel_does_not_take():
    b = torch.zeros(64, 4, dtype=torch.bool)
    f = torch.zeros(64, 4)
    assert dispatch.applicable(b, b, 1, 1, 1, None)
    assert dispatch.applicable(f, f, 2, 2, 3, 0.5)
    assert not dispatch.applicable(f, f, 1, 1, 1, None)  # floats need a threshold
    assert not dispatch.applicable(b, b, 1, 1, 1, 0.5)  # threshold on non-floats: C++ path
    assert not dispatch.applicable(f, f.double(), 1, 1, 1, 0.5)
    assert not dispatch.applicable(f, f, 1, 1, 1, float("nan"))
    if hasattr(torch, "float8_e4m3fn"):  # no bit-pattern threshold for it: the C++ path
        f8 = f.to(torch.float8_e4m3fn)
        assert not dispatch.applicable(f8, f8, 1, 1, 1, 0.5)
    assert not dispatch.applicable(b, b, 3, 2, 1, None)  # 7 x 15 streams: too many
    assert not dispatch.applicable(b, b, 1, 1, 64, None)  # T <= n0
    assert not dispatch.applicable(b, b[:63], 1, 1, 1, None)
    assert not dispatch.applicable(b, b, 0, 1, 1, None)
    assert not dispatch.applicable(b, b, True, 1, 1, None)
    assert not dispatch.applicable(b, b.unsqueeze(0), 1, 1, 1, None)
    assert not dispatch.applicable(b, b, 1, 1, 1, "0.5")
    # CPU calls never reach the fused kernel through te_ext.transfer_entropy / joint_counts.
    assert dispatch.maybe_transfer_entropy(b, b) is None
    assert dispatch.maybe_joint_counts(b, b) is None


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
    assert not heuristic.prefer_fused(1024, 1024, 4095, 1, 1, op="joint_counts")  # TE rule only
    monkeypatch.setenv("TE_EXT_FUSED", "1")
    assert heuristic.prefer_fused(16, 16, 100, 2, 2)
    monkeypatch.delenv("TE_EXT_FUSED")
    counts = tmp_path / "counts.json"
    counts.write_text(json.dumps({"device": "test", "fused": [
        {"op": "joint_counts", "k": 1, "l": 1, "min_pairs": 1, "min_obs": 1}]}))
    monkeypatch.setenv("TE_EXT_GPU_HEURISTIC", str(counts))
    assert heuristic.prefer_fused(2, 2, 10, 1, 1, op="joint_counts")
    assert not heuristic.prefer_fused(2, 2, 10, 1, 1)
    bad_op = tmp_path / "bad-op.json"
    bad_op.write_text(json.dumps({"fused": [{"op": "te", "k": 1, "l": 1, "min_pairs": 1, "min_obs": 1}]}))
    monkeypatch.setenv("TE_EXT_GPU_HEURISTIC", str(bad_op))
    with pytest.raises(ValueError, match="'op' must be one of"):
        heuristic.prefer_fused(2, 2, 10, 1, 1)
    monkeypatch.setenv("TE_EXT_GPU_HEURISTIC", str(path))
    path.write_text(json.dumps({"fused": [{"k": 1, "l": 1, "min_pairs": "many"}]}))
    monkeypatch.setenv("TE_EXT_GPU_HEURISTIC", str(tmp_path / "other.json"))
    (tmp_path / "other.json").write_text(path.read_text())
    with pytest.raises(ValueError, match="min_pairs"):
        heuristic.prefer_fused(1024, 1024, 4095, 1, 1)


def test_no_table_means_no_fused_kernel(monkeypatch, tmp_path):
    monkeypatch.delenv("TE_EXT_FUSED", raising=False)
    monkeypatch.delenv("TE_EXT_GPU_HEURISTIC", raising=False)
    monkeypatch.setattr(heuristic, "PACKAGED", tmp_path / "tables")
    heuristic._shipped.cache_clear()
    assert heuristic.table_path() is None
    assert heuristic.table_path("NVIDIA H200") is None
    assert not heuristic.prefer_fused(8192, 8192, 8191, 1, 1)
    assert heuristic.measured_tiles(1, 1) is None
    heuristic._shipped.cache_clear()


def _fake_gpu(monkeypatch, name):
    monkeypatch.setattr(heuristic, "_name_of", lambda device: name)


def test_table_is_found_per_gpu_model(monkeypatch, tmp_path):
    monkeypatch.delenv("TE_EXT_FUSED", raising=False)
    monkeypatch.delenv("TE_EXT_GPU_HEURISTIC", raising=False)
    packaged = tmp_path / "tables"
    packaged.mkdir()
    monkeypatch.setattr(heuristic, "PACKAGED", packaged)
    heuristic._shipped.cache_clear()
    rule = lambda n: {"k": 1, "l": 1, "min_pairs": n, "min_obs": 1}  # noqa: E731
    (packaged / "gpu-heuristic-nvidia-h200.json").write_text(
        json.dumps({"device": "NVIDIA H200", "fused": [rule(100)]}))
    assert heuristic.table_slug("NVIDIA A100-SXM4-80GB") == "nvidia-a100-sxm4-80gb"
    _fake_gpu(monkeypatch, "NVIDIA H200")
    assert heuristic.table_path("NVIDIA H200").name == "gpu-heuristic-nvidia-h200.json"
    assert heuristic.prefer_fused(10, 10, 5, 1, 1, "cuda")
    assert not heuristic.prefer_fused(9, 10, 5, 1, 1, "cuda")
    _fake_gpu(monkeypatch, "NVIDIA H100 80GB HBM3")  # no table for this model: never fused
    assert not heuristic.prefer_fused(8192, 8192, 8191, 1, 1, "cuda")
    (packaged / "gpu-heuristic-nvidia-a100.json").write_text(json.dumps(
        {"device": "NVIDIA A100", "fused": [rule(50)],
         "tiles": [{"k": 1, "l": 1, "block_i": 64, "block_j": 32, "block_k": 128, "num_warps": 4}]}))
    _fake_gpu(monkeypatch, "NVIDIA A100")
    assert heuristic.prefer_fused(50, 1, 5, 1, 1, "cuda")
    assert heuristic.measured_tiles(1, 1, "cuda")["block_k"] == 128
    assert heuristic.measured_tiles(2, 1, "cuda") is None
    _fake_gpu(monkeypatch, None)  # a CPU tensor: no model, no table
    assert not heuristic.prefer_fused(8192, 8192, 8191, 1, 1, "cpu")
    heuristic._shipped.cache_clear()


def test_the_package_never_reads_the_checkout():
    # Layers look down: the library finds tables in its own package data only.
    source = (ROOT / "te_ext" / "_triton" / "heuristic.py").read_text()
    assert '"bench"' not in source and "parents[" not in source


def test_shipped_h200_table_never_chooses_the_fused_kernel():
    # Measured on an H200 (2026-12-04): the fused kernel lost at every shape to the C++ path.
    table = json.loads((ROOT / "te_ext" / "_triton" / "tables" / "gpu-heuristic-nvidia-h200.json").read_text())
    assert table["device"] == "NVIDIA H200" and table["fused"] == []


@pytest.mark.parametrize("tiles,match", [
    ({"k": 1, "l": 1, "block_i": 48, "block_j": 64, "block_k": 64, "num_warps": 4}, "powers of two"),
    ({"k": 1, "l": 1, "block_i": 64, "block_j": 64, "block_k": 64}, "num_warps"),
    ({"k": 1, "l": 1, "block_i": 8, "block_j": 64, "block_k": 64, "num_warps": 4}, "powers of two"),
])
def test_bad_tiles_in_a_table_are_refused(monkeypatch, tmp_path, tiles, match):
    path = tmp_path / f"t{abs(hash(json.dumps(tiles, sort_keys=True)))}.json"
    path.write_text(json.dumps({"device": "x", "fused": [], "tiles": [tiles]}))
    monkeypatch.setenv("TE_EXT_GPU_HEURISTIC", str(path))
    with pytest.raises(ValueError, match=match):
        heuristic.measured_tiles(1, 1)


def _gpu_bench_fused():
    spec = importlib.util.spec_from_file_location("gpu_bench_fused", ROOT / "scripts" / "gpu_bench_fused.py")
    bench = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench)
    return bench


def test_rules_take_the_fused_kernel_from_where_it_always_won():
    bench = _gpu_bench_fused()
    row = lambda I, te, fused, **kw: dict(I=I, J=I, T=4096, k=1, l=1, nobs=4095,  # noqa: E731
                                         te_ext_ms=te, fused_ms=fused, **kw)
    rows = [row(256, 1.0, 2.0), row(1024, 1.0, 0.5, te_ext_counts_ms=1.0, fused_counts_ms=2.0),
            row(2048, 2.0, 3.0, te_ext_counts_ms=3.0, fused_counts_ms=1.0),
            row(4096, 5.0, 4.0, te_ext_counts_ms=9.0, fused_counts_ms=4.0), row(8192, 9.0, 8.0)]
    # 1024 won, 2048 lost: TE from 4096 on (every larger size won too).
    assert bench.rules(rows) == [{"k": 1, "l": 1, "min_pairs": 4096 * 4096, "min_obs": 4095}]
    assert bench.rules(rows, "joint_counts") == [
        {"k": 1, "l": 1, "min_pairs": 2048 * 2048, "min_obs": 4095, "op": "joint_counts"}]
    assert bench.rules([row(256, 1.0, 2.0)]) == []


def test_install_ships_a_record_under_the_model_name(monkeypatch, tmp_path):
    bench = _gpu_bench_fused()
    monkeypatch.setattr(heuristic, "PACKAGED", tmp_path)
    record = tmp_path / "gpu-heuristic-2026-03-01_000000.json"
    record.write_text(json.dumps({"device": "NVIDIA H200", "fused": [], "measurements": [1, 2],
                                  "tiles": []}))
    out = bench.install(record)
    assert out.name == "gpu-heuristic-nvidia-h200.json"
    shipped = json.loads(out.read_text())
    assert shipped["device"] == "NVIDIA H200" and "measurements" not in shipped
    assert shipped["measured_in"] == "bench/results/gpu-heuristic-2026-03-01_000000.json"


def test_split_count_rule(monkeypatch):
    from te_ext._triton import geometry as kernels

    monkeypatch.delenv("TE_EXT_TRITON_SPLIT", raising=False)
    monkeypatch.delenv("TRITON_INTERPRET", raising=False)
    monkeypatch.setattr(kernels, "sm_count",
                        lambda device: 132 if torch.device(device).type == "cuda" else None)
    cuda = torch.device("cuda", 0)
    # 256^2 pairs in 64x64 tiles: 16 programs for 132 SMs; 4095 observations are 64 blocks,
    # so 8 splits of 8 blocks (16 would leave 4 blocks a split).
    assert kernels.split_count(16, 4095, 64, cuda) == 8
    assert kernels.split_count(16, 1 << 20, 64, cuda) == 16  # capped at MAX_SPLIT
    assert kernels.split_count(256, 4095, 64, cuda) == 1  # 1024^2: the tiles fill the SMs
    assert kernels.split_count(100, 4095, 64, cuda) == 2
    assert kernels.split_count(16, 900, 64, cuda) == 1  # 15 blocks: too short to split
    assert kernels.split_count(16, 4095, 64, torch.device("cpu")) == 1
    monkeypatch.setenv("TE_EXT_TRITON_SPLIT", "5")
    assert kernels.split_count(10**6, 10, 64, cuda) == 5
    monkeypatch.setenv("TE_EXT_TRITON_SPLIT", "0")
    with pytest.raises(ValueError, match="TE_EXT_TRITON_SPLIT"):
        kernels.split_count(16, 4095, 64, cuda)


def test_split_partials_stay_within_programs_times_tile():
    # What a split launch adds: int32 partial counts, products x tile per program. With the
    # rule's programs < SMs * 2 that is O(SMs x tile), whatever I, J and T are.
    from te_ext._triton import kernels

    for (k, l), t in kernels.STATIC_TILES.items():
        tile = t.block_i * t.block_j
        products = len(codegen.stream_products(k, l))
        assert products == ((1 << l) - 1) * ((1 << (k + 1)) - 1)
        worst = 2 * 132 * tile * products * 4  # bytes, an H100's 132 SMs
        assert worst <= 64 << 20, (k, l, worst)


# ---- the dispatch decision: forced never falls back silently; the automatic path counts ------

@pytest.fixture
def fake_gpu(monkeypatch):
    """dispatch.choose on CPU tensors as if they were on an H100: its shared memory per block,
    sm_90 tiles, a table that chooses the fused kernel, and a launch that records its calls."""
    from te_ext._triton import geometry

    launched = []
    monkeypatch.setattr(geometry, "max_shared_bytes", lambda device: 232448)
    monkeypatch.setattr(geometry, "tiles", lambda k, l, device=None, cc=None: geometry.STATIC_TILES[(k, l)])
    monkeypatch.setattr(heuristic, "prefer_fused", lambda *a, **kw: True)
    monkeypatch.setattr(dispatch, "ops", lambda: object())
    monkeypatch.setattr(dispatch, "unavailable_reason", lambda: None)
    monkeypatch.setattr(dispatch, "_launch", lambda module, which, *args: launched.append((which, args)) or "fused")
    monkeypatch.delenv("TE_EXT_FUSED", raising=False)
    dispatch.FALLBACKS.clear()
    yield launched
    dispatch.FALLBACKS.clear()


def test_forced_kernel_that_cannot_run_raises_with_its_reason(fake_gpu, monkeypatch):
    x, y = _series(1, 100, 5, 4)
    monkeypatch.setenv("TE_EXT_FUSED", "1")
    with pytest.raises(RuntimeError, match=r"cannot run this call: \(k, l\) = \(2, 3\) has 49 stream products"):
        dispatch.choose("transfer_entropy", x, y, 2, 3, 1, None)
    with pytest.raises(RuntimeError, match="reads float16/bfloat16/float32/float64"):
        dispatch.choose("joint_counts", x.to(torch.int32), y.to(torch.int32), 1, 1, 1, 0.5)
    assert dispatch.choose("transfer_entropy", x, y, 1, 1, 1, None) == "fused"
    # invalid input is not the kernel's to refuse: the C++ op raises the documented error
    assert dispatch.choose("transfer_entropy", x, y, 0, 1, 1, None) is None
    assert dispatch.choose("transfer_entropy", x.float(), y.float(), 1, 1, 1, None) is None
    two = x.to(torch.uint8)
    two[3, 1] = 2
    assert dispatch.choose("transfer_entropy", two, y, 1, 1, 1, None) is None
    assert dispatch.fallback_counts() == {}
    monkeypatch.setenv("TE_EXT_FUSED", "0")
    assert dispatch.choose("transfer_entropy", x, y, 1, 1, 1, None) is None


def test_forced_kernel_without_triton_raises(fake_gpu, monkeypatch):
    x, y = _series(2, 100, 5, 4)
    monkeypatch.setattr(dispatch, "unavailable_reason", lambda: "triton could not be loaded (ImportError: x)")
    monkeypatch.setenv("TE_EXT_FUSED", "1")
    with pytest.raises(RuntimeError, match="triton could not be loaded"):
        dispatch.choose("transfer_entropy", x, y, 1, 1, 1, None)
    monkeypatch.delenv("TE_EXT_FUSED")
    with pytest.warns(RuntimeWarning, match="triton could not be loaded"):
        assert dispatch.choose("transfer_entropy", x, y, 1, 1, 1, None) is None
    assert dispatch.fallback_counts() == {"triton could not be loaded (ImportError: x)": 1}


def test_automatic_path_falls_back_and_counts_each_fallback(fake_gpu, monkeypatch):
    x, y = _series(3, 100, 5, 4)

    def failing_launch(*args):
        raise RuntimeError("out of resource: shared memory, Required: 300000")

    monkeypatch.setattr(dispatch, "_launch", failing_launch)
    with pytest.warns(RuntimeWarning, match="the C\\+\\+ op runs instead"):
        assert dispatch.choose("transfer_entropy", x, y, 1, 1, 1, None) is None
    assert dispatch.choose("transfer_entropy", x, y, 1, 1, 1, None) is None  # warned once
    assert dispatch.choose("transfer_entropy", x, y, 2, 3, 1, None) is None
    counts = dispatch.fallback_counts()
    assert sorted(counts.values()) == [1, 2], counts
    assert any("out of resource" in reason for reason in counts)
    monkeypatch.setenv("TE_EXT_FUSED", "1")  # forced: the launch's own error, not a fallback
    with pytest.raises(RuntimeError, match="out of resource"):
        dispatch.choose("transfer_entropy", x, y, 1, 1, 1, None)


@pytest.mark.parametrize("k,l,dtype,declined", [
    (2, 2, torch.float64, True), (1, 3, torch.float64, True), (3, 1, torch.float64, False),
    (2, 2, torch.float32, False), (1, 1, torch.float64, False), (2, 2, torch.bool, False)])
def test_shared_memory_declines_before_launch(fake_gpu, monkeypatch, k, l, dtype, declined):
    # sm_90 tiles, 232,448 B a block: float64 with a threshold needs 256,000 B at (2, 2) and
    # 296,960 B at (1, 3) (the compiled kernels' metadata; test_fused_triton_aot.py checks the
    # model against them), which would raise OutOfResources at launch.
    x, y = _series(4, 100, 5, 4)
    thr = None if dtype == torch.bool else 0.5
    xs, ys = (x, y) if dtype == torch.bool else (x.to(dtype), y.to(dtype))
    why = dispatch.why_not(xs, ys, k, l, 1, thr)
    if declined:
        assert why is not None and why[0] == dispatch.UNSUPPORTED and "shared memory" in why[1], why
        monkeypatch.setenv("TE_EXT_FUSED", "1")
        with pytest.raises(RuntimeError, match="B of shared memory per block, over this GPU's 232448 B"):
            dispatch.choose("transfer_entropy", xs, ys, k, l, 1, thr)
        assert fake_gpu == []  # never launched
    else:
        assert why is None, why


def test_shared_memory_model_numbers():
    from te_ext._triton import geometry

    t = geometry.STATIC_TILES
    assert geometry.shared_bytes(2, 2, 8, t[(2, 2)]) == 256000
    assert geometry.shared_bytes(1, 3, 8, t[(1, 3)]) == 296960
    assert geometry.shared_bytes(1, 1, 1, t[(1, 1)]) == 40960
    assert geometry.shared_bytes(1, 1, 1, geometry.STATIC_TILES_SM80[(1, 1)]) == 34816
    assert geometry.max_shared_bytes(torch.device("cpu")) is None


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
    # and whatever transfer_entropy / joint_counts pick on CUDA, forced fused or not; a forced
    # kernel that cannot take the call raises with its reason instead of falling back
    for forced in ("1", "0"):
        os.environ["TE_EXT_FUSED"] = forced
        try:
            if forced == "1" and not fused:
                with pytest.raises(RuntimeError, match="TE_EXT_FUSED=1 forces the fused Triton kernel"):
                    te_ext.transfer_entropy(xd, yd, **kw)
                continue
            got = te_ext.transfer_entropy(xd, yd, **kw)
            got_counts = te_ext.joint_counts(xd, yd, **kw)
        finally:
            os.environ.pop("TE_EXT_FUSED", None)
        torch.testing.assert_close(got.cpu(), want_te, rtol=0, atol=TOL)
        assert torch.equal(got_counts.cpu(), want_counts)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.skipif(_triton_missing() is not None, reason=str(_triton_missing()))
@pytest.mark.parametrize("split", [None, "3"])
@pytest.mark.parametrize("k,l", [(1, 1), (2, 1), (1, 2), (2, 2), (3, 1), (1, 3)])
def test_cuda_split_launch_equals_cpu_op(monkeypatch, k, l, split):
    # 200 x 130 pairs, T = 3000: 4 x 5 tiles, so the rule splits the observations (unless the
    # GPU has under 20 SMs); "3" forces a split that does not divide the blocks evenly.
    if split is None:
        monkeypatch.delenv("TE_EXT_TRITON_SPLIT", raising=False)
    else:
        monkeypatch.setenv("TE_EXT_TRITON_SPLIT", split)
    x, y = _series(77 + k + l, 3000, 200, 130, lag=1)
    kw = dict(k=k, l=l, delay=1)
    counts = dispatch.run("joint_counts", x.cuda(), y.cuda(), **kw)
    te = dispatch.run("transfer_entropy", x.cuda(), y.cuda(), **kw)
    assert torch.equal(counts.cpu(), te_ext.joint_counts(x, y, **kw))
    torch.testing.assert_close(te.cpu(), te_ext.transfer_entropy(x, y, **kw), rtol=0, atol=TOL)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
@pytest.mark.skipif(_triton_missing() is not None, reason=str(_triton_missing()))
@pytest.mark.parametrize("split", ["1", "4"])
def test_cuda_fused_op_under_torch_compile(monkeypatch, split):
    # triton_op: torch.compile sees the kernels (no graph break with fullgraph=True).
    monkeypatch.setenv("TE_EXT_TRITON_SPLIT", split)
    ops = dispatch.ops()
    x, y = _series(5, 1500, 96, 80, lag=1)
    compiled = torch.compile(lambda a, b: ops.transfer_entropy_fused(a, b, 1, 1, 1, None),
                             fullgraph=True)
    got = compiled(x.cuda(), y.cuda())
    torch.testing.assert_close(got.cpu(), te_ext.transfer_entropy(x, y), rtol=0, atol=TOL)
