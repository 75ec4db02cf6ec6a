// Pair counting and the fused TE reduction on the GPU.
#pragma once

#include <ATen/core/Tensor.h>

#include "../te_plan.h"
#include "pack_cuda.h"

namespace te {
namespace cuda {

// What the per-pair kernels produce from a pair's joint counts.
enum class PairOutput { kCounts, kTransferEntropy };

// All I x J pairs: int64 [I, J, bins] counts or float64 [I, J] TE.
at::Tensor all_pairs_cuda(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p,
                          PairOutput what);

// Listed pairs (int64 [P, 2], already range-checked): float64 [P] TE.
at::Tensor listed_pairs_te_cuda(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p,
                                const at::Tensor& pairs);

// TE of every [..., bins] histogram (int64, contiguous, non-negative). With a
// deferred window's `status` (device pointer), NaN everywhere once it recorded
// a bad input value.
at::Tensor te_from_counts_cuda_impl(const at::Tensor& counts, int k, int l,
                                    const int64_t* status = nullptr);

// Raises ValueError unless the user-given counts (int64) are non-negative and a
// histogram of `bins` of them sums within int64: one synchronisation, because
// counts out of range must raise, not overflow.
void check_count_values_cuda(const at::Tensor& counts, int64_t bins, const char* op);

}  // namespace cuda
}  // namespace te
