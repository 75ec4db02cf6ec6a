"""Source of the fused Triton kernel for one (k, l), generated as plain Triton code.

Why generated: a pair's counts live in (2^l - 1)(2^(k+1) - 1) separate [BLOCK_I, BLOCK_J]
accumulators (one per source stream x target stream; 3 for k = l = 1) and its epilogue walks
the 2^(k+l+1) bins in a fixed order. Triton has no arrays of tensors and no non-power-of-two
tensor dimensions, so the number of accumulators cannot be a parameter of one kernel.
Writing them out per (k, l) keeps every MMA at the minimal stream count (no padding streams)
and lets the epilogue be a line-by-line transcription of ``csrc/te_math.h``:

* ``assemble_joint_counts``: cross counts of states >= 1 from the MMAs; the bins of state 0
  from the per-neuron marginals (state counts), which a small first kernel of the same module,
  ``te_marginals_k{k}_l{l}``, counts once per neuron. Counting them inside the MMA loop cost
  about 100 registers per thread and was repeated by every tile of a row (ptxas -v, see
  ``aot.py``). In int32: every count is below 2^31 (``dispatch.applicable``);
* ``te_from_joint_counts`` with ``TableClog``: ``N*TE = sum_b g(c[b], c[half|b]) -
  sum_yp g(y0[yp], y1[yp])``, ``g(a, b) = (f(a) + f(b)) - f(a + b)``, both sums sequential in
  the same yp-major order, so a constant series gives exactly 0 (see te_math.h). ``f`` is read
  from a float64 table of ``f(0..nobs)`` (``clog_ptr``): an inlined float64 log2 per count
  made the kernel's PTX megabytes long (Triton unrolls the epilogue over a thread's pairs).
  Each bin's gathers are ordered after the running sum (``_after``): left free, the compiler
  issued all of a thread's gathers at once and spilled (1.2 KB per thread at 64x64 tiles).

Nothing here imports triton: this module only renders text (tests compare it with te_math.h
through the results, and ``render`` is deterministic, so Triton's cache keys stay stable).
"""

from __future__ import annotations

from typing import List

# Kernel arguments, in launch order (kernels.py passes them by these names).
ARGS = ("x_ptr, y_ptr, thr_bits, clog_ptr, xmarg_ptr, ymarg_ptr, out_ptr, part_ptr, I, J, "
        "nobs, obs_per_rep, n0, delay, sxr, sxt, sxc, syr, syt, syc, n_split, marg_split")
MARGINAL_ARGS = ("x_ptr, y_ptr, thr_bits, xmarg_ptr, ymarg_ptr, I, J, nobs, obs_per_rep, n0, "
                 "delay, sxr, sxt, sxc, syr, syt, syc, n_split")
EPILOGUE_ARGS = "part_ptr, clog_ptr, xmarg_ptr, ymarg_ptr, out_ptr, I, J, nobs, n_split, marg_split"


def _sum(terms: List[str]) -> str:
    """Left-to-right sum, as the C++ loops accumulate (the grouping matters for f64)."""
    expr = terms[0]
    for t in terms[1:]:
        expr = f"({expr} + {t})"
    return expr


def kernel_name(k: int, l: int) -> str:
    return f"te_fused_k{k}_l{l}"


def marginals_name(k: int, l: int) -> str:
    return f"te_marginals_k{k}_l{l}"


def epilogue_name(k: int, l: int) -> str:
    return f"te_epilogue_k{k}_l{l}"


def stream_products(k: int, l: int):
    """(a, b) of each source state a >= 1 x target state b >= 1: one int32 accumulator each,
    in this order (also the order of the split partials' planes)."""
    return [(a, b) for a in range(1, 1 << l) for b in range(1, 1 << (k + 1))]


def _split_range(w, indent: str) -> None:
    """lo, hi: the observations of split ``tl.program_id(1)`` of ``n_split``, whole BLOCK_K
    blocks each (a split past the end gets none, and stores zero counts). The split counts
    are runtime arguments, not constexprs: a new count (a new shape) compiles nothing."""
    w(f"{indent}per_split = tl.cdiv(tl.cdiv(nobs, BLOCK_K), n_split) * BLOCK_K")
    w(f"{indent}lo = tl.program_id(1) * per_split")
    w(f"{indent}hi = tl.minimum(lo + per_split, nobs)")


