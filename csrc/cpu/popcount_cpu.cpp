#include "popcount_cpu.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../te_math.h"

#if defined(__x86_64__)
#include <immintrin.h>
#define TE_X86 1
#else
#define TE_X86 0
#endif

namespace te {
namespace cpu {
namespace {

// Portable body: per pair of rows, the shared HOST_DEVICE primitive. Inlined
// into wrappers whose target attribute decides which popcount it compiles to.
__attribute__((always_inline)) inline void cross_block_scalar_body(
    const uint64_t* X, const uint64_t* Y, int64_t ld, int64_t w0, int64_t w1, int64_t a0,
    int64_t a1, int64_t b0, int64_t b1, int64_t* C, int64_t ldc) {
  for (int64_t a = a0; a < a1; ++a) {
    const uint64_t* x = X + a * ld + w0;
    for (int64_t b = b0; b < b1; ++b) {
      C[(a - a0) * ldc + (b - b0)] += math::and_popcount(x, Y + b * ld + w0, w1 - w0);
    }
  }
}

void cross_block_generic(const uint64_t* X, const uint64_t* Y, int64_t ld, int64_t w0,
                         int64_t w1, int64_t a0, int64_t a1, int64_t b0, int64_t b1, int64_t* C,
                         int64_t ldc) {
  cross_block_scalar_body(X, Y, ld, w0, w1, a0, a1, b0, b1, C, ldc);
}

int64_t and_popcount_generic(const uint64_t* a, const uint64_t* b, int64_t n) {
  return math::and_popcount(a, b, n);
}

#if TE_X86
__attribute__((target("popcnt"))) int64_t and_popcount_popcnt(const uint64_t* a,
                                                              const uint64_t* b, int64_t n) {
  return math::and_popcount(a, b, n);
}

__attribute__((target("popcnt"))) void cross_block_popcnt(const uint64_t* X, const uint64_t* Y,
                                                          int64_t ld, int64_t w0, int64_t w1,
                                                          int64_t a0, int64_t a1, int64_t b0,
                                                          int64_t b1, int64_t* C, int64_t ldc) {
  cross_block_scalar_body(X, Y, ld, w0, w1, a0, a1, b0, b1, C, ldc);
}

// AVX2 has no vector popcount: nibble lookup with vpshufb, bytes summed by vpsadbw.
__attribute__((target("avx2"), always_inline)) inline __m256i popcount256(__m256i v) {
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                       2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low));
  const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low));
  return _mm256_sad_epu8(_mm256_add_epi8(lo, hi), _mm256_setzero_si256());
}

__attribute__((target("avx2"))) int64_t and_popcount_avx2(const uint64_t* a, const uint64_t* b,
                                                          int64_t n) {
  __m256i acc = _mm256_setzero_si256();
  for (int64_t w = 0; w < n; w += 4) {
    const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + w));
    const __m256i y = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + w));
    acc = _mm256_add_epi64(acc, popcount256(_mm256_and_si256(x, y)));
  }
  alignas(32) int64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx2"))) void cross_block_avx2(const uint64_t* X, const uint64_t* Y,
                                                      int64_t ld, int64_t w0, int64_t w1,
                                                      int64_t a0, int64_t a1, int64_t b0,
                                                      int64_t b1, int64_t* C, int64_t ldc) {
  // 2 x 4 register tile: 8 accumulators and 6 loads fit the 16 ymm registers.
  for (int64_t a = a0; a < a1; a += 2) {
    for (int64_t b = b0; b < b1; b += 4) {
      __m256i acc[2][4];
      for (int r = 0; r < 2; ++r)
        for (int s = 0; s < 4; ++s) acc[r][s] = _mm256_setzero_si256();
      for (int64_t w = w0; w < w1; w += 4) {
        __m256i xv[2], yv[4];
        for (int r = 0; r < 2; ++r)
          xv[r] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(X + (a + r) * ld + w));
        for (int s = 0; s < 4; ++s)
          yv[s] = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(Y + (b + s) * ld + w));
        for (int r = 0; r < 2; ++r)
          for (int s = 0; s < 4; ++s)
            acc[r][s] = _mm256_add_epi64(acc[r][s], popcount256(_mm256_and_si256(xv[r], yv[s])));
      }
      for (int r = 0; r < 2; ++r) {
        for (int s = 0; s < 4; ++s) {
          alignas(32) int64_t lanes[4];
          _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), acc[r][s]);
          C[(a - a0 + r) * ldc + (b - b0 + s)] += lanes[0] + lanes[1] + lanes[2] + lanes[3];
        }
      }
    }
  }
}

