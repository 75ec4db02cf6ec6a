// Entry points of the CPU ops for other CPU kernels of this library.
#pragma once

#include <ATen/core/Tensor.h>

namespace te {
namespace cpu {

// counts (int64 [I, J, 2^(k+l+1)], contiguous) += sign * joint_counts(source,
// target, k, l, delay) for 0/1 inputs, without allocating the histogram.
void accumulate_joint_counts_cpu(at::Tensor& counts, const at::Tensor& source,
                                 const at::Tensor& target, int64_t k, int64_t l, int64_t delay,
                                 int64_t sign, const char* op);

// Raises ValueError unless the n user-given counts c are non-negative and a
// histogram of `bins` of them sums within int64 (check_count_range).
void check_count_values(const int64_t* c, int64_t n, int64_t bins, const char* op);

}  // namespace cpu
}  // namespace te
