// Packing a time-major series into the bit streams the counting kernels read.
#pragma once

#include <ATen/core/Tensor.h>

#include <cstdint>
#include <utility>

#include "../packed.h"
#include "../te_plan.h"

namespace te {
namespace cpu {

using PackedSide = ::te::PackedSide;  // shared with the CUDA drivers (packed.h)

// In place: afterwards bit t of a[c] is what bit c of a[t] was (a 64 x 64
// bit transpose; also used by the surrogates to permute observations).
void transpose_bits64(uint64_t a[64]);

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
