// CUDA kernels of the statistics ops. A surrogate permutes the packed source
// streams on the device (one thread per output word, stats_math.h) and reuses
// the pair kernels of transfer_entropy; the running sums stay on the device,
// so the loop over surrogates never synchronises. Local TE gathers each
// observation's counts with ATen ops and evaluates stats::local_te.
#include <ATen/core/Tensor.h>
#include <ATen/ops/arange.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/index_select.h>
#include <ATen/ops/ones_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <limits>
#include <tuple>
#include <vector>

#include "../stats_math.h"
#include "../stats_plan.h"
#include "../te_plan.h"
#include "launch.cuh"
#include "pack_cuda.h"
#include "pair_counts_cuda.h"

namespace te {
namespace cuda {
namespace {

// One surrogate's TE into each pair's running sums, by the CPU's own stats::add_surrogate.
__global__ void add_surrogate_kernel(const double* __restrict__ te_surrogate,
                                     const double* __restrict__ te_observed,
                                     int64_t* __restrict__ at_least, double* __restrict__ sum,
                                     double* __restrict__ sum_sq, int64_t n) {
  for (int64_t q = grid_start(); q < n; q += grid_stride()) {
    stats::add_surrogate(te_surrogate[q], te_observed[q], at_least + q, sum + q, sum_sq + q);
  }
}

__global__ void permute_streams_kernel(const uint64_t* __restrict__ src,
                                       uint64_t* __restrict__ dst,
                                       const int64_t* __restrict__ perm, int64_t rows,
                                       int64_t words, int64_t used_words, int64_t R,
                                       int64_t obs_per_rep, int64_t rep_words) {
  for (int64_t idx = grid_start(); idx < rows * used_words; idx += grid_stride()) {
    const int64_t row = idx / used_words, w = idx % used_words;
    dst[row * words + w] =
        stats::permuted_stream_word(src + row * words, perm, w, R, obs_per_rep, rep_words);
  }
}

__global__ void local_te_kernel(const int64_t* __restrict__ c_bin,
                                const int64_t* __restrict__ c_past,
                                const int64_t* __restrict__ c_ynext_ypast,
                                const int64_t* __restrict__ c_ypast, int64_t n,
                                double* __restrict__ out) {
  for (int64_t idx = grid_start(); idx < n; idx += grid_stride())
    out[idx] = stats::local_te(c_bin[idx], c_past[idx], c_ynext_ypast[idx], c_ypast[idx]);
}

// Each row of perm must be a permutation: sorted, it is 0..nobs-1. One sync.
void check_rows_are_permutations(const at::Tensor& perm, const char* op) {
  const int64_t n = perm.size(1);
  const at::Tensor sorted = std::get<0>(perm.sort(1));
  const at::Tensor bad = sorted.ne(at::arange(n, perm.options()).unsqueeze(0)).any(1);
  if (bad.any().item<bool>()) {
    stats::fail_not_permutation(bad.to(at::kLong).argmax().item<int64_t>(), n, op);
  }
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> transfer_entropy_surrogates_cuda(
    const at::Tensor& source, const at::Tensor& target, const at::Tensor& permutations, int64_t k,
    int64_t l, int64_t delay, std::optional<double> threshold,
    const std::optional<at::Tensor>& pairs) {
  const char* op = "te.transfer_entropy_surrogates";
  const SeriesPlan p = plan_series(source, target, k, l, delay, threshold, op);
  if (pairs.has_value()) check_pairs(*pairs, p, source.device(), op);
  stats::check_permutations_shape(permutations, p, source.device(), op);
  const c10::cuda::CUDAGuard guard(source.device());
  const at::Tensor perm = permutations.contiguous();
  check_rows_are_permutations(perm, op);

  const int64_t npairs = pairs.has_value() ? pairs->size(0) : mul_sat(p.I, p.J);
  // The pair kernels' per-pair scratch (as transfer_entropy), a permuted copy
  // of the source side, one surrogate's TE and the four outputs.
  int64_t bytes = add_sat(workspace_bytes(p, kRowPad, 0), mul_sat(mul_sat(npairs, p.bins), 8));
  const int64_t source_copy = p.onehot
      ? mul_sat(mul_sat(math::round_up(p.I * (p.sx - 1), kRowPad), p.words), 8)
      : mul_sat(mul_sat(p.I, p.nobs), 4);
  bytes = add_sat(add_sat(bytes, source_copy), mul_sat(npairs, 40));
  check_fits(bytes, p, op);  // the device's free memory, asked only for large requests

  const auto dopts = source.options().dtype(at::kDouble);
  std::vector<int64_t> shape = pairs.has_value() ? std::vector<int64_t>{npairs}
                                                 : std::vector<int64_t>{p.I, p.J};
  at::Tensor at_least = at::zeros(shape, dopts.dtype(at::kLong));
  at::Tensor sum = at::zeros(shape, dopts), sum_sq = at::zeros(shape, dopts);
  if (npairs == 0) return {at::empty(shape, dopts), at_least, sum, sum_sq};

  const PackedSide X = pack_side_cuda(source, p, /*is_target=*/false, op, "source");
  const PackedSide Y = pack_side_cuda(target, p, /*is_target=*/true, op, "target");
  const at::Tensor pc = pairs.has_value() ? pairs->contiguous() : at::Tensor();
  auto te_of = [&](const PackedSide& src) {
    return pairs.has_value() ? listed_pairs_te_cuda(src, Y, p, pc)
                             : all_pairs_cuda(src, Y, p, PairOutput::kTransferEntropy);
  };
  const at::Tensor te = te_of(X).contiguous();

  PackedSide Xp;
  Xp.counts = X.counts;  // a permutation keeps the source's state counts
  Xp.streams = X.streams;
  if (p.onehot) {
    Xp.onehot = at::zeros_like(X.onehot);
  } else {
    Xp.states = at::empty_like(X.states);
  }
  const int64_t rows = p.I * X.streams, used_words = p.R * p.rep_words;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  for (int64_t s = 0; s < perm.size(0); ++s) {
    if (p.onehot) {
      permute_streams_kernel<<<blocks_for(rows * used_words), kThreads, 0, stream>>>(
          reinterpret_cast<const uint64_t*>(X.onehot.const_data_ptr<int64_t>()),
          reinterpret_cast<uint64_t*>(Xp.onehot.data_ptr<int64_t>()),
          perm.const_data_ptr<int64_t>() + s * p.nobs, rows, p.words, used_words, p.R,
          p.obs_per_rep, p.rep_words);
      C10_CUDA_KERNEL_LAUNCH_CHECK();
    } else {
      at::index_select_out(Xp.states, X.states, 1, perm.select(0, s));
    }
    const at::Tensor v = te_of(Xp).contiguous();
    add_surrogate_kernel<<<blocks_for(npairs), kThreads, 0, stream>>>(
        v.const_data_ptr<double>(), te.const_data_ptr<double>(), at_least.data_ptr<int64_t>(),
        sum.data_ptr<double>(), sum_sq.data_ptr<double>(), npairs);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  return {te, at_least, sum, sum_sq};
}

at::Tensor local_transfer_entropy_cuda(const at::Tensor& source, const at::Tensor& target,
                                       const at::Tensor& pairs, int64_t k, int64_t l,
                                       int64_t delay, std::optional<double> threshold) {
  const char* op = "te.local_transfer_entropy";
  SeriesPlan p = plan_series(source, target, k, l, delay, threshold, op);
  check_pairs(pairs, p, source.device(), op);
  p.onehot = false;  // per-observation states
  const c10::cuda::CUDAGuard guard(source.device());
  const int64_t npairs = pairs.size(0);
  // States, and per pair: the histogram and five int64 / one double per observation.
  int64_t bytes = add_sat(workspace_bytes(p, kRowPad, 0), mul_sat(mul_sat(npairs, p.bins), 8));
  bytes = add_sat(bytes, mul_sat(mul_sat(npairs, p.nobs), 64));
  check_fits(bytes, p, op);  // the device's free memory, asked only for large requests
  const auto dopts = source.options().dtype(at::kDouble);
  if (npairs == 0) return at::empty({0, p.nobs}, dopts);

  const PackedSide X = pack_side_cuda(source, p, /*is_target=*/false, op, "source");
  const PackedSide Y = pack_side_cuda(target, p, /*is_target=*/true, op, "target");
  const at::Tensor pc = pairs.contiguous();
  const at::Tensor xs = X.states.index_select(0, pc.select(1, 0)).to(at::kLong);
  const at::Tensor ys = Y.states.index_select(0, pc.select(1, 1)).to(at::kLong);
  const int64_t half = int64_t(1) << (p.k + p.l), syp = int64_t(1) << p.k;
  const at::Tensor bin = ys.mul(p.sx).add_(xs);  // (ystate << l) | xpast
  const at::Tensor counts = at::zeros({npairs, p.bins}, xs.options())
                                .scatter_add_(1, bin, at::ones_like(bin));
  const at::Tensor c_bin = counts.gather(1, bin).contiguous();
  const at::Tensor c_past =
      counts.view({npairs, 2, half}).sum(1).gather(1, bin.remainder(half)).contiguous();
  const at::Tensor c_ynyp = counts.view({npairs, p.sy, p.sx}).sum(2).gather(1, ys).contiguous();
  const at::Tensor c_yp = counts.view({npairs, 2, syp, p.sx})
                              .sum(at::IntArrayRef{1, 3})
                              .gather(1, ys.remainder(syp))
                              .contiguous();
  at::Tensor out = at::empty({npairs, p.nobs}, dopts);
  const int64_t n = out.numel();
  local_te_kernel<<<blocks_for(n), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      c_bin.const_data_ptr<int64_t>(), c_past.const_data_ptr<int64_t>(),
      c_ynyp.const_data_ptr<int64_t>(), c_yp.const_data_ptr<int64_t>(), n, out.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

__global__ void sorted_local_te_kernel(const int64_t* __restrict__ counts, int64_t npairs, int k,
                                       int l, double* __restrict__ out) {
  const int64_t bins = int64_t(1) << (k + l + 1);
  for (int64_t q = grid_start(); q < npairs; q += grid_stride())
    out[q] = stats::sorted_local_te_from_joint_counts(counts + q * bins, k, l);
}

at::Tensor sorted_local_te_cuda(const at::Tensor& counts, int64_t k, int64_t l) {
  const char* op = "te.sorted_local_te";
  const int64_t bins = check_counts(counts, k, l, op);
  const c10::cuda::CUDAGuard guard(counts.device());
  at::Tensor out = at::empty(pair_shape(counts), counts.options().dtype(at::kDouble));
  const int64_t npairs = out.numel();
  if (npairs == 0) return out;
  const at::Tensor c = counts.to(at::kLong).contiguous();
  check_count_values_cuda(c, bins, op);
  sorted_local_te_kernel<<<blocks_for(npairs), kThreads, 0, c10::cuda::getCurrentCUDAStream()>>>(
      c.const_data_ptr<int64_t>(), npairs, static_cast<int>(k), static_cast<int>(l),
      out.data_ptr<double>());
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CUDA, m) {
  m.impl("sorted_local_te", &sorted_local_te_cuda);
  m.impl("transfer_entropy_surrogates", &transfer_entropy_surrogates_cuda);
  m.impl("local_transfer_entropy", &local_transfer_entropy_cuda);
}

}  // namespace cuda
}  // namespace te