def _observation_block(w, indent: str) -> None:
    """Offsets of a block of BLOCK_K observations: replicate and time step of each."""
    w(f"{indent}offs_o = o0 + tl.arange(0, BLOCK_K)")
    w(f"{indent}valid = offs_o < nobs")
    w(f"{indent}rep = offs_o // obs_per_rep")
    w(f"{indent}t = (n0 + offs_o - rep * obs_per_rep).to(tl.int64)  # time step of the observation")


def _source_streams(w, indent: str, l: int, col: str, mask: str, expand: str) -> None:
    """xs_a (int8 0/1) for source states a >= 1. Bit b: lag delay + b (te_math.h
    source_state_lag); a state's stream is the AND of its bits (te_math.h onehot_word)."""
    for bit in range(l):
        w(f"{indent}x{bit} = _bit(tl.load({col} + (rep.to(tl.int64) * sxr + (t - delay - {bit}) * sxt)"
          f"{expand}, mask={mask}, other=0), thr_bits, HAS_THRESHOLD) & {mask}")
        w(f"{indent}nx{bit} = x{bit} ^ {mask}")
    for a in range(1, 1 << l):
        terms = [f"x{bit}" if (a >> bit) & 1 else f"nx{bit}" for bit in range(l)]
        w(f"{indent}xs_{a} = ({' & '.join(terms)}).to(tl.int8)")


def _target_streams(w, indent: str, k: int, col: str, mask: str, expand: str) -> None:
    """ys_b (int8 0/1) for target states b >= 1. Bit b < k: ypast, lag b + 1; bit k: ynext,
    lag 0 (te_math.h target_state_lag)."""
    for bit in range(k + 1):
        lag = bit + 1 if bit < k else 0
        w(f"{indent}y{bit} = _bit(tl.load({col} + (rep.to(tl.int64) * syr + (t - {lag}) * syt)"
          f"{expand}, mask={mask}, other=0), thr_bits, HAS_THRESHOLD) & {mask}")
        w(f"{indent}ny{bit} = y{bit} ^ {mask}")
    for b in range(1, 1 << (k + 1)):
        terms = [f"y{bit}" if (b >> bit) & 1 else f"ny{bit}" for bit in range(k + 1)]
        w(f"{indent}ys_{b} = ({' & '.join(terms)}).to(tl.int8)")


def _marginal_side(w, tile: str, size: str, ptr: str, stride: str, out: str, states: int,
                   streams, name: str) -> None:
    """One side's branch of the marginals kernel: BLOCK_N neurons, the observations of split
    ``tl.program_id(1)``; its partial counts go to plane ``program_id(1)`` of ``out``."""
    w(f"        offs_n = {tile} * BLOCK_N + tl.arange(0, BLOCK_N)")
    w(f"        in_n = offs_n < {size}")
    w(f"        col = {ptr} + offs_n.to(tl.int64)[None, :] * {stride}  # [1, BLOCK_N]")
    for s in range(1, states):
        w(f"        count_{s} = tl.zeros((BLOCK_N,), dtype=tl.int32)")
    w("        for o0 in range(lo, hi, BLOCK_K):")
    _observation_block(w, "            ")
    w("            m = valid[:, None] & in_n[None, :]  # [BLOCK_K, BLOCK_N]")
    streams("            ")
    for s in range(1, states):
        w(f"            count_{s} += tl.sum({name}_{s}.to(tl.int32), axis=0)")
    w(f"        plane = {out} + tl.program_id(1) * ({size} * {states - 1})")
    for s in range(1, states):
        w(f"        tl.store(plane + offs_n * {states - 1} + {s - 1}, count_{s}, mask=in_n)")


def _render_marginals(w, k: int, l: int) -> None:
    """te_marginals_k{k}_l{l}: per neuron, how many observations are in each state >= 1 (the
    source's l-bit states, the target's (k+1)-bit states). Programs [0, cdiv(I, BLOCK_N)) of
    axis 0 take source columns, the rest target columns; axis 1 splits the observations into
    n_split parts, each writing its own plane: int32 [n_split, I, 2^l - 1] and
    [n_split, J, 2^(k+1) - 1], which the consumers sum (``_marginal_loads``). Partial planes,
    not atomics: no zeroed buffer, and the same sums in the same order every call."""
    SX, SY = 1 << l, 1 << (k + 1)
    w("@triton.jit")
    w(f"def {marginals_name(k, l)}({MARGINAL_ARGS},")
    w("        HAS_THRESHOLD: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_K: tl.constexpr):")
    w("    pid = tl.program_id(0)")
    w("    tiles_x = tl.cdiv(I, BLOCK_N)")
    _split_range(w, "    ")
    w("    if pid < tiles_x:")
    _marginal_side(w, "pid", "I", "x_ptr", "sxc", "xmarg_ptr", SX,
                   lambda indent: _source_streams(w, indent, l, "col", "m", "[:, None]"), "xs")
    w("    else:")
    _marginal_side(w, "(pid - tiles_x)", "J", "y_ptr", "syc", "ymarg_ptr", SY,
                   lambda indent: _target_streams(w, indent, k, "col", "m", "[:, None]"), "ys")
    w("")
    w("")


