// Launch geometry shared by the CUDA kernels: 1-D grid-stride loops, so any
// problem size fits in a grid without limits on the grid's dimensions.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../te_math.h"

namespace te {
namespace cuda {

constexpr int kThreads = 256;

// Blocks for n grid-stride elements: at least one (a zero-block launch is an
// "invalid configuration" error; a block with nothing to do just returns).
inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(
      std::max<int64_t>(1, std::min<int64_t>(math::ceil_div(n, kThreads), 65535 * 32)));
}

// The most blocks a grid may have along y or z.
constexpr int64_t kMaxGridYZ = 65535;

// First index of this thread and the stride of a grid-stride loop.
__device__ __forceinline__ int64_t grid_start() {
  return blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace cuda
}  // namespace te
