#include "pack_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <mutex>
#include <vector>

#include "../te_math.h"
#include "popcount_cpu.h"

#include "x86.h"

namespace te {
namespace cpu {
namespace {

// Columns binarised together: one 64 x 64 bit block (64 time steps of 64
// columns) is read row by row, contiguously for time-major input, and then
// transposed so each column's 64 time steps land in one word.
constexpr int64_t kColumnBlock = 64;

// Remembers the first rejected value seen by any thread.
struct BadValue {
  std::atomic<bool> seen{false};
  std::mutex mu;
  double value = 0.0;
  void record(double v) {
    std::lock_guard<std::mutex> g(mu);
    if (!seen.load()) {
      value = v;
      seen.store(true);
    }
  }
};

}  // namespace

// In place: afterwards bit t of a[c] is what bit c of a[t] was.
void transpose_bits64(uint64_t a[64]) {
  uint64_t m = 0x00000000FFFFFFFFULL;
  for (int j = 32; j != 0; j >>= 1, m ^= m << j) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

namespace {

// Bit c = binarised row[c * sc], for c < nc.
template <typename scalar_t>
uint64_t row_bits(const scalar_t* row, int64_t sc, int64_t nc, const SeriesPlan& p, bool* bad) {
  uint64_t m = 0;
  for (int64_t c = 0; c < nc; ++c) {
    m |= static_cast<uint64_t>(math::to_bit(row[c * sc], p.has_threshold, p.threshold, bad)) << c;
  }
  return m;
}

// One-byte 0/1 values, 64 in a row: eight bytes at a time, gathered into
// eight bits by one multiply (byte b lands in bit 56 + b, then shifted down).
uint64_t row_bits_bytes01(const uint8_t* row, bool* bad) {
  uint64_t m = 0;
  for (int q = 0; q < 8; ++q) {
    uint64_t v;
    std::memcpy(&v, row + 8 * q, 8);
    *bad |= (v & 0xFEFEFEFEFEFEFEFEULL) != 0;
    m |= ((v * 0x0102040810204080ULL) >> 56) << (8 * q);
  }
  return m;
}

#if TE_X86
// Columns packed together by the AVX2 path: one 256-bit row load.
constexpr int64_t kAvx2Columns = 32;

// Time-major one-byte 0/1 values, 32 contiguous columns, rows `st` bytes
// apart: out[c * so] gets the nt <= 64 values of column c, bit t = row t (rows
// past nt read as 0). Returns false if a byte is neither 0 nor 1.
//
// Eight rows fold into one byte per column (Horner: acc = 2 acc + row, a byte
// add, so no bit crosses into the next byte), and a byte transpose of the
// eight folded vectors (unpack 8 -> 16 -> 32 bits) puts the eight bytes of a
// column into one word. This replaces a 64 x 64 bit transpose per block.
__attribute__((target("avx2"))) bool pack_bytes32_avx2(const uint8_t* rows, int64_t st, int64_t nt,
                                                      uint64_t* out, int64_t so) {
  const __m256i z = _mm256_setzero_si256();
  __m256i seen = z;
  __m256i v[8];
  for (int q = 0; q < 8; ++q) {
    __m256i acc = z;
    for (int b = 7; b >= 0; --b) {
      const int64_t t = 8 * q + b;
      acc = _mm256_add_epi8(acc, acc);
      if (t < nt) {
        const __m256i r = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(rows + t * st));
        seen = _mm256_or_si256(seen, r);
        acc = _mm256_or_si256(acc, r);
      }
    }
    v[q] = acc;
  }
  // Each 128-bit lane transposes its own 16 columns (lane 1: columns 16..31).
  for (int h = 0; h < 2; ++h) {
    __m256i pr[4];  // byte pairs (v[2k], v[2k+1]) of 8 lane-local columns
    for (int k = 0; k < 4; ++k)
      pr[k] = h == 0 ? _mm256_unpacklo_epi8(v[2 * k], v[2 * k + 1])
                     : _mm256_unpackhi_epi8(v[2 * k], v[2 * k + 1]);
    const __m256i p0 = pr[0], p1 = pr[1], p2 = pr[2], p3 = pr[3];
    for (int g = 0; g < 2; ++g) {
      const __m256i q0 = g == 0 ? _mm256_unpacklo_epi16(p0, p1) : _mm256_unpackhi_epi16(p0, p1);
      const __m256i q1 = g == 0 ? _mm256_unpacklo_epi16(p2, p3) : _mm256_unpackhi_epi16(p2, p3);
      const int c = 8 * h + 4 * g;  // lane-local column of the first word
      const __m256i r0 = _mm256_unpacklo_epi32(q0, q1);  // columns c, c + 1
      const __m256i r1 = _mm256_unpackhi_epi32(q0, q1);  // columns c + 2, c + 3
      const __m128i w[4] = {_mm256_castsi256_si128(r0), _mm256_castsi256_si128(r1),
                            _mm256_extracti128_si256(r0, 1), _mm256_extracti128_si256(r1, 1)};
      const int col[4] = {c, c + 2, 16 + c, 18 + c};
      for (int m = 0; m < 4; ++m) {
        _mm_storel_epi64(reinterpret_cast<__m128i*>(out + col[m] * so), w[m]);
        _mm_storeh_pd(reinterpret_cast<double*>(out + (col[m] + 1) * so), _mm_castsi128_pd(w[m]));
      }
    }
  }
  return _mm256_testz_si256(seen, _mm256_set1_epi8(static_cast<char>(0xFE)));
}
#endif

// Rescans rows [t0, t0 + nt) x columns [c0, c0 + nc) of replicate r to
// record the value that made a block fail the 0/1 (or NaN) check.
template <typename scalar_t>
void record_bad(const scalar_t* base, int64_t sr, int64_t st, int64_t sc, int64_t r, int64_t t0,
                int64_t nt, int64_t c0, int64_t nc, const SeriesPlan& p, BadValue& bad) {
  for (int64_t b = 0; b < nt; ++b) {
    const scalar_t* row = base + r * sr + (t0 + b) * st + c0 * sc;
    for (int64_t c = 0; c < nc; ++c) {
      bool bad_here = false;
      math::to_bit(row[c * sc], p.has_threshold, p.threshold, &bad_here);
      if (bad_here) bad.record(static_cast<double>(row[c * sc]));
    }
  }
}

// Packs columns [c0, c0 + nc), nc <= kColumnBlock, into
// raw[(c * R + r) * raw_words + wt] = word wt of replicate r of column c0 + c.
// Runs of 32 contiguous one-byte columns take the AVX2 path; the rest the
// portable one.
template <typename scalar_t>
void pack_block(const at::Tensor& x3, const SeriesPlan& p, int64_t c0, int64_t nc, bool avx2,
                uint64_t* raw, BadValue& bad) {
  const scalar_t* base = x3.const_data_ptr<scalar_t>();
  const int64_t sr = x3.stride(0), st = x3.stride(1), sc = x3.stride(2);
  constexpr bool one_byte = sizeof(scalar_t) == 1 && !std::is_same_v<scalar_t, int8_t>;
  int64_t n_simd = 0;  // columns [c0, c0 + n_simd) take the AVX2 path
#if TE_X86
  if (one_byte && avx2 && !p.has_threshold && sc == 1) n_simd = nc / kAvx2Columns * kAvx2Columns;
#else
  (void)avx2;
#endif
  const int64_t cp = c0 + n_simd, np = nc - n_simd;  // the portable columns
  const bool fast_bytes = one_byte && !p.has_threshold && sc == 1 && np == 64;
  uint64_t block[64];
  for (int64_t r = 0; r < p.R; ++r) {
    for (int64_t wt = 0; wt < p.raw_words; ++wt) {
      const int64_t t0 = wt * math::kWordBits;
      const int64_t nt = std::min<int64_t>(math::kWordBits, p.T - t0);
#if TE_X86
      for (int64_t h = 0; h < n_simd; h += kAvx2Columns) {
        const scalar_t* rows = base + r * sr + t0 * st + c0 + h;
        if (!pack_bytes32_avx2(reinterpret_cast<const uint8_t*>(rows), st, nt,
                               raw + (h * p.R + r) * p.raw_words + wt, p.R * p.raw_words)) {
          record_bad(base, sr, st, sc, r, t0, nt, c0 + h, kAvx2Columns, p, bad);
        }
      }
#endif
      if (np == 0) continue;
      bool any_bad = false;
      for (int64_t b = 0; b < nt; ++b) {
        const scalar_t* row = base + r * sr + (t0 + b) * st + cp * sc;
        block[b] = fast_bytes ? row_bits_bytes01(reinterpret_cast<const uint8_t*>(row), &any_bad)
                              : row_bits(row, sc, np, p, &any_bad);
      }
      std::fill(block + nt, block + 64, 0);
      // Rescan only this block to name the offending value.
      if (any_bad) record_bad(base, sr, st, sc, r, t0, nt, cp, np, p, bad);
      transpose_bits64(block);
      for (int64_t c = 0; c < np; ++c)
        raw[((n_simd + c) * p.R + r) * p.raw_words + wt] = block[c];
    }
  }
}

// Words readable past the end of the packed series: the AVX2 one-hot path
// loads up to two words beyond a series (their bits land only in masked-off
// observations).
constexpr int64_t kRawPad = 4;

// Bit offset, in a replicate's packed series, of bit b of observation 0's state.
inline int64_t lag_offset(const SeriesPlan& p, int b, bool is_target) {
  const int64_t lag = is_target ? math::target_state_lag(b, p.k) : math::source_state_lag(b, p.delay);
  return p.n0 - lag;
}

// Words [w0, rep_words) of one replicate's one-hot streams, word by word:
// rows[(s - 1) * words + w] for states s >= 1; cnt[s] += their popcounts.
void onehot_words_portable(const uint64_t* series, const SeriesPlan& p, int nbits,
                           const int64_t* offs, int64_t w0, uint64_t* rows, int64_t* cnt) {
  const int64_t S = int64_t(1) << nbits;
  uint64_t lag_words[math::kWordBits];
  for (int64_t w = w0; w < p.rep_words; ++w) {
    for (int b = 0; b < nbits; ++b)
      lag_words[b] = math::load_bits(series, p.raw_words, offs[b] + w * math::kWordBits);
    const uint64_t mask = math::valid_mask(w, p.obs_per_rep);
    for (int64_t s = 1; s < S; ++s) {
      const uint64_t word = math::onehot_word(lag_words, nbits, s) & mask;
      rows[(s - 1) * p.words + w] = word;
      cnt[s] += static_cast<int64_t>(math::popcount64(word));
    }
  }
}

#if TE_X86
// The same four words at a time: each lagged series is a funnel shift of two
// unaligned loads, each state's word an AND / ANDNOT of the lagged words, and
// its popcount a nibble lookup. Any tail of fewer than four words is left to
// the portable path (returns where it stopped).
__attribute__((target("avx2"))) int64_t onehot_words_avx2(const uint64_t* series,
                                                          const SeriesPlan& p, int nbits,
                                                          const int64_t* offs, uint64_t* rows,
                                                          int64_t* cnt) {
  const int64_t S = int64_t(1) << nbits;
  const __m256i lut = _mm256_setr_epi8(0, 1, 1, 2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4, 0, 1, 1,
                                       2, 1, 2, 2, 3, 1, 2, 2, 3, 2, 3, 3, 4);
  const __m256i low = _mm256_set1_epi8(0x0f);
  const __m256i z = _mm256_setzero_si256();
  __m256i pc[math::kMaxOnehotBins];
  for (int64_t s = 1; s < S; ++s) pc[s] = z;
  int64_t w = 0;
  for (; w + 4 <= p.rep_words; w += 4) {
    __m256i lag[8];
    for (int b = 0; b < nbits; ++b) {
      const int64_t bit = offs[b] + w * math::kWordBits;  // >= 0
      const uint64_t* q = series + bit / math::kWordBits;
      const int sh = static_cast<int>(bit % math::kWordBits);
      const __m256i lo = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q));
      const __m256i hi = _mm256_loadu_si256(reinterpret_cast<const __m256i*>(q + 1));
      // A shift by 64 (sh == 0) yields 0, as wanted.
      lag[b] = _mm256_or_si256(_mm256_srl_epi64(lo, _mm_cvtsi32_si128(sh)),
                               _mm256_sll_epi64(hi, _mm_cvtsi32_si128(64 - sh)));
    }
    const __m256i mask = _mm256_setr_epi64x(
        static_cast<int64_t>(math::valid_mask(w, p.obs_per_rep)),
        static_cast<int64_t>(math::valid_mask(w + 1, p.obs_per_rep)),
        static_cast<int64_t>(math::valid_mask(w + 2, p.obs_per_rep)),
        static_cast<int64_t>(math::valid_mask(w + 3, p.obs_per_rep)));
    for (int64_t s = 1; s < S; ++s) {
      __m256i word = mask;
      for (int b = 0; b < nbits; ++b)
        word = ((s >> b) & 1) ? _mm256_and_si256(word, lag[b]) : _mm256_andnot_si256(lag[b], word);
      _mm256_storeu_si256(reinterpret_cast<__m256i*>(rows + (s - 1) * p.words + w), word);
      const __m256i n = _mm256_add_epi8(
          _mm256_shuffle_epi8(lut, _mm256_and_si256(word, low)),
          _mm256_shuffle_epi8(lut, _mm256_and_si256(_mm256_srli_epi16(word, 4), low)));
      pc[s] = _mm256_add_epi64(pc[s], _mm256_sad_epu8(n, z));
    }
  }
  for (int64_t s = 1; s < S; ++s) {
    alignas(32) int64_t lanes[4];
    _mm256_store_si256(reinterpret_cast<__m256i*>(lanes), pc[s]);
    cnt[s] += lanes[0] + lanes[1] + lanes[2] + lanes[3];
  }
  return w;
}
#endif

// One-hot streams and state counts of one column from its packed series
// (R * raw_words words). Every word of the column's rows is written: the
// streams, then the zero padding past R * rep_words.
void onehot_column(const uint64_t* raw, const SeriesPlan& p, int nbits, const int64_t* offs,
                   bool avx2, uint64_t* rows, int64_t* cnt) {
  const int64_t S = int64_t(1) << nbits;
  for (int64_t r = 0; r < p.R; ++r) {
    const uint64_t* series = raw + r * p.raw_words;
    uint64_t* rep_rows = rows + r * p.rep_words;
    int64_t w0 = 0;
#if TE_X86
    if (avx2) w0 = onehot_words_avx2(series, p, nbits, offs, rep_rows, cnt);
#else
    (void)avx2;
#endif
    onehot_words_portable(series, p, nbits, offs, w0, rep_rows, cnt);
  }
  finish_onehot_column(p, S, p.nobs, rows, cnt);
}

// State of every observation of one column, and the state counts.
void states_column(const uint64_t* raw, const SeriesPlan& p, int nbits, bool is_target,
                   int32_t* states, int64_t* cnt) {
  for (int64_t r = 0; r < p.R; ++r) {
    const uint64_t* series = raw + r * p.raw_words;
    for (int64_t o = 0; o < p.obs_per_rep; ++o) {
      const int64_t s = math::state_at(series, p.raw_words, p.n0 + o, nbits, is_target, p.k, p.delay);
      states[r * p.obs_per_rep + o] = static_cast<int32_t>(s);
      ++cnt[s];
    }
  }
}

// One side (source or target) being packed.
struct SideJob;
using PackBlockFn = void (*)(const SideJob&, int64_t blk, uint64_t* raw);

struct SideJob {
  at::Tensor x3;  // [R, T, C]
  const SeriesPlan* p = nullptr;
  int nbits = 1;
  bool is_target = false;
  bool avx2 = false;
  int64_t offs[8] = {};  // bit offsets of the state bits (one-hot path)
  int64_t blocks = 0;    // blocks of kColumnBlock columns
  PackBlockFn pack = nullptr;
  PackedSide out;
  mutable BadValue bad;  // written by the packing threads
};

// Packs block `blk` of a side's columns into `raw`, then builds those
// columns' streams (or states) while their packed series are still in cache.
template <typename scalar_t>
void pack_side_block(const SideJob& job, int64_t blk, uint64_t* raw) {
  const SeriesPlan& p = *job.p;
  const int64_t C = job.x3.size(2);
  const int64_t S = int64_t(1) << job.nbits;
  const int64_t c0 = blk * kColumnBlock;
  const int64_t nc = std::min(kColumnBlock, C - c0);
  pack_block<scalar_t>(job.x3, p, c0, nc, job.avx2, raw, job.bad);
  if (job.bad.seen.load(std::memory_order_relaxed)) return;  // the caller raises
  int64_t* counts = job.out.counts.data_ptr<int64_t>();
  for (int64_t c = 0; c < nc; ++c) {
    const uint64_t* series = raw + c * p.R * p.raw_words;
    int64_t* cnt = counts + (c0 + c) * S;
    if (p.onehot) {
      uint64_t* rows = reinterpret_cast<uint64_t*>(job.out.onehot.data_ptr<int64_t>()) +
                       (c0 + c) * (S - 1) * p.words;
      onehot_column(series, p, job.nbits, job.offs, job.avx2, rows, cnt);
    } else {
      states_column(series, p, job.nbits, job.is_target,
                    job.out.states.data_ptr<int32_t>() + (c0 + c) * p.nobs, cnt);
    }
  }
}

// Allocates a side's outputs and picks its dtype's block packer.
void setup_side(SideJob& job, const at::Tensor& x, const SeriesPlan& p, bool is_target,
                int64_t row_pad) {
  job.x3 = x.dim() == 3 ? x : x.unsqueeze(0);
  job.p = &p;
  job.is_target = is_target;
  job.nbits = is_target ? p.k + 1 : p.l;
  job.avx2 = popcount_kernel().avx2;
  for (int b = 0; b < job.nbits && b < 8; ++b) job.offs[b] = lag_offset(p, b, is_target);
  const int64_t C = job.x3.size(2);
  const int64_t S = int64_t(1) << job.nbits;
  job.blocks = at::divup(C, kColumnBlock);
  job.out.streams = S - 1;
  job.out.counts = at::zeros({C, S}, x.options().dtype(at::kLong));
  if (p.onehot) {
    const int64_t rows = math::round_up(C * (S - 1), row_pad);
    // Uninitialised: pack_side_block writes every row of every column, and
    // the rows padding the count to row_pad are zeroed in finish_side.
    job.out.onehot = at::empty({rows, p.words}, x.options().dtype(at::kLong));
  } else {
    job.out.states = at::empty({C, p.nobs}, x.options().dtype(at::kInt));
  }
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, job.x3.scalar_type(), "te_pack",
                             [&] { job.pack = &pack_side_block<scalar_t>; });
}

