#include "popcount_cpu.h"

#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstdlib>
#include <cstring>
#include <vector>

#include "../te_math.h"

#include "x86.h"

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
      int64_t& c = C[(a - a0) * ldc + (b - b0)];
      c = (w0 == 0 ? 0 : c) + math::and_popcount(x, Y + b * ld + w0, w1 - w0);
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

// AVX2 has no vector popcount: a nibble lookup with vpshufb. Zen 3 (this
// project's AVX2 machines) issues four vector ALU ops and two vpshufb a cycle,
// so the inner loop is held to six ops per 256 bits of a pair: two ANDs, two
// lookups, two byte adds. For that,
//  * every row of a block is split once into its low and high nibbles
//    (w & 0x0f.., (w >> 4) & 0x0f..), so the per-pair loop does no shifting
//    or masking: the split is paid once per row, not once per pair;
//  * counts accumulate in bytes (at most 8 per byte per vector) and are
//    widened by vpsadbw only after kAvx2Run vectors;
//  * Y rows are stored in groups of 8 interleaved by vector, so one X row
//    meets a group through one pointer, and the group stays in L1 while
//    every X row passes it.
constexpr int64_t kAvx2Run = 31;  // 31 * 8 = 248 <= 255: byte counters cannot wrap
constexpr int64_t kAvx2Group = 8;  // Y rows per register tile (8 accumulators)

// Per-thread scratch for the nibble-split rows (64-byte aligned).
struct Avx2Scratch {
  void* data = nullptr;
  size_t bytes = 0;
  Avx2Scratch() = default;
  Avx2Scratch(const Avx2Scratch&) = delete;
  Avx2Scratch& operator=(const Avx2Scratch&) = delete;
  ~Avx2Scratch() { std::free(data); }
  void* get(size_t want) {
    if (want > bytes) {
      std::free(data);
      bytes = (want + 4095) & ~size_t(4095);
      data = std::aligned_alloc(64, bytes);
      TORCH_CHECK(data != nullptr, "te: out of memory for a ", bytes, "-byte kernel scratch");
    }
    return data;
  }
};

__attribute__((target("avx2"), always_inline)) inline __m256i nibble_lut() {
  return _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1, 2, 1, 2, 2, 3,
                          1, 2, 2, 3, 2, 3, 3, 4);
}

// [sum of a0's lanes, sum of a1's, sum of a2's, sum of a3's].
__attribute__((target("avx2"), always_inline)) inline __m256i sum_lanes256x4(__m256i a0, __m256i a1,
                                                                         __m256i a2, __m256i a3) {
  const __m256i s01 = _mm256_add_epi64(_mm256_unpacklo_epi64(a0, a1), _mm256_unpackhi_epi64(a0, a1));
  const __m256i s23 = _mm256_add_epi64(_mm256_unpacklo_epi64(a2, a3), _mm256_unpackhi_epi64(a2, a3));
  return _mm256_add_epi64(_mm256_permute2x128_si256(s01, s23, 0x20),
                          _mm256_permute2x128_si256(s01, s23, 0x31));
}

// Splits rows into low/high nibbles, vector v of row r at
// dst[(g * nv + v) * G + r % G) * 2 + {0, 1}], g = r / G: each group of G
// rows interleaved by vector, so one pointer walks all G rows of a run. G = 1
// stores rows one after another; the last group may hold fewer rows (a
// multiple of 4), interleaved by its own size.
template <int G>
__attribute__((target("avx2"), always_inline)) inline void split_nibbles(const uint64_t* src,
                                                                         int64_t ld, int64_t rows,
                                                                         int64_t nv,
                                                                         __m256i* dst) {
  const __m256i low = _mm256_set1_epi8(0x0f);
  for (int64_t g0 = 0; g0 < rows; g0 += G) {
    const int64_t gs = std::min<int64_t>(G, rows - g0);
    __m256i* group = dst + g0 * nv * 2;
    for (int64_t r = 0; r < gs; ++r) {
      const uint64_t* row = src + (g0 + r) * ld;
      for (int64_t v = 0; v < nv; ++v) {
        const __m256i x = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(row + 4 * v));
        __m256i* out = group + (v * gs + r) * 2;
        _mm256_store_si256(out, _mm256_and_si256(x, low));
        _mm256_store_si256(out + 1, _mm256_and_si256(_mm256_srli_epi16(x, 4), low));
      }
    }
  }
}

