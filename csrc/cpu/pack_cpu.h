// Packing a time-major series into the bit streams the counting kernels read.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

#include "../te_plan.h"

namespace te {
namespace cpu {

// In place: afterwards bit t of a[c] is what bit c of a[t] was (a 64 x 64
// bit transpose; also used by the surrogates to permute observations).
void transpose_bits64(uint64_t a[64]);

// One side (source or target) of a problem, packed.
struct PackedSide {
  at::Tensor onehot;  // int64 [rows_padded, plan.words]: one-hot stream of state s of
                      // neuron c at row c*(S-1) + s-1 (one-hot path only)
  at::Tensor states;  // int32 [C, nobs]: state of every observation (histogram path only)
  at::Tensor counts;  // int64 [C, S]: how often each state occurs
  int64_t streams = 0;  // S - 1 one-hot streams per neuron
};

// Binarises (value > threshold, or checks 0/1) and packs `x` ([T, C] or
// [R, T, C], any strides) as the target (ynext, ypast) or the source (xpast)
// side. Raises ValueError naming `name` on a NaN or non-binary value.
PackedSide pack_side_cpu(const at::Tensor& x, const SeriesPlan& p, bool is_target,
                         int64_t row_pad, const char* op, const char* name);

// Both sides at once, in one parallel region (fewer fork/joins, and the
// threads share the blocks of both sides): {source, target}. Raises as
// pack_side_cpu, naming "source" or "target" (source checked first).
std::pair<PackedSide, PackedSide> pack_sides_cpu(const at::Tensor& source,
                                                 const at::Tensor& target, const SeriesPlan& p,
                                                 int64_t row_pad, const char* op);

}  // namespace cpu
}  // namespace te