def _marginal_loads(w, k: int, l: int) -> None:
    """xc_a [BLOCK_I, 1] and yc_b [1, BLOCK_J]: the marginals, summed over marg_split planes."""
    SX, SY = 1 << l, 1 << (k + 1)
    for a in range(1, SX):
        w(f"    xc_{a} = tl.zeros((BLOCK_I,), dtype=tl.int32)")
    for b in range(1, SY):
        w(f"    yc_{b} = tl.zeros((BLOCK_J,), dtype=tl.int32)")
    w("    for sp in range(0, marg_split):")
    for a in range(1, SX):
        w(f"        xc_{a} += tl.load(xmarg_ptr + sp * (I * {SX - 1}) + offs_i * {SX - 1} + {a - 1}, "
          "mask=in_i, other=0)")
    for b in range(1, SY):
        w(f"        yc_{b} += tl.load(ymarg_ptr + sp * (J * {SY - 1}) + offs_j * {SY - 1} + {b - 1}, "
          "mask=in_j, other=0)")
    for a in range(1, SX):
        w(f"    xc_{a} = xc_{a}[:, None]")
    for b in range(1, SY):
        w(f"    yc_{b} = yc_{b}[None, :]")


def _render_epilogue(w, k: int, l: int, indent: str = "    ") -> None:
    """From acc_a_b (the cross counts of a [BLOCK_I, BLOCK_J] tile of pairs), offs_i, offs_j,
    in_i, in_j and the marginals: the joint counts (``OUT_COUNTS``) or the TE, stored to
    out_ptr. te_math.h assemble_joint_counts in int32 (every count < 2^31), then
    te_from_joint_counts with TableClog."""
    SX, SY = 1 << l, 1 << (k + 1)
    xs_states, ys_states = range(1, SX), range(1, SY)
    w = _indented(w, indent[4:])
    _marginal_loads(w, k, l)
    w("    # te_math.h assemble_joint_counts")
    c = {}
    rows = []
    for b in ys_states:
        for a in xs_states:
            name = f"c{(b << l) | a}"
            w(f"    {name} = acc_{a}_{b}")
            c[(b << l) | a] = name
        w(f"    row_{b} = {_sum([c[(b << l) | a] for a in xs_states])}")
        w(f"    c{b << l} = yc_{b} - row_{b}")
        c[b << l] = f"c{b << l}"
        rows.append(f"row_{b}")
    w(f"    all_cross = {_sum(rows)}")
    for a in xs_states:
        w(f"    col_{a} = {_sum([c[(b << l) | a] for b in ys_states])}")
        w(f"    c{a} = xc_{a} - col_{a}")
        c[a] = f"c{a}"
    w(f"    xs_total = {_sum([f'xc_{a}' for a in xs_states])}")
    w(f"    ys_total = {_sum([f'yc_{b}' for b in ys_states])}")
    w("    c0 = ((nobs - xs_total) - ys_total) + all_cross")
    c[0] = "c0"
    bins = 1 << (k + l + 1)
    w("    pair_mask = in_i[:, None] & in_j[None, :]")
    w("    pair = offs_i.to(tl.int64)[:, None] * J + offs_j.to(tl.int64)[None, :]")
    w("    if OUT_COUNTS:")
    for b in range(bins):
        w(f"        tl.store(out_ptr + pair * {bins} + {b}, (c{b} + tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.int32)).to(tl.int64), mask=pair_mask)")
    w("    else:")
    half = 1 << (k + l)
    w("        # te_math.h te_from_joint_counts: target-only sum and total from the same counts")
    w("        n = tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.int32)")
    w("        target_sum = tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.float64)")
    for yp in range(1 << k):
        y0 = _sum([f"c{(yp << l) | xs}" for xs in range(SX)])
        y1 = _sum([f"c{half | (yp << l) | xs}" for xs in range(SX)])
        w(f"        y0 = {y0}")
        w(f"        y1 = {y1}")
        w("        target_sum += _g(_after(y0, target_sum), y1, clog_ptr)")
        w("        n += y0 + y1")
    w("        pair_sum = tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.float64)")
    for b in range(half):
        w(f"        pair_sum += _g(_after(c{b}, {'target_sum' if b == 0 else 'pair_sum'}), c{half | b}, clog_ptr)")
    w("        te = (pair_sum - target_sum) / tl.maximum(n, 1).to(tl.float64)")
    w("        te = tl.where((n > 0) & (te > 0.0), te, 0.0)")
    w("        tl.store(out_ptr + pair, te, mask=pair_mask)")


