#include "pair_counts_cuda.h"

#include <ATen/ops/_int_mm.h>
#include <ATen/ops/aminmax.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/stack.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include <algorithm>
#include <cmath>
#include <cstdint>

#include "../te_math.h"
#include "../window_plan.h"
#include "launch.cuh"

namespace te {
namespace cuda {
namespace {

// ---- Cross counts: C[a][b] = sum_w popcount(X[a][w] & Y[b][w]) ----------------
// A 64 x 64 tile of C per block of 16 x 16 threads, 4 x 4 outputs per thread;
// both operands' words pass through shared memory, so each word loaded from
// global memory is used by 64 products.
constexpr int kTile = 64;
constexpr int kTileWords = 16;

// Tiles of rows_x beyond the grid's y limit (65,535) are taken by the same
// blocks in turn (grid-stride along y).
__global__ void cross_popcount_kernel(const uint64_t* __restrict__ X,
                                      const uint64_t* __restrict__ Y, int64_t words,
                                      int64_t rows_x, int64_t rows_y, int64_t* __restrict__ cross) {
  __shared__ uint64_t xs[kTile][kTileWords + 1];  // +1: no bank conflicts on column reads
  __shared__ uint64_t ys[kTile][kTileWords + 1];
  const int tx = threadIdx.x, ty = threadIdx.y;
  const int64_t b0 = int64_t(blockIdx.x) * kTile;
  for (int64_t a0 = int64_t(blockIdx.y) * kTile; a0 < rows_x; a0 += int64_t(gridDim.y) * kTile) {
    int64_t acc[4][4] = {};
    for (int64_t w0 = 0; w0 < words; w0 += kTileWords) {
      for (int e = ty * 16 + tx; e < kTile * kTileWords; e += 256) {
        const int row = e / kTileWords, col = e % kTileWords;
        const int64_t w = w0 + col;
        xs[row][col] = (a0 + row < rows_x && w < words) ? X[(a0 + row) * words + w] : 0;
        ys[row][col] = (b0 + row < rows_y && w < words) ? Y[(b0 + row) * words + w] : 0;
      }
      __syncthreads();
#pragma unroll 4
      for (int kk = 0; kk < kTileWords; ++kk) {
        uint64_t xv[4], yv[4];
#pragma unroll
        for (int r = 0; r < 4; ++r) xv[r] = xs[ty + 16 * r][kk];
#pragma unroll
        for (int s = 0; s < 4; ++s) yv[s] = ys[tx + 16 * s][kk];
#pragma unroll
        for (int r = 0; r < 4; ++r)
#pragma unroll
          for (int s = 0; s < 4; ++s) acc[r][s] += math::popcount64(xv[r] & yv[s]);
      }
      __syncthreads();
    }
#pragma unroll
    for (int r = 0; r < 4; ++r)
#pragma unroll
      for (int s = 0; s < 4; ++s) {
        const int64_t a = a0 + ty + 16 * r, b = b0 + tx + 16 * s;
        if (a < rows_x && b < rows_y) cross[a * rows_y + b] = acc[r][s];
      }
  }
}

// ---- The GEMM path: the same cross counts as an int8 matmul on tensor cores ----
// Unpacks one-hot words to int8 0/1 bits, [rows, words * 64]: one thread per 16
// output bytes (a quarter word), one 16-byte store each, so a warp writes 512
// contiguous bytes. The byte-per-thread kernel it replaces took 238 us at
// 4096^2, T = 4096 on an H200, half the GEMM's own time.
__global__ void unpack_bits_kernel(const uint64_t* __restrict__ words_in, int64_t n_words,
                                   uint4* __restrict__ out) {
  for (int64_t q = grid_start(); q < 4 * n_words; q += grid_stride()) {
    const uint32_t bits = static_cast<uint32_t>(words_in[q / 4] >> (16 * (q % 4)));
    out[q] = make_uint4(math::nibble_to_bytes(bits), math::nibble_to_bytes(bits >> 4),
                        math::nibble_to_bytes(bits >> 8), math::nibble_to_bytes(bits >> 12));
  }
}

at::Tensor unpack_bits(const at::Tensor& onehot) {
  at::Tensor out = at::empty({onehot.size(0), onehot.size(1) * math::kWordBits},
                             onehot.options().dtype(at::kChar));
  // The caching allocator aligns blocks to far more than 16 bytes.
  TORCH_INTERNAL_ASSERT(reinterpret_cast<uintptr_t>(out.data_ptr()) % alignof(uint4) == 0);
  const int64_t n_words = onehot.numel();
  unpack_bits_kernel<<<blocks_for(4 * n_words), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const uint64_t*>(onehot.const_data_ptr<int64_t>()), n_words,
      reinterpret_cast<uint4*>(out.data_ptr<int8_t>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

// Size heuristic (not yet tuned on a GPU; see docs/gpu.md): the int8
// GEMM wins once both operands have many rows and the series is long, since it
// then runs at tensor-core rate while the popcount kernel is bound by integer
// throughput. It is exact: products are 0/1 and int32 accumulation holds any
// count below 2^31 observations, which plan_series guarantees here. Its int8
// operands take 64x the packed bits, so it is used only while they stay small.
bool use_gemm(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p) {
  const int64_t rows_x = X.onehot.size(0), rows_y = Y.onehot.size(0);
  const int64_t k_bits = p.words * math::kWordBits;
  const int64_t operand_bytes = (rows_x + rows_y) * k_bits;
  return rows_x >= 512 && rows_y >= 512 && k_bits >= 4096 && p.nobs < (int64_t(1) << 31) &&
         operand_bytes <= (int64_t(1) << 31);
}

// int64 from the popcount kernel, int32 from the GEMM.
at::Tensor cross_counts(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p) {
  const int64_t rows_x = X.onehot.size(0), rows_y = Y.onehot.size(0);
  if (use_gemm(X, Y, p)) {
    // [rows_x, K] @ [K, rows_y] with the right operand column-major, as
    // cuBLASLt's int8 path expects.
    // int32 as the GEMM accumulates: the assembly reads it as it is (an int64 copy
    // took 177 us at 4096^2 on an H200).
    return at::_int_mm(unpack_bits(X.onehot), unpack_bits(Y.onehot).t());
  }
  at::Tensor cross = at::empty({rows_x, rows_y}, X.onehot.options());
  const dim3 grid(static_cast<unsigned>(math::ceil_div(rows_y, kTile)),
                  static_cast<unsigned>(std::min(math::ceil_div(rows_x, kTile), kMaxGridYZ)));
  cross_popcount_kernel<<<grid, dim3(16, 16), 0, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const uint64_t*>(X.onehot.const_data_ptr<int64_t>()),
      reinterpret_cast<const uint64_t*>(Y.onehot.const_data_ptr<int64_t>()), p.words, rows_x,
      rows_y, cross.data_ptr<int64_t>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return cross;
}

// ---- Per-pair assembly and the fused TE reduction ------------------------------
struct PairGeometry {
  int64_t I, J, sx, sy, streams_x, streams_y, nobs;
  int k, l;
};

PairGeometry geometry(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p) {
  return PairGeometry{p.I, p.J, p.sx, p.sy, X.streams, Y.streams, p.nobs, p.k, p.l};
}

// The generic assembly, for any order: joint counts from the cross counts and the
// marginals, one thread per pair, then either stored or reduced to TE with f
// evaluated directly. Its bins sit in an array sized for the largest order,
// which lives in local memory (ptxas: a 2,048-byte stack frame).
template <typename Cross>
__global__ void assemble_kernel(const Cross* __restrict__ cross, int64_t ld_cross,
                                const int64_t* __restrict__ xcount,
                                const int64_t* __restrict__ ycount, PairGeometry g,
                                int64_t* __restrict__ counts_out, double* __restrict__ te_out) {
  const int64_t bins = g.sx * g.sy;
  for (int64_t q = grid_start(); q < g.I * g.J; q += grid_stride()) {
    const int64_t i = q / g.J, j = q % g.J;
    const Cross* c = cross + (i * g.streams_x) * ld_cross + j * g.streams_y;
    int64_t local[math::kMaxOnehotBins];
    int64_t* dst = counts_out != nullptr ? counts_out + q * bins : local;
    math::assemble_joint_counts(c, ld_cross, 1, xcount + i * g.sx, ycount + j * g.sy, g.nobs,
                                g.k, g.l, dst);
    if (te_out != nullptr) te_out[q] = math::te_from_joint_counts_direct(dst, g.k, g.l);
  }
}

// ---- The all-pairs TE for the common orders --------------------------------------
// At 4096^2, T = 4096 the generic assembly took 1,461 us on an H200, three times the
// GEMM: local-memory bins, an int64 division per pair, and a double log2 for each
// of ~18 terms per pair. Here the order is a compile-time constant, so the bins are
// registers (ptxas: no stack frame); threads run along targets and blocks along
// sources; f comes from one table of f(0..nobs) and the target-only sum once per
// target: the CPU's reduction (cpu/pair_counts_cpu.h te_of_tile), through the same
// math functions. The table's entries are math::clog2c evaluated on the device;
// evaluated inline instead (the generic kernel), nvcc may fuse a term's product
// into the following add, so the two kernels can differ in the last bits.

__global__ void clog_table_kernel(int64_t n, double n_ref, double* __restrict__ table) {
  for (int64_t c = grid_start(); c <= n; c += grid_stride()) table[c] = math::clog2c(c, n_ref);
}

__global__ void target_sums_kernel(const int64_t* __restrict__ ycount, int64_t J, int64_t sy,
                                   int k, const double* __restrict__ table,
                                   double* __restrict__ out) {
  for (int64_t j = grid_start(); j < J; j += grid_stride())
    out[j] = math::target_sum_from_marginals(ycount + j * sy, k, math::TableClog{table});
}

template <int K, int L, typename Cross>
__global__ void te_fixed_order_kernel(const Cross* __restrict__ cross, int64_t ld_cross,
                                      const int64_t* __restrict__ xcount,
                                      const int64_t* __restrict__ ycount, PairGeometry g,
                                      const double* __restrict__ table,
                                      const double* __restrict__ target_sum,
                                      double* __restrict__ te_out) {
  const int64_t j = grid_start();
  if (j >= g.J) return;
  const double target = target_sum[j];
  for (int64_t i = blockIdx.y; i < g.I; i += gridDim.y)
    te_out[i * g.J + j] = math::te_of_pair_fixed_order<K, L>(cross, ld_cross, i, j, xcount, ycount,
                                                            g.nobs, table, target);
}

// Launches the fixed-order kernel when (k, l) is one it is built for and f(0..nobs)
// fits a table (math::kMaxClogTable, longer series go to the generic kernel);
// false otherwise.
template <typename Cross>
bool launch_te_fixed_order(const Cross* cross, int64_t ld_cross, const PackedSide& X,
                           const PackedSide& Y, const SeriesPlan& p, double* te_out) {
  if (p.k > 2 || p.l > 2 || p.nobs + 1 > math::kMaxClogTable || p.I * p.J == 0) return false;
  TORCH_INTERNAL_ASSERT(X.streams == p.sx - 1 && Y.streams == p.sy - 1);
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const at::Tensor table = at::empty({p.nobs + 1}, X.counts.options().dtype(at::kDouble));
  const at::Tensor target = at::empty({p.J}, table.options());
  clog_table_kernel<<<blocks_for(p.nobs + 1), kThreads, 0, stream>>>(
      p.nobs, math::clog_reference(p.nobs), table.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  target_sums_kernel<<<blocks_for(p.J), kThreads, 0, stream>>>(
      Y.counts.const_data_ptr<int64_t>(), p.J, p.sy, static_cast<int>(p.k),
      table.const_data_ptr<double>(), target.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  const dim3 grid(static_cast<unsigned>(math::ceil_div(p.J, kThreads)),
                  static_cast<unsigned>(std::min(p.I, kMaxGridYZ)));
  const PairGeometry g = geometry(X, Y, p);
  auto launch = [&](auto kernel) {
    kernel<<<grid, kThreads, 0, stream>>>(cross, ld_cross, X.counts.const_data_ptr<int64_t>(),
                                          Y.counts.const_data_ptr<int64_t>(), g,
                                          table.const_data_ptr<double>(),
                                          target.const_data_ptr<double>(), te_out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  };
  switch (p.k * 10 + p.l) {
    case 11: launch(te_fixed_order_kernel<1, 1, Cross>); break;
    case 12: launch(te_fixed_order_kernel<1, 2, Cross>); break;
    case 21: launch(te_fixed_order_kernel<2, 1, Cross>); break;
    default: launch(te_fixed_order_kernel<2, 2, Cross>); break;
  }
  return true;
}

// One thread per listed pair, counting straight from the streams.
__global__ void listed_pairs_kernel(const uint64_t* __restrict__ X, const uint64_t* __restrict__ Y,
                                    int64_t words, const int64_t* __restrict__ pairs, int64_t npairs,
                                    const int64_t* __restrict__ xcount,
                                    const int64_t* __restrict__ ycount, PairGeometry g,
                                    double* __restrict__ te_out) {
  for (int64_t q = grid_start(); q < npairs; q += grid_stride()) {
    const int64_t i = pairs[2 * q], j = pairs[2 * q + 1];
    int64_t cross[math::kMaxOnehotBins];
    for (int64_t xs = 0; xs < g.streams_x; ++xs)
      for (int64_t ys = 0; ys < g.streams_y; ++ys)
        cross[xs * g.streams_y + ys] = math::and_popcount(X + (i * g.streams_x + xs) * words,
                                                          Y + (j * g.streams_y + ys) * words, words);
    int64_t bins[math::kMaxOnehotBins];
    math::assemble_joint_counts(cross, g.streams_y, 1, xcount + i * g.sx, ycount + j * g.sy,
                                g.nobs, g.k, g.l, bins);
    te_out[q] = math::te_from_joint_counts_direct(bins, g.k, g.l);
  }
}

// Histogram path: one thread per (pair, observation), atomics into the pair's bins.
__global__ void histogram_kernel(const int32_t* __restrict__ xstates,
                                 const int32_t* __restrict__ ystates,
                                 const int64_t* __restrict__ pairs, int64_t npairs, int64_t J,
                                 int64_t nobs, int l, int64_t bins, unsigned long long* counts) {
  const int64_t total = npairs * nobs;
  for (int64_t idx = grid_start(); idx < total; idx += grid_stride()) {
    const int64_t q = idx / nobs, o = idx % nobs;
    const int64_t i = pairs != nullptr ? pairs[2 * q] : q / J;
    const int64_t j = pairs != nullptr ? pairs[2 * q + 1] : q % J;
    const int64_t bin = (static_cast<int64_t>(ystates[j * nobs + o]) << l) | xstates[i * nobs + o];
    atomicAdd(counts + q * bins + bin, 1ull);
  }
}

// `status` (nullable): a deferred window's status; when it recorded a bad
// input value, every TE is NaN rather than a number computed from bad data.
__global__ void te_from_counts_kernel(const int64_t* __restrict__ counts, int64_t npairs, int k,
                                      int l, const int64_t* status, double* __restrict__ out) {
  const int64_t bins = int64_t(1) << (k + l + 1);
  const bool poisoned = status != nullptr && status[kStatusFlags] != 0;
  for (int64_t q = grid_start(); q < npairs; q += grid_stride()) {
    out[q] = poisoned ? NAN : math::te_from_joint_counts_direct(counts + q * bins, k, l);
  }
}

at::Tensor histogram_counts(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p,
                            const int64_t* pairs, int64_t npairs) {
  at::Tensor counts = at::zeros({npairs, p.bins}, X.counts.options());
  if (npairs == 0) return counts;
  histogram_kernel<<<blocks_for(npairs * p.nobs), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      X.states.const_data_ptr<int32_t>(), Y.states.const_data_ptr<int32_t>(), pairs, npairs, p.J,
      p.nobs, p.l, p.bins, reinterpret_cast<unsigned long long*>(counts.data_ptr<int64_t>()));
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return counts;
}

}  // namespace

void check_count_values_cuda(const at::Tensor& counts, int64_t bins, const char* op) {
  const auto [lo, hi] = at::aminmax(counts);
  const at::Tensor range = at::stack({lo, hi}).cpu();
  const int64_t* r = range.const_data_ptr<int64_t>();
  check_count_range(r[0], r[1], bins, op);
}

at::Tensor te_from_counts_cuda_impl(const at::Tensor& counts, int k, int l,
                                    const int64_t* status) {
  const int64_t bins = int64_t(1) << (k + l + 1);
  const int64_t npairs = counts.numel() / bins;
  at::Tensor out = at::empty({npairs}, counts.options().dtype(at::kDouble));
  if (npairs == 0) return out;
  te_from_counts_kernel<<<blocks_for(npairs), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      counts.const_data_ptr<int64_t>(), npairs, k, l, status, out.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

namespace {

// fn(pointer to the cross counts): int32 from the GEMM, int64 from the popcount kernel.
template <typename Fn>
auto with_cross_type(const at::Tensor& cross, Fn fn) {
  return cross.scalar_type() == at::kInt ? fn(cross.const_data_ptr<int32_t>())
                                         : fn(cross.const_data_ptr<int64_t>());
}

void launch_assemble(const at::Tensor& cross, const PackedSide& X, const PackedSide& Y,
                     const SeriesPlan& p, int64_t* counts_out, double* te_out) {
  with_cross_type(cross, [&](const auto* c) {
    assemble_kernel<<<blocks_for(p.I * p.J), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
        c, cross.size(1), X.counts.const_data_ptr<int64_t>(), Y.counts.const_data_ptr<int64_t>(),
        geometry(X, Y, p), counts_out, te_out);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
}

}  // namespace

at::Tensor all_pairs_cuda(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p,
                          PairOutput what) {
  if (!p.onehot) {
    at::Tensor counts = histogram_counts(X, Y, p, nullptr, p.I * p.J);
    if (what == PairOutput::kCounts) return counts.view({p.I, p.J, p.bins});
    return te_from_counts_cuda_impl(counts, p.k, p.l).view({p.I, p.J});
  }
  const at::Tensor cross = cross_counts(X, Y, p);
  const int64_t ld_cross = cross.size(1);
  if (what == PairOutput::kTransferEntropy) {
    at::Tensor te = at::empty({p.I, p.J}, X.counts.options().dtype(at::kDouble));
    const bool launched = with_cross_type(cross, [&](const auto* c) {
      return launch_te_fixed_order(c, ld_cross, X, Y, p, te.data_ptr<double>());
    });
    if (launched) return te;
    launch_assemble(cross, X, Y, p, nullptr, te.data_ptr<double>());
    return te;
  }
  at::Tensor counts = at::empty({p.I, p.J, p.bins}, X.counts.options());
  launch_assemble(cross, X, Y, p, counts.data_ptr<int64_t>(), nullptr);
  return counts;
}

at::Tensor listed_pairs_te_cuda(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p,
                                const at::Tensor& pairs) {
  const int64_t npairs = pairs.size(0);
  if (npairs == 0) return at::empty({0}, X.counts.options().dtype(at::kDouble));
  if (!p.onehot) {
    return te_from_counts_cuda_impl(histogram_counts(X, Y, p, pairs.const_data_ptr<int64_t>(), npairs),
                                    p.k, p.l);
  }
  at::Tensor te = at::empty({npairs}, X.counts.options().dtype(at::kDouble));
  if (npairs == 0) return te;
  listed_pairs_kernel<<<blocks_for(npairs), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      reinterpret_cast<const uint64_t*>(X.onehot.const_data_ptr<int64_t>()),
      reinterpret_cast<const uint64_t*>(Y.onehot.const_data_ptr<int64_t>()), p.words,
      pairs.const_data_ptr<int64_t>(), npairs, X.counts.const_data_ptr<int64_t>(),
      Y.counts.const_data_ptr<int64_t>(), geometry(X, Y, p), te.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return te;
}

}  // namespace cuda
}  // namespace te
