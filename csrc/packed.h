// What the packing step of every driver hands to the counting step, on either
// device: the three drivers (joint_counts, transfer_entropy,
// transfer_entropy_pairs) of the CPU and of CUDA read pack -> count -> sink.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <limits>

#include "te_plan.h"

namespace te {

// One side (source or target) of a problem, packed.
struct PackedSide {
  at::Tensor onehot;  // int64 [rows_padded, plan.words]: one-hot stream of state s of
                      // neuron c at row c*(S-1) + s-1 (one-hot path only)
  at::Tensor states;  // int32 [C, nobs]: state of every observation (histogram path only)
  at::Tensor counts;  // int64 [C, S]: how often each state occurs
  int64_t streams = 0;  // S - 1 one-hot streams per neuron
};

struct Packed {
  PackedSide source, target;
};

// Checks that `workspace` plus `output` bytes fit in `limit` before anything
// is allocated (ValueError otherwise), then packs both sides: pack() -> Packed.
template <typename Pack>
Packed pack_both(const SeriesPlan& p, int64_t workspace, int64_t output, int64_t limit,
                 const char* op, Pack pack) {
  int64_t total = 0;
  if (__builtin_add_overflow(workspace, output, &total)) total = std::numeric_limits<int64_t>::max();
  check_fits(total, limit, p, op);
  return pack();
}

}  // namespace te