// One split X row against a group of NY split Y rows (interleaved by vector)
// over nv <= kAvx2Run vectors: c[s] = (add ? c[s] : 0) + count of (x, row s).
// Writes (add = false) or adds the byte counters acc[0..NY), widened by
// vpsadbw, to c[0..NY).
template <int NY>
__attribute__((target("avx2"), always_inline)) inline void avx2_flush(const __m256i* acc,
                                                                    bool add, int64_t* c) {
  const __m256i z = _mm256_setzero_si256();
  for (int s = 0; s < NY; s += 4) {
    __m256i* out = reinterpret_cast<__m256i*>(c + s);
    const __m256i sums =
        sum_lanes256x4(_mm256_sad_epu8(acc[s], z), _mm256_sad_epu8(acc[s + 1], z),
                       _mm256_sad_epu8(acc[s + 2], z), _mm256_sad_epu8(acc[s + 3], z));
    _mm256_storeu_si256(out, add ? _mm256_add_epi64(_mm256_loadu_si256(out), sums) : sums);
  }
}

template <int NY>
__attribute__((target("avx2"), always_inline)) inline void avx2_row_group(const __m256i* x,
                                                                        const __m256i* y,
                                                                        int64_t nv, bool add,
                                                                        int64_t* c) {
  const __m256i lut = nibble_lut();
  __m256i acc[NY];
  for (int s = 0; s < NY; ++s) acc[s] = _mm256_setzero_si256();
  for (int64_t v = 0; v < nv; ++v, x += 2, y += 2 * NY) {
    const __m256i xl = _mm256_load_si256(x), xh = _mm256_load_si256(x + 1);
    for (int s = 0; s < NY; ++s) {
      const __m256i lo = _mm256_shuffle_epi8(lut, _mm256_and_si256(xl, _mm256_load_si256(y + 2 * s)));
      const __m256i hi = _mm256_shuffle_epi8(lut, _mm256_and_si256(xh, _mm256_load_si256(y + 2 * s + 1)));
      acc[s] = _mm256_add_epi8(acc[s], lo);
      acc[s] = _mm256_add_epi8(acc[s], hi);
    }
  }
  avx2_flush<NY>(acc, add, c);
}

#if defined(__GNUC__)
// The 8-row group in inline assembly: GCC allocates the intrinsics version
// with an accumulator spilled to the stack and extra register copies in the
// loop (measured in the op: ~15% slower than this loop's 13 ymm registers).
template <>
__attribute__((target("avx2"), always_inline)) inline void avx2_row_group<8>(const __m256i* x,
                                                                           const __m256i* y,
                                                                           int64_t nv, bool add,
                                                                           int64_t* c) {
  const __m256i lut = nibble_lut();
  __m256i a0 = _mm256_setzero_si256(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0,
          a7 = a0;
  __m256i xl, xh, t0, t1;
  for (int64_t v = 0; v < nv; ++v, x += 2, y += 16) {
    // Row s of the group: lo/hi nibbles at y + 64 s bytes, + 32.
#define TE_AVX2_STEP(S, A)                           \
  "vpand " #S "*64(%[y]), %[xl], %[t0]\n\t"          \
  "vpand " #S "*64+32(%[y]), %[xh], %[t1]\n\t"       \
  "vpshufb %[t0], %[lut], %[t0]\n\t"                 \
  "vpshufb %[t1], %[lut], %[t1]\n\t"                 \
  "vpaddb %[t0], %[" #A "], %[" #A "]\n\t"           \
  "vpaddb %[t1], %[" #A "], %[" #A "]\n\t"
    asm("vmovdqa (%[x]), %[xl]\n\t"
        "vmovdqa 32(%[x]), %[xh]\n\t"
        TE_AVX2_STEP(0, a0) TE_AVX2_STEP(1, a1) TE_AVX2_STEP(2, a2) TE_AVX2_STEP(3, a3)
        TE_AVX2_STEP(4, a4) TE_AVX2_STEP(5, a5) TE_AVX2_STEP(6, a6) TE_AVX2_STEP(7, a7)
        : [a0] "+x"(a0), [a1] "+x"(a1), [a2] "+x"(a2), [a3] "+x"(a3), [a4] "+x"(a4),
          [a5] "+x"(a5), [a6] "+x"(a6), [a7] "+x"(a7), [xl] "=&x"(xl), [xh] "=&x"(xh),
          [t0] "=&x"(t0), [t1] "=&x"(t1)
        : [x] "r"(x), [y] "r"(y), [lut] "x"(lut), "m"(*reinterpret_cast<const char(*)[64]>(x)),
          "m"(*reinterpret_cast<const char(*)[512]>(y)));
#undef TE_AVX2_STEP
  }
  const __m256i acc[8] = {a0, a1, a2, a3, a4, a5, a6, a7};
  avx2_flush<8>(acc, add, c);
}
#endif

__attribute__((target("avx2"))) int64_t and_popcount_avx2(const uint64_t* a, const uint64_t* b,
                                                          int64_t n) {
  const __m256i lut = nibble_lut();
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i z = _mm256_setzero_si256();
  __m256i total = z;
  for (int64_t w0 = 0; w0 < n; w0 += 4 * kAvx2Run) {
    const int64_t w1 = std::min(n, w0 + 4 * kAvx2Run);
    __m256i acc = z;
    for (int64_t w = w0; w < w1; w += 4) {
      const __m256i v = _mm256_and_si256(_mm256_loadu_si256(reinterpret_cast<const __m256i*>(a + w)),
                                         _mm256_loadu_si256(reinterpret_cast<const __m256i*>(b + w)));
      acc = _mm256_add_epi8(acc, _mm256_shuffle_epi8(lut, _mm256_and_si256(v, low)));
      acc = _mm256_add_epi8(acc, _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(v, 4), low)));
    }
    total = _mm256_add_epi64(total, _mm256_sad_epu8(acc, z));
  }
  alignas(32) int64_t lanes[4];
  _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), total);
  return lanes[0] + lanes[1] + lanes[2] + lanes[3];
}

