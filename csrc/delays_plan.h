// What the kernels of te.transfer_entropy_delays(_signed) share: the argument
// checks and the scan that any device runs.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include <optional>

namespace te {

// Raises ValueError unless `delays` is non-empty and every delay is >= 1.
void check_delays(c10::IntArrayRef delays, const char* op);

// The scan one delay at a time through the dispatcher (transfer_entropy, and
// with_sign: sorted_local_te of joint_counts): float64 [D, I, J], or
// [2, D, I, J] with the sorted local TE as [1]. Exact by construction, and it
// runs wherever those ops have kernels: what CUDA runs, and the CPU's path for
// histories too large for one-hot streams.
at::Tensor scan_by_delay(const at::Tensor& source, const at::Tensor& target,
                         c10::IntArrayRef delays, int64_t k, int64_t l,
                         std::optional<double> threshold, bool with_sign);

}  // namespace te