// Packs the blocks of all sides in one parallel region. Block q of the
// interleaved order alternates sides while both have blocks left, so the
// blocks handed out early and late mix cheap and dear ones.
void run_sides(SideJob* jobs, int n) {
  int64_t total = 0;
  for (int s = 0; s < n; ++s) total += jobs[s].blocks;
  const SeriesPlan& p = *jobs[0].p;
  std::atomic<int64_t> next{0};  // blocks are handed out one at a time, as tiles are
  at::parallel_for(0, total, 1, [&](int64_t, int64_t) {
    std::vector<uint64_t> raw(static_cast<size_t>(kColumnBlock * p.R * p.raw_words + kRawPad));
    for (int64_t q = next.fetch_add(1, std::memory_order_relaxed); q < total;
         q = next.fetch_add(1, std::memory_order_relaxed)) {
      // Map q to (side, block): round-robin over the sides that still have
      // blocks at this depth.
      int64_t rest = q, depth = 0;
      int side = -1;
      while (side < 0) {
        int live = 0;
        for (int s = 0; s < n; ++s) live += jobs[s].blocks > depth;
        if (rest < live) {
          for (int s = 0; s < n; ++s) {
            if (jobs[s].blocks > depth && rest-- == 0) {
              side = s;
              break;
            }
          }
        } else {
          rest -= live;
          ++depth;
        }
      }
      jobs[side].pack(jobs[side], depth, raw.data());
    }
  });
}