def _indented(w, extra: str):
    return w if not extra else (lambda line: w(extra + line if line else line))


def _render_split_epilogue(w, k: int, l: int) -> None:
    """te_epilogue_k{k}_l{l}: the epilogue of a split launch. The MMA kernel's n_split programs
    of a tile each stored their partial cross counts to a plane of part_ptr
    ([n_split, products, I, J] int32); this sums them in split order and runs the same
    epilogue as the unsplit kernel."""
    products = stream_products(k, l)
    w("@triton.jit")
    w(f"def {epilogue_name(k, l)}({EPILOGUE_ARGS},")
    w("        OUT_COUNTS: tl.constexpr, BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr):")
    w("    pid = tl.program_id(0)")
    w("    tiles_j = tl.cdiv(J, BLOCK_J)")
    w("    offs_i = (pid // tiles_j) * BLOCK_I + tl.arange(0, BLOCK_I)")
    w("    offs_j = (pid % tiles_j) * BLOCK_J + tl.arange(0, BLOCK_J)")
    w("    in_i = offs_i < I")
    w("    in_j = offs_j < J")
    w("    tile = offs_i.to(tl.int64)[:, None] * J + offs_j.to(tl.int64)[None, :]")
    w("    tile_mask = in_i[:, None] & in_j[None, :]")
    w("    plane = tl.cast(I, tl.int64) * J")
    for a, b in products:
        w(f"    acc_{a}_{b} = tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.int32)")
    w("    for sp in range(0, n_split):")
    for p, (a, b) in enumerate(products):
        w(f"        acc_{a}_{b} += tl.load(part_ptr + (sp * {len(products)} + {p}) * plane + tile, "
          "mask=tile_mask, other=0)")
    _render_epilogue(w, k, l)
    w("")
    w("")


