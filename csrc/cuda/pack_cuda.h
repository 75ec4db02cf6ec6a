// Packing on the GPU into the same stream layout as the CPU (see cpu/pack_cpu.h).
#pragma once

#include <ATen/core/Tensor.h>

#include "../packed.h"
#include "../te_plan.h"

namespace te {
namespace cuda {

using PackedSide = ::te::PackedSide;  // shared with the CPU drivers (packed.h)

// Rows of the one-hot matrices are padded to this (the GEMM path's int8
// matmul wants more than 16 rows and multiples of 8).
constexpr int64_t kRowPad = 32;

// Binarises and packs `x` ([T, C] or [R, T, C], any strides, on a CUDA
// device). Raises ValueError naming `name` on NaN / non-binary values; this
// check is a device-to-host sync, skipped for bool input (binary by type).
PackedSide pack_side_cuda(const at::Tensor& x, const SeriesPlan& p, bool is_target,
                          const char* op, const char* name);

}  // namespace cuda
}  // namespace te