// Raises for a rejected value, else zeroes the padding rows.
void finish_side(SideJob& job, const char* op, const char* name) {
  const SeriesPlan& p = *job.p;
  if (job.bad.seen.load()) {
    if (p.has_threshold) {
      TORCH_CHECK_VALUE(false, op, ": ", name, " contains NaN; with threshold=", p.threshold,
                        " every value must be a number");
    }
    TORCH_CHECK_VALUE(false, op, ": ", name, " contains the value ", job.bad.value,
                      " but threshold is None, so only 0 and 1 are allowed; pass threshold=... "
                      "to binarise it");
  }
  if (p.onehot) {
    const int64_t filled = job.x3.size(2) * job.out.streams * p.words;
    uint64_t* streams = reinterpret_cast<uint64_t*>(job.out.onehot.data_ptr<int64_t>());
    std::fill(streams + filled, streams + job.out.onehot.numel(), uint64_t(0));
  }
}

}  // namespace

PackedSide pack_side_cpu(const at::Tensor& x, const SeriesPlan& p, bool is_target,
                         int64_t row_pad, const char* op, const char* name) {
  SideJob job;
  setup_side(job, x, p, is_target, row_pad);
  run_sides(&job, 1);
  finish_side(job, op, name);
  return std::move(job.out);
}

std::pair<PackedSide, PackedSide> pack_sides_cpu(const at::Tensor& source,
                                                 const at::Tensor& target, const SeriesPlan& p,
                                                 int64_t row_pad, const char* op) {
  SideJob jobs[2];
  setup_side(jobs[0], source, p, /*is_target=*/false, row_pad);
  setup_side(jobs[1], target, p, /*is_target=*/true, row_pad);
  run_sides(jobs, 2);
  finish_side(jobs[0], op, "source");
  finish_side(jobs[1], op, "target");
  return {std::move(jobs[0].out), std::move(jobs[1].out)};
}

}  // namespace cpu
}  // namespace te