__attribute__((target("avx2"))) void cross_block_avx2(const uint64_t* X, const uint64_t* Y,
                                                      int64_t ld, int64_t w0, int64_t w1,
                                                      int64_t a0, int64_t a1, int64_t b0,
                                                      int64_t b1, int64_t* C, int64_t ldc) {
  static thread_local Avx2Scratch scratch;
  const int64_t na = a1 - a0, nb = b1 - b0;
  for (int64_t wr = w0; wr < w1; wr += 4 * kAvx2Run) {
    const int64_t nv = (std::min(w1, wr + 4 * kAvx2Run) - wr) / 4;
    __m256i* xs = static_cast<__m256i*>(
        scratch.get(static_cast<size_t>((na + nb) * nv * 2) * sizeof(__m256i)));
    __m256i* ys = xs + na * nv * 2;
    split_nibbles<1>(X + a0 * ld + wr, ld, na, nv, xs);
    split_nibbles<kAvx2Group>(Y + b0 * ld + wr, ld, nb, nv, ys);
    // One group of Y rows (at most 16 KiB) stays in L1 while every X row
    // passes it.
    const bool add = wr != 0;  // the first run writes C
    for (int64_t g = 0; g < nb; g += kAvx2Group) {
      const __m256i* yg = ys + g * nv * 2;
      if (nb - g >= kAvx2Group) {
        for (int64_t a = 0; a < na; ++a)
          avx2_row_group<kAvx2Group>(xs + a * nv * 2, yg, nv, add, C + a * ldc + g);
      } else {  // the last group: 4 rows
        for (int64_t a = 0; a < na; ++a)
          avx2_row_group<4>(xs + a * nv * 2, yg, nv, add, C + a * ldc + g);
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
        const __m256i sums = sum_lanes512x4(acc[r][0], acc[r][1], acc[r][2], acc[r][3]);
        _mm256_storeu_si256(out, w0 == 0 ? sums : _mm256_add_epi64(_mm256_loadu_si256(out), sums));
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
  // Packing takes the AVX2 paths on this kernel too.
  return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vpopcntdq") &&
         __builtin_cpu_supports("avx2");
}
#endif

const std::vector<Candidate>& candidates() {
  static const std::vector<Candidate> all = {
#if TE_X86
      {{"avx512_vpopcntdq", cross_block_avx512, and_popcount_avx512, true}, has_avx512},
      {{"avx2", cross_block_avx2, and_popcount_avx2, true}, has_avx2},
      {{"popcnt", cross_block_popcnt, and_popcount_popcnt, false}, has_popcnt},
#endif
      {{"generic", cross_block_generic, and_popcount_generic, false}, always},
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
