// Where the CPU delay scans write each pair's result, from the pair's joint
// counts at one delay:
//  * kTe:      TE, float64 [D, I, J] (te.transfer_entropy_delays);
//  * kSigned:  TE and, beside it, the sorted local TE of the same counts,
//              float64 [2, D, I, J] (te.transfer_entropy_delays_signed): the
//              sign costs no second pass over the data;
//  * kCounts:  the joint counts themselves, int64 [D, I, J, bins]
//              (te._transfer_entropy_delays_counts), so tests can compare the
//              paths' integers, not only what is computed from them.
#pragma once

#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <vector>

#include "../stats_math.h"

namespace te {
namespace cpu {

enum class ScanResult { kTe, kSigned, kCounts };

class DelayScanOutput {
 public:
  DelayScanOutput(int64_t D, int64_t I, int64_t J, int64_t bins, ScanResult what,
                  const at::TensorOptions& options)
      : what_(what), bins_(bins), I_(I), J_(J), plane_(D * I * J) {
    if (what == ScanResult::kCounts) {
      tensor_ = at::empty({D, I, J, bins}, options.dtype(at::kLong));
      counts_ = tensor_.data_ptr<int64_t>();
    } else {
      tensor_ = at::empty(what == ScanResult::kSigned ? std::vector<int64_t>{2, D, I, J}
                                                      : std::vector<int64_t>{D, I, J},
                          options.dtype(at::kDouble));
      te_ = tensor_.data_ptr<double>();
    }
  }

  // Bytes of output per (delay, pair), for the memory checks made before allocating.
  static int64_t bytes_per_pair(ScanResult what, int64_t bins) {
    return what == ScanResult::kCounts ? 8 * bins : what == ScanResult::kSigned ? 16 : 8;
  }

  // Delay slot q of pair (i, j): its joint counts and the TE computed from them.
  void put(int64_t q, int64_t i, int64_t j, double te, const int64_t* bins, int k, int l) {
    const int64_t at = (q * I_ + i) * J_ + j;
    if (counts_ != nullptr) {
      std::copy(bins, bins + bins_, counts_ + at * bins_);
      return;
    }
    te_[at] = te;
    if (what_ == ScanResult::kSigned)
      te_[plane_ + at] = stats::sorted_local_te_from_joint_counts(bins, k, l);
  }

  // The same result into every slot of a delay listed more than once.
  void put(const std::vector<int64_t>& slots, int64_t i, int64_t j, double te,
           const int64_t* bins, int k, int l) {
    for (const int64_t q : slots) put(q, i, j, te, bins, k, l);
  }

  const at::Tensor& tensor() const { return tensor_; }

 private:
  ScanResult what_;
  int64_t bins_, I_, J_, plane_;
  at::Tensor tensor_;
  double* te_ = nullptr;
  int64_t* counts_ = nullptr;
};

}  // namespace cpu
}  // namespace te
