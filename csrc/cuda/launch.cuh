// Launch geometry shared by the CUDA kernels: 1-D grid-stride loops, so any
// problem size fits in a grid without limits on the grid's dimensions.
#pragma once

#include <algorithm>
#include <cstdint>

#include "../te_math.h"

namespace te {
namespace cuda {

constexpr int kThreads = 256;

inline unsigned blocks_for(int64_t n) {
  return static_cast<unsigned>(std::min<int64_t>(math::ceil_div(n, kThreads), 65535 * 32));
}

// First index of this thread and the stride of a grid-stride loop.
__device__ __forceinline__ int64_t grid_start() {
  return blockIdx.x * int64_t(blockDim.x) + threadIdx.x;
}
__device__ __forceinline__ int64_t grid_stride() { return int64_t(gridDim.x) * blockDim.x; }

}  // namespace cuda
}  // namespace te
