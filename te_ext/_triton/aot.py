"""The fused kernel compiled ahead of time for a GPU architecture, on a machine with no GPU.

Triton compiles for a named target (``GPUTarget("cuda", 90, 32)``) without a driver, and its
bundled ``ptxas`` assembles the PTX; so CI can prove, with no GPU, that every generated
kernel lowers to a cubin, that its counting runs on the int8 tensor cores (``mma`` /
``wgmma`` ``.s8`` instructions), and how many registers and spill bytes ``ptxas`` gives it.
Those are static facts, not timings: ``scripts/triton_static_report.py`` records them and
``tests/test_fused_triton_aot.py`` checks the first two.

The specialization mirrors what Triton's JIT does for a real launch on a contiguous
``[T, N]`` input with ``N`` and ``T * N`` multiples of 16: 16-byte-aligned pointers, the
column strides equal to 1 and ``delay``/``n0`` equal to 1 turned into constants (Triton
specializes integer arguments equal to 1), the other strides and the sizes marked
divisible by 16.
"""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
from dataclasses import asdict, dataclass
from typing import Dict, Optional

import torch

from . import codegen, kernels

# Triton's name for each arch: sm_90 needs the "a" features for wgmma.
PTXAS_ARCH = {80: "sm_80", 86: "sm_86", 89: "sm_89", 90: "sm_90a"}

_POINTER = {torch.bool: "*u8", torch.uint8: "*u8", torch.int8: "*i8", torch.int16: "*i16",
            torch.int32: "*i32", torch.int64: "*i64", torch.float16: "*fp16",
            torch.bfloat16: "*bf16", torch.float32: "*fp32", torch.float64: "*fp64"}


@dataclass(frozen=True)
class StaticFacts:
    """What ptxas reports for one compiled kernel (per thread: registers and spill bytes)."""
    cc: int
    k: int
    l: int
    dtype: str
    threshold: bool
    counts: bool
    tiles: str
    registers: int
    spill_store_bytes: int
    spill_load_bytes: int
    shared_bytes: int
    int8_mma_instructions: int
    cubin_bytes: int

    def as_dict(self) -> Dict:
        return asdict(self)


def ptxas_path() -> Optional[str]:
    """Triton's bundled ptxas (the one it compiles with), or None."""
    import triton

    path = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
    return path if os.access(path, os.X_OK) else None


def specialization(k: int, l: int, dtype: torch.dtype, threshold: bool, counts: bool,
                   delay: int = 1, split: int = 1, marg_split: int = 1, cc: int = 90):
    """(signature, constexprs, attrs) of a launch on contiguous inputs (see the module doc)."""
    if dtype not in _POINTER:
        raise ValueError(f"specialization: dtype {dtype} is not an input the fused kernel reads")
    names = codegen.ARGS.replace(" ", "").split(",")
    n0 = max(k, l - 1 + delay)
    ptr = _POINTER[dtype]
    signature = {"x_ptr": ptr, "y_ptr": ptr, "thr_bits": "i64" if dtype == torch.float64 else "i32",
                 "clog_ptr": "*fp64", "xmarg_ptr": "*i32", "ymarg_ptr": "*i32",
                 "out_ptr": "*i32" if split > 1 else "*i64" if counts else "*fp64",
                 "part_ptr": "*i32"}  # a split launch passes xmarg as the unused out_ptr
    constexprs = {"sxc": 1, "syc": 1}
    for name, value in (("n0", n0), ("delay", delay)):
        if value == 1:
            constexprs[name] = 1
    for name in names:
        if name not in signature:
            signature[name] = "constexpr" if name in constexprs else "i32"
    t = kernels.tiles(k, l, cc=cc)
    constexprs.update(HAS_THRESHOLD=threshold, OUT_COUNTS=counts, BLOCK_I=t.block_i,
                      BLOCK_J=t.block_j, BLOCK_K=t.block_k, GROUP_I=t.group_i,
                      PARTIAL=split > 1)
    for name, value in (("n_split", split), ("marg_split", marg_split)):
        if value == 1:  # Triton turns an integer argument equal to 1 into a constant
            constexprs[name] = 1
            signature[name] = "constexpr"
    for name in ("HAS_THRESHOLD", "OUT_COUNTS", "BLOCK_I", "BLOCK_J", "BLOCK_K", "GROUP_I",
                 "PARTIAL"):
        signature[name] = "constexpr"
    divisible = {"x_ptr", "y_ptr", "clog_ptr", "xmarg_ptr", "ymarg_ptr", "out_ptr", "part_ptr",
                 "I", "J", "sxr", "sxt", "syr", "syt"}
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in divisible}
    return signature, constexprs, attrs, t


def compile_for(cc: int, k: int, l: int, dtype: torch.dtype = torch.bool,
                threshold: bool = False, counts: bool = False, delay: int = 1, split: int = 1):
    """The fused kernel's CompiledKernel for compute capability ``cc`` (e.g. 80, 90), and its
    tiles; needs no GPU. ``split`` > 1: the variant that stores partial cross counts."""
    import triton
    from triton.backends.compiler import GPUTarget

    signature, constexprs, attrs, t = specialization(k, l, dtype, threshold, counts, delay,
                                                     split, cc=cc)
    source = triton.compiler.ASTSource(fn=kernels.fused_kernel(k, l), signature=signature,
                                       constexprs=constexprs, attrs=attrs)
    return triton.compile(source, target=GPUTarget("cuda", cc, 32),
                          options={"num_warps": t.num_warps}), t


