"""The fused Triton kernels compiled for sm_80 and sm_90 on this GPU-less machine.

``tests/test_fused_triton.py`` checks what the kernels compute (under the Triton
interpreter); this file checks that the same kernels lower to GPU code at all, and that the
code is what the design promises: the counting runs on the int8 tensor cores (``wgmma`` on
sm_90, ``mma.sync`` on sm_80) and, at k = l = 1 with the default tiles, ptxas keeps the kernel
within a small spill budget. Those are static properties of the compiled code (deterministic
for a given Triton), not timings. Skips with a reason where triton or its ptxas is missing.
"""

from __future__ import annotations

import importlib.util

import pytest
import torch


def _missing() -> str | None:
    if importlib.util.find_spec("triton") is None:
        return "triton is not installed"
    try:
        from triton.backends.compiler import GPUTarget  # noqa: F401
    except ImportError:
        return "this triton has no GPUTarget (ahead-of-time compilation)"
    from te_ext._triton import aot

    if aot.ptxas_path() is None:
        return "triton's bundled ptxas is missing"
    return None


pytestmark = pytest.mark.skipif(_missing() is not None, reason=str(_missing()))

# Spill bytes per thread that ptxas may use at k = l = 1 with the default tiles: the
# epilogue's few spilled registers run once per tile, not per K step (2026-11: 48 B on
# sm_90 with triton 3.8; 7.5 KB before the marginals kernel and the ordered gathers).
SPILL_BUDGET = 256


@pytest.fixture(autouse=True)
def _own_triton_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TRITON_CACHE_DIR", str(tmp_path / "triton-cache"))  # a real compile
    monkeypatch.delenv("TE_EXT_TRITON_TILES", raising=False)


@pytest.mark.parametrize("cc,instruction", [(90, "wgmma.mma_async"), (80, "mma.sync")])
def test_te_kernel_uses_int8_tensor_cores(cc, instruction):
    from te_ext._triton import aot

    kernel, _ = aot.compile_for(cc, 1, 1)
    ptx = kernel.asm["ptx"]
    assert len(kernel.asm["cubin"]) > 0
    mma = [line for line in ptx.splitlines() if instruction in line]
    assert mma and all(".s32.s8.s8" in line for line in mma), mma[:3]
    assert aot.int8_mma_instructions(ptx) == len(mma)
    assert "f64" in ptx  # the float64 epilogue is in this kernel, not a second pass


@pytest.mark.parametrize("cc", [80, 90])
def test_default_tiles_stay_within_the_spill_budget(cc):
    # Each architecture's default tiles (sm_80: 32x64, mma.sync; sm_90: 64x64, wgmma).
    from te_ext._triton import aot

    facts = aot.static_facts(cc, 1, 1)
    assert facts.registers <= 255
    assert facts.spill_store_bytes <= SPILL_BUDGET, facts


def test_threshold_and_counts_variants_compile():
    from te_ext._triton import aot

    # float32 input: the threshold's bit pattern is bitcast in the kernel; counts: int64 stores.
    kernel, _ = aot.compile_for(90, 1, 1, torch.float32, threshold=True, counts=True)
    assert aot.int8_mma_instructions(kernel.asm["ptx"]) > 0
    marginals = aot.compile_marginals_for(90, 1, 1, torch.bfloat16, threshold=True)
    assert len(marginals.asm["cubin"]) > 0


def test_int8_mma_counter_reads_both_instruction_forms():
    from te_ext._triton import aot

    ptx = "\n".join([
        "\twgmma.mma_async.sync.aligned.m64n64k32.s32.s8.s8 {%r1}, {%r2}, %rd3, %p4;",
        "\tmma.sync.aligned.m16n8k32.row.col.s32.s8.s8.s32 {%r1}, {%r2}, {%r3}, {%r4};",
        "\tmma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%f1}, {%r2}, {%r3}, {%f4};",
        "\twgmma.fence.sync.aligned;",
    ])
    assert aot.int8_mma_instructions(ptx) == 2


def test_static_tiles_cover_every_pair_the_dispatcher_takes():
    from te_ext._triton import dispatch, kernels

    taken = {(k, l) for k in range(1, 6) for l in range(1, 6)
             if ((1 << l) - 1) * ((1 << (k + 1)) - 1) <= dispatch.MAX_STREAM_PRODUCTS}
    for table in (kernels.STATIC_TILES, kernels.STATIC_TILES_SM80):
        assert set(table) == taken
        for t in table.values():
            assert all(v >= 16 and v & (v - 1) == 0 for v in (t.block_i, t.block_j, t.block_k))
    # The architecture picks the table; wgmma needs 64-row blocks from sm_90 on.
    assert kernels.tiles(1, 1, cc=80) == kernels.STATIC_TILES_SM80[(1, 1)]
    assert kernels.tiles(1, 1, cc=90) == kernels.STATIC_TILES[(1, 1)]
    assert all(t.block_i % 64 == 0 for t in kernels.STATIC_TILES.values())


def test_split_launch_kernels_compile_within_the_spill_budget():
    # The split variant of the MMA kernel (partial stores, no epilogue) at k = l = 1, and the
    # split epilogue and the marginals kernel for every (k, l) the dispatcher takes, on sm_90.
    from te_ext._triton import aot, kernels

    kernel, _ = aot.compile_for(90, 1, 1, split=4)
    ptx = kernel.asm["ptx"]
    assert aot.int8_mma_instructions(ptx) > 0 and "f64" not in ptx  # no epilogue in it
    assert aot.ptxas_usage(ptx, 90)["spill_store_bytes"] == 0
    for k, l in kernels.STATIC_TILES:
        epilogue = aot.compile_epilogue_for(90, k, l, split=4, marg_split=2)
        assert aot.ptxas_usage(epilogue.asm["ptx"], 90)["spill_store_bytes"] == 0, (k, l)
        marginals = aot.compile_marginals_for(90, k, l)
        assert aot.ptxas_usage(marginals.asm["ptx"], 90)["spill_store_bytes"] <= 64, (k, l)


@pytest.mark.parametrize("cc,k,l,dtype", [(90, 2, 2, torch.float64), (90, 1, 3, torch.float64),
                                          (80, 1, 1, torch.bool), (90, 2, 1, torch.float16)])
def test_shared_memory_model_matches_the_compiled_kernel(cc, k, l, dtype):
    # dispatch declines a call from geometry.shared_bytes before any launch: the model must be
    # what Triton allocates (metadata.shared), or a launch it lets through raises OutOfResources.
    from te_ext._triton import aot, geometry

    kernel, t = aot.compile_for(cc, k, l, dtype, threshold=dtype != torch.bool)
    itemsize = torch.empty(0, dtype=dtype).element_size()
    assert geometry.shared_bytes(k, l, itemsize, t) == kernel.metadata.shared
