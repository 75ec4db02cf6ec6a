// Packing a time-major series into the bit streams the counting kernels read.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
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

// The end of one column's one-hot streams (state s >= 1 in row s - 1, `p.words` words a
// row, cnt[s] its count so far): zeroes each row's padding past R * rep_words, so the
// counting kernels may read whole blocks, and sets cnt[0] to the observations left over.
inline void finish_onehot_column(const SeriesPlan& p, int64_t S, int64_t nobs, uint64_t* rows,
                                 int64_t* cnt) {
  const int64_t used = p.R * p.rep_words;
  int64_t nonzero = 0;
  for (int64_t s = 1; s < S; ++s) {
    std::fill(rows + (s - 1) * p.words + used, rows + s * p.words, uint64_t(0));
    nonzero += cnt[s];
  }
  cnt[0] = nobs - nonzero;
}

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
