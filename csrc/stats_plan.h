// Argument checks of the statistics ops, shared by the CPU and CUDA kernels so
// that both reject the same inputs with the same messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Exception.h>

#include "te_plan.h"

namespace te {
namespace stats {

// permutations: int64 [S, nobs], S >= 1, on `device`. That each row is a
// permutation of 0..nobs-1 is checked by the kernels (row_is_permutation on
// the CPU, a sort on CUDA).
// On a description (the fake kernels call it through te_ext._C) or on a tensor.
inline void check_permutations_shape(const TensorInfo& perm, const SeriesPlan& p,
                                     const at::Device& device, const char* op) {
  TORCH_CHECK_TYPE(perm.dtype == at::kLong, op,
                   ": permutations must be int64 [surrogates, n_obs], got dtype ", perm.dtype);
  TORCH_CHECK_VALUE(perm.dim() == 2 && perm.size(0) >= 1, op,
                    ": permutations must have shape [surrogates >= 1, n_obs], got ", perm.sizes);
  TORCH_CHECK_VALUE(perm.size(1) == p.nobs, op, ": permutations must have n_obs = R * (T - n0) = ",
                    p.nobs, " columns (the pooled observations), got ", perm.size(1));
  TORCH_CHECK_VALUE(perm.device == device, op, ": permutations must be on ", device,
                    " like source and target, got ", perm.device);
}

inline void check_permutations_shape(const at::Tensor& perm, const SeriesPlan& p,
                                     const at::Device& device, const char* op) {
  check_permutations_shape(info(perm), p, device, op);
}

inline void fail_not_permutation(int64_t row, int64_t nobs, const char* op) {
  TORCH_CHECK_VALUE(false, op, ": permutations[", row, "] is not a permutation of 0..", nobs - 1);
}

}  // namespace stats
}  // namespace te