def render(k: int, l: int) -> str:
    """Triton source of a module with two @triton.jit kernels: ``te_marginals_k{k}_l{l}``
    (per-neuron state counts) and ``te_fused_k{k}_l{l}`` (MMAs and the epilogue)."""
    if k < 1 or l < 1:
        raise ValueError(f"render: k and l must be >= 1, got k={k}, l={l}")
    SX, SY = 1 << l, 1 << (k + 1)
    xs_states, ys_states = range(1, SX), range(1, SY)
    out: List[str] = []
    w = out.append

    w('"""Generated by te_ext/_triton/codegen.py; do not edit."""')
    w("import triton")
    w("import triton.language as tl")
    w("")
    w("")
    w("@triton.jit")
    w("def _f(c, clog_ptr):  # f(c) = c log2(c / centre) from the table: te_math.h TableClog")
    w("    # Unmasked: every count, also of a pair outside [I, J] (zero accumulators and")
    w("    # marginals), lies in [0, nobs], and the table holds f(0..nobs); a mask per gather")
    w("    # cost registers (ptxas spilled).")
    w("    return tl.load(clog_ptr + c)")
    w("")
    w("")
    w("@triton.jit")
    w("def _g(a, b, clog_ptr):  # te_math.h mix_term")
    w("    return (_f(a, clog_ptr) + _f(b, clog_ptr)) - _f(a + b, clog_ptr)")
    w("")
    w("")
    w("@triton.jit")
    w("def _after(c, s):  # c, made to depend on the running sum s (finite: s != s is 0)")
    w("    return c + (s != s).to(tl.int32)")
    w("")
    w("")
    w("@triton.jit")
    w("def _bit(v, thr_bits, HAS_THRESHOLD: tl.constexpr):  # te_math.h to_bit (values checked by the caller)")
    w("    if HAS_THRESHOLD:")
    w("        # The threshold arrives as the bit pattern of a value of v's dtype (a scalar")
    w("        # argument: no device tensor, no host-to-device copy per call).")
    w("        if v.dtype == tl.float64:")
    w("            return v > tl.cast(thr_bits, tl.int64).to(tl.float64, bitcast=True)")
    w("        if v.dtype == tl.float32:")
    w("            return v > tl.cast(thr_bits, tl.int32).to(tl.float32, bitcast=True)")
    w("        # 16-bit floats compared in float32, where they and the threshold are exact (the")
    w("        # Triton interpreter compares bfloat16 as raw bits otherwise).")
    w("        if v.dtype == tl.float16:")
    w("            return v.to(tl.float32) > tl.cast(thr_bits, tl.int16).to(tl.float16, bitcast=True).to(tl.float32)")
    w("        return v.to(tl.float32) > tl.cast(thr_bits, tl.int16).to(tl.bfloat16, bitcast=True).to(tl.float32)")
    w("    else:")
    w("        return v != 0")
    w("")
    w("")
    _render_marginals(w, k, l)
    w("@triton.jit")
    w(f"def {kernel_name(k, l)}({ARGS},")
    w("        HAS_THRESHOLD: tl.constexpr, OUT_COUNTS: tl.constexpr,")
    w("        BLOCK_I: tl.constexpr, BLOCK_J: tl.constexpr, BLOCK_K: tl.constexpr,")
    w("        GROUP_I: tl.constexpr, PARTIAL: tl.constexpr):")
    w(f"    # k={k}, l={l}: {SX - 1} source stream(s) x {SY - 1} target streams per pair.")
    w("    pid = tl.program_id(0)")
    w("    tiles_i = tl.cdiv(I, BLOCK_I)")
    w("    tiles_j = tl.cdiv(J, BLOCK_J)")
    w("    # Grouped order: neighbouring programs share source rows in L2.")
    w("    per_group = GROUP_I * tiles_j")
    w("    first_i = (pid // per_group) * GROUP_I")
    w("    rows = tl.minimum(tiles_i - first_i, GROUP_I)")
    w("    tile_i = first_i + (pid % per_group) % rows")
    w("    tile_j = (pid % per_group) // rows")
    w("    offs_i = tile_i * BLOCK_I + tl.arange(0, BLOCK_I)")
    w("    offs_j = tile_j * BLOCK_J + tl.arange(0, BLOCK_J)")
    w("    in_i = offs_i < I")
    w("    in_j = offs_j < J")
    w("    xcol = x_ptr + offs_i.to(tl.int64)[:, None] * sxc  # [BLOCK_I, 1]")
    w("    ycol = y_ptr + offs_j.to(tl.int64)[None, :] * syc  # [1, BLOCK_J]")
    for a, b in stream_products(k, l):
        w(f"    acc_{a}_{b} = tl.zeros((BLOCK_I, BLOCK_J), dtype=tl.int32)")
    w("    # Axis 1 splits the observations (n_split > 1 where the tiles alone leave SMs idle).")
    _split_range(w, "    ")
    w("    for o0 in range(lo, hi, BLOCK_K):")
    _observation_block(w, "        ")
    w("        xm = in_i[:, None] & valid[None, :]  # [BLOCK_I, BLOCK_K]")
    w("        ym = valid[:, None] & in_j[None, :]  # [BLOCK_K, BLOCK_J]")
    _source_streams(w, "        ", l, "xcol", "xm", "[None, :]")
    _target_streams(w, "        ", k, "ycol", "ym", "[:, None]")
    for a, b in stream_products(k, l):
        w(f"        acc_{a}_{b} = tl.dot(xs_{a}, ys_{b}, acc_{a}_{b}, out_dtype=tl.int32)")
    w("    if PARTIAL:  # n_split > 1")
    w("        # This split's cross counts, to its planes of part_ptr; te_epilogue sums them.")
    w("        tile = offs_i.to(tl.int64)[:, None] * J + offs_j.to(tl.int64)[None, :]")
    w("        tile_mask = in_i[:, None] & in_j[None, :]")
    w("        plane = tl.cast(I, tl.int64) * J")
    products = stream_products(k, l)
    for p_, (a, b) in enumerate(products):
        w(f"        tl.store(part_ptr + (tl.program_id(1) * {len(products)} + {p_}) * plane + tile, "
          f"acc_{a}_{b}, mask=tile_mask)")
    w("    else:")
    _render_epilogue(w, k, l, indent="        ")
    w("")
    w("")
    _render_split_epilogue(w, k, l)
    return "\n".join(out)
