#include "popcount_cpu.h"

#include <c10/util/Exception.h>

#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../te_math.h"

#if defined(__x86_64__)
// GCC 12's AVX-512 headers build vectors from _mm512_undefined_*(), which
// -Wmaybe-uninitialized reports inside our functions once inlined (GCC bug
// 105593); the warning is about the header, not this file's code.
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic ignored "-Wuninitialized"
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
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

// The lane sums of a0..a3 as one vector [sum a0, sum a1, sum a2, sum a3]:
// a shuffle tree instead of four separate horizontal sums, which cost as much
// as the popcounts themselves for short series.
__attribute__((target("avx512f"), always_inline)) inline __m256i sum_lanes512x4(
    __m512i a0, __m512i a1, __m512i a2, __m512i a3) {
  // 128-bit block j of s01 holds (a0 pair j, a1 pair j); of s23, (a2.., a3..).
  const __m512i s01 = _mm512_add_epi64(_mm512_unpacklo_epi64(a0, a1), _mm512_unpackhi_epi64(a0, a1));
  const __m512i s23 = _mm512_add_epi64(_mm512_unpacklo_epi64(a2, a3), _mm512_unpackhi_epi64(a2, a3));
  // Blocks [s01_0 + s01_1, s01_2 + s01_3, s23_0 + s23_1, s23_2 + s23_3].
  const __m512i u = _mm512_add_epi64(_mm512_shuffle_i64x2(s01, s23, _MM_SHUFFLE(2, 0, 2, 0)),
                                     _mm512_shuffle_i64x2(s01, s23, _MM_SHUFFLE(3, 1, 3, 1)));
  const __m256i lo = _mm512_castsi512_si256(u);
  const __m256i hi = _mm512_extracti64x4_epi64(u, 1);
  return _mm256_add_epi64(_mm256_permute2x128_si256(lo, hi, 0x20),
                          _mm256_permute2x128_si256(lo, hi, 0x31));
}

__attribute__((target("avx512f,avx512vpopcntdq"))) int64_t and_popcount_avx512(
    const uint64_t* a, const uint64_t* b, int64_t n) {
  __m512i acc = _mm512_setzero_si512();
  for (int64_t w = 0; w < n; w += 8) {
    acc = _mm512_add_epi64(
        acc, _mm512_popcnt_epi64(_mm512_and_si512(_mm512_loadu_si512(a + w),
                                                  _mm512_loadu_si512(b + w))));
  }
  return _mm512_reduce_add_epi64(acc);
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
      for (int r = 0; r < 4; ++r) {
        __m256i* out = reinterpret_cast<__m256i*>(C + (a - a0 + r) * ldc + (b - b0));
        _mm256_storeu_si256(out, _mm256_add_epi64(_mm256_loadu_si256(out),
                                                  sum_lanes512x4(acc[r][0], acc[r][1], acc[r][2],
                                                                 acc[r][3])));
      }
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
