// Runtime-dispatched AND+popcount block kernels: the hot loop of the counts.
#pragma once

#include <cstdint>
#include <string>

namespace te {
namespace cpu {

// Tile sizes of the block kernel; callers pad row counts to kRowTile.
constexpr int64_t kRowTile = 4;

// C[(a - a0) * ldc + (b - b0)] (+)= sum_{w in [w0, w1)} popcount(X[a][w] & Y[b][w])
// for a in [a0, a1), b in [b0, b1): the first chunk (w0 == 0) writes C, so C
// needs no zeroing, and later chunks add to it. Rows are `ld` words apart;
// a1 - a0 and b1 - b0 are multiples of kRowTile; w0 and w1 are multiples of
// kWordPad.
using CrossBlockFn = void (*)(const uint64_t* X, const uint64_t* Y, int64_t ld, int64_t w0,
                              int64_t w1, int64_t a0, int64_t a1, int64_t b0, int64_t b1,
                              int64_t* C, int64_t ldc);

// sum_{w < n} popcount(a[w] & b[w]), n a multiple of kWordPad: one pair of rows.
using AndPopcountFn = int64_t (*)(const uint64_t* a, const uint64_t* b, int64_t n);

struct PopcountKernel {
  const char* name;
  CrossBlockFn cross_block;
  AndPopcountFn and_popcount;
  bool avx2;  // the CPU has AVX2: packing may use its AVX2 paths too
};

// The kernel chosen for this CPU (first call decides; TE_EXT_CPU_KERNEL
// overrides with one of the names below when the CPU supports it).
const PopcountKernel& popcount_kernel();

// Names of the kernels this CPU can run, best first.
std::string available_kernels();

// Selects a kernel by name for tests; throws ValueError if unknown/unsupported.
void set_popcount_kernel(const std::string& name);

}  // namespace cpu
}  // namespace te