// Own horizontal sum: GCC 12's _mm512_reduce_add_epi64 trips -Wuninitialized.
__attribute__((target("avx512f"), always_inline)) inline int64_t sum_lanes512(__m512i v) {
  alignas(64) int64_t lanes[8];
  _mm512_store_si512(lanes, v);
  return ((lanes[0] + lanes[1]) + (lanes[2] + lanes[3])) +
         ((lanes[4] + lanes[5]) + (lanes[6] + lanes[7]));
}

__attribute__((target("avx512f,avx512vpopcntdq"))) int64_t and_popcount_avx512(
    const uint64_t* a, const uint64_t* b, int64_t n) {
  __m512i acc = _mm512_setzero_si512();
  for (int64_t w = 0; w < n; w += 8) {
    acc = _mm512_add_epi64(
        acc, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_loadu_si512(a + w),
                                                  _mm512_loadu_si512(b + w))));
  }
  return sum_lanes512(acc);
}

__attribute__((target("avx512f,avx512vpopcntdq"))) void cross_block_avx512(
    const uint64_t* X, const uint64_t* Y, int64_t ld, int64_t w0, int64_t w1, int64_t a0,
    int64_t a1, int64_t b0, int64_t b1, int64_t* C, int64_t ldc) {
  // 4 x 4 register tile: 16 accumulators + 8 loads of the 32 zmm registers.
  for (int64_t a = a0; a < a1; a += kRowTile) {
    for (int64_t b = b0; b < b1; b += kRowTile) {
      __m512i acc[4][4];
      for (int r = 0; r < 4; ++r)
        for (int s = 0; s < 4; ++s) acc[r][s] = _mm512_setzero_si512();
      for (int64_t w = w0; w < w1; w += 8) {
        __m512i xv[4], yv[4];
        for (int r = 0; r < 4; ++r) xv[r] = _mm512_loadu_si512(X + (a + r) * ld + w);
        for (int s = 0; s < 4; ++s) yv[s] = _mm512_loadu_si512(Y + (b + s) * ld + w);
        for (int r = 0; r < 4; ++r)
          for (int s = 0; s < 4; ++s)
            acc[r][s] =
                _mm512_add_epi64(acc[r][s], _mm512_popcnt_epi64(_mm512_and_si512(xv[r], yv[s])));
      }
      for (int r = 0; r < 4; ++r)
        for (int s = 0; s < 4; ++s)
          C[(a - a0 + r) * ldc + (b - b0 + s)] += sum_lanes512(acc[r][s]);
    }
  }
}
#endif

struct Candidate {
  PopcountKernel kernel;
  bool (*supported)();
};

bool always() { return true; }
#if TE_X86
bool has_popcnt() { return __builtin_cpu_supports("popcnt"); }
bool has_avx2() { return __builtin_cpu_supports("avx2"); }
bool has_avx512() {
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq");
}
#endif

const std::vector<Candidate>& candidates() {
  static const std::vector<Candidate> all = {
#if TE_X86
      {{"avx512_vpopcntdq", cross_block_avx512, and_popcount_avx512}, has_avx512},
      {{"avx2", cross_block_avx2, and_popcount_avx2}, has_avx2},
      {{"popcnt", cross_block_popcnt, and_popcount_popcnt}, has_popcnt},
#endif
      {{"generic", cross_block_generic, and_popcount_generic}, always},
  };
  return all;
}

const PopcountKernel* find_kernel(const std::string& name) {
  for (const auto& c : candidates()) {
    if (name == c.kernel.name && c.supported()) return &c.kernel;
  }
  return nullptr;
}

const PopcountKernel* pick_default() {
  if (const char* env = std::getenv("TE_EXT_CPU_KERNEL")) {
    if (const PopcountKernel* k = find_kernel(env)) return k;
  }
  for (const auto& c : candidates()) {
    if (c.supported()) return &c.kernel;
  }
  return &candidates().back().kernel;
}

std::atomic<const PopcountKernel*>& current() {
  static std::atomic<const PopcountKernel*> k{pick_default()};
  return k;
}

}  // namespace

const PopcountKernel& popcount_kernel() { return *current().load(std::memory_order_relaxed); }

std::string available_kernels() {
  std::string out;
  for (const auto& c : candidates()) {
    if (!c.supported()) continue;
    if (!out.empty()) out += ",";
    out += c.kernel.name;
  }
  return out;
}

void set_popcount_kernel(const std::string& name) {
  const PopcountKernel* k = find_kernel(name);
  TORCH_CHECK_VALUE(k != nullptr, "cpu_kernel must be one of this CPU's kernels (",
                    available_kernels(), "), got '", name, "'");
  current().store(k, std::memory_order_relaxed);
}

}  // namespace cpu
}  // namespace te
