// CUDA implementations of the torch.ops.te ops: argument checks (shared with
// the CPU path), device guard, and the calls into packing and pair kernels.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <c10/cuda/CUDAFunctions.h>
#include <c10/cuda/CUDAGuard.h>
#include <cuda_runtime_api.h>
#include <torch/library.h>

#include <limits>
#include <mutex>
#include <unordered_map>

#include "../te_plan.h"
#include "../window_plan.h"
#include "pack_cuda.h"
#include "pair_counts_cuda.h"

namespace te {
namespace cuda {
namespace {

// Pack step of the drivers: the memory check (per-pair histograms are part of
// the output here: no per-worker scratch), then each side.
Packed pack_cuda(const at::Tensor& source, const at::Tensor& target, const SeriesPlan& p,
                 int64_t output_bytes, const char* op) {
  // Against the device's free memory, queried only for large requests (check_fits).
  return pack_both(p, workspace_bytes(p, kRowPad, /*workers=*/0), output_bytes,
                   std::numeric_limits<int64_t>::max(), op, [&] {
                     return Packed{pack_side_cuda(source, p, /*is_target=*/false, op, "source"),
                                   pack_side_cuda(target, p, /*is_target=*/true, op, "target")};
                   });
}

// Every pair's counts or TE. The one-hot path's cross-count matrix (I*J*bins int64) is
// workspace either way, and the counts output is as large again.
at::Tensor all_pairs_op_cuda(const at::Tensor& source, const at::Tensor& target, int64_t k,
                             int64_t l, int64_t delay, std::optional<double> threshold,
                             PairOutput output, const char* op) {
  const SeriesPlan p = plan_series(source, target, k, l, delay, threshold, op);
  const c10::cuda::CUDAGuard guard(source.device());
  const int64_t cross_bytes = mul_sat(mul_sat(mul_sat(p.I, p.J), p.bins), 8);
  const int64_t bytes = output == PairOutput::kCounts ? add_sat(cross_bytes, cross_bytes)
                                                      : cross_bytes;
  const Packed x = pack_cuda(source, target, p, bytes, op);
  return all_pairs_cuda(x.source, x.target, p, output);
}

at::Tensor joint_counts_cuda(const at::Tensor& source, const at::Tensor& target, int64_t k,
                             int64_t l, int64_t delay, std::optional<double> threshold) {
  return all_pairs_op_cuda(source, target, k, l, delay, threshold, PairOutput::kCounts,
                           "te.joint_counts");
}

at::Tensor transfer_entropy_cuda(const at::Tensor& source, const at::Tensor& target, int64_t k,
                                 int64_t l, int64_t delay, std::optional<double> threshold) {
  return all_pairs_op_cuda(source, target, k, l, delay, threshold,
                           PairOutput::kTransferEntropy, "te.transfer_entropy");
}

at::Tensor transfer_entropy_pairs_cuda(const at::Tensor& source, const at::Tensor& target,
                                       const at::Tensor& pairs, int64_t k, int64_t l,
                                       int64_t delay, std::optional<double> threshold) {
  const char* op = "te.transfer_entropy_pairs";
  const SeriesPlan p = plan_series(source, target, k, l, delay, threshold, op);
  check_pairs(pairs, p, source.device(), op);
  const c10::cuda::CUDAGuard guard(source.device());
  const int64_t out_bytes = mul_sat(mul_sat(pairs.size(0), p.onehot ? 1 : p.bins), 8);
  const Packed x = pack_cuda(source, target, p, out_bytes, op);
  return listed_pairs_te_cuda(x.source, x.target, p, pairs.contiguous());
}

at::Tensor te_from_counts_cuda(const at::Tensor& counts, int64_t k, int64_t l) {
  const char* op = "te.te_from_counts";
  check_counts(counts, k, l, op);
  const c10::cuda::CUDAGuard guard(counts.device());
  const std::vector<int64_t> shape = pair_shape(counts);
  if (counts.numel() == 0) return at::empty(shape, counts.options().dtype(at::kDouble));
  const at::Tensor c = counts.to(at::kLong).contiguous();
  check_count_values_cuda(c, int64_t(1) << (k + l + 1), op);  // the op's one sync
  return te_from_counts_cuda_impl(c, static_cast<int>(k), static_cast<int>(l)).view(shape);
}

// The TE refresh of training: counts that a window produced itself are
// non-negative and bounded by the window, so the range check (and its sync) is
// skipped. A recorded bad input value turns every TE into NaN, on the device.
at::Tensor te_from_window_counts_cuda(const at::Tensor& counts,
                                      const std::optional<at::Tensor>& status, int64_t k,
                                      int64_t l) {
  const char* op = "te._te_from_window_counts";
  check_counts(counts, k, l, op);
  TORCH_CHECK_TYPE(counts.scalar_type() == at::kLong, op, ": counts must be int64, got ",
                   counts.scalar_type());
  if (status.has_value()) check_window_status(*status, counts, op);
  const c10::cuda::CUDAGuard guard(counts.device());
  const std::vector<int64_t> shape = pair_shape(counts);
  const at::Tensor c = counts.contiguous();
  return te_from_counts_cuda_impl(c, static_cast<int>(k), static_cast<int>(l),
                                  status.has_value() ? status->const_data_ptr<int64_t>() : nullptr)
      .view(shape);
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CUDA, m) {
  m.impl("_te_from_window_counts", &te_from_window_counts_cuda);
  m.impl("joint_counts", &joint_counts_cuda);
  m.impl("te_from_counts", &te_from_counts_cuda);
  m.impl("transfer_entropy", &transfer_entropy_cuda);
  m.impl("transfer_entropy_pairs", &transfer_entropy_pairs_cuda);
}

}  // namespace cuda
}  // namespace te