def compile_marginals_for(cc: int, k: int, l: int, dtype: torch.dtype = torch.bool,
                          threshold: bool = False, delay: int = 1):
    """The per-neuron state-count kernel's CompiledKernel (launched before the fused one)."""
    import triton
    from triton.backends.compiler import GPUTarget

    signature, constexprs, attrs, _ = specialization(k, l, dtype, threshold, False, delay)
    names = codegen.MARGINAL_ARGS.replace(" ", "").split(",")
    keep = set(names)
    signature = {n: v for n, v in signature.items() if n in keep}
    constexprs = {n: v for n, v in constexprs.items() if n in keep or n == "HAS_THRESHOLD"}
    constexprs.update(BLOCK_N=kernels.MARGINAL_BLOCK_N, BLOCK_K=kernels.marginal_block_k(k, l))
    for name in ("HAS_THRESHOLD", "BLOCK_N", "BLOCK_K"):
        signature[name] = "constexpr"
    old = codegen.ARGS.replace(" ", "").split(",")
    attrs = {(names.index(old[i[0]]),): v for i, v in attrs.items() if old[i[0]] in keep}
    source = triton.compiler.ASTSource(fn=kernels.marginals_kernel(k, l), signature=signature,
                                       constexprs=constexprs, attrs=attrs)
    return triton.compile(source, target=GPUTarget("cuda", cc, 32), options={"num_warps": kernels.MARGINAL_NUM_WARPS})


def compile_epilogue_for(cc: int, k: int, l: int, counts: bool = False, split: int = 2,
                         marg_split: int = 1):
    """The split epilogue's CompiledKernel (sums ``split`` partial planes, then the epilogue)."""
    import triton
    from triton.backends.compiler import GPUTarget

    names = codegen.EPILOGUE_ARGS.replace(" ", "").split(",")
    signature = {"part_ptr": "*i32", "clog_ptr": "*fp64", "xmarg_ptr": "*i32",
                 "ymarg_ptr": "*i32", "out_ptr": "*i64" if counts else "*fp64",
                 "I": "i32", "J": "i32", "nobs": "i32", "n_split": "i32", "marg_split": "i32"}
    block_i, block_j = kernels.epilogue_blocks(k, l)
    constexprs = dict(OUT_COUNTS=counts, BLOCK_I=block_i, BLOCK_J=block_j)
    if marg_split == 1:
        constexprs["marg_split"] = 1
    for name in constexprs:
        signature[name] = "constexpr"
    divisible = {"part_ptr", "clog_ptr", "xmarg_ptr", "ymarg_ptr", "out_ptr", "I", "J"}
    attrs = {(names.index(n),): [["tt.divisibility", 16]] for n in divisible}
    source = triton.compiler.ASTSource(fn=kernels.epilogue_kernel(k, l), signature=signature,
                                       constexprs=constexprs, attrs=attrs)
    return triton.compile(source, target=GPUTarget("cuda", cc, 32),
                          options={"num_warps": kernels.EPILOGUE_NUM_WARPS})


def int8_mma_instructions(ptx: str) -> int:
    """PTX lines issuing an int8 tensor-core MMA (``mma.sync`` on sm_80, ``wgmma`` on sm_90)."""
    return sum(1 for line in ptx.splitlines()
               if re.search(r"\b(wgmma\.mma_async|mma\.sync)\S*\.s32\.s8\.s8", line))


def ptxas_usage(ptx: str, cc: int) -> Dict[str, int]:
    """Registers and spill bytes per thread, from ``ptxas -v`` on the kernel's PTX."""
    ptxas = ptxas_path()
    if ptxas is None:
        raise RuntimeError("ptxas_usage: triton's bundled ptxas is missing")
    with tempfile.TemporaryDirectory() as tmp:
        src = os.path.join(tmp, "kernel.ptx")
        with open(src, "w") as f:
            f.write(ptx)
        proc = subprocess.run([ptxas, "-v", f"-arch={PTXAS_ARCH[cc]}", src, "-o",
                               os.path.join(tmp, "kernel.cubin")],
                              capture_output=True, text=True, timeout=900)
    if proc.returncode != 0:
        raise RuntimeError(f"ptxas failed on the kernel's PTX:\n{proc.stderr}")
    report = proc.stderr

    def number(pattern: str) -> int:
        m = re.search(pattern, report)
        return int(m.group(1)) if m else 0

    return {"registers": number(r"Used (\d+) registers"),
            "spill_store_bytes": number(r"(\d+) bytes spill stores"),
            "spill_load_bytes": number(r"(\d+) bytes spill loads")}


def static_facts(cc: int, k: int, l: int, dtype: torch.dtype = torch.bool,
                 threshold: bool = False, counts: bool = False) -> StaticFacts:
    kernel, t = compile_for(cc, k, l, dtype, threshold, counts)
    ptx = kernel.asm["ptx"]
    usage = ptxas_usage(ptx, cc)
    return StaticFacts(cc=cc, k=k, l=l, dtype=str(dtype).replace("torch.", ""),
                       threshold=threshold, counts=counts,
                       tiles=f"{t.block_i}x{t.block_j}x{t.block_k}/{t.num_warps}w",
                       shared_bytes=int(kernel.metadata.shared),
                       int8_mma_instructions=int8_mma_instructions(ptx),
                       cubin_bytes=len(kernel.asm["cubin"]), **usage)
