// The math of the op library, written once for the CPU and the CUDA kernels.
//
// Every function here is HOST_DEVICE: the CPU kernels call exactly these, so
// the CPU test-suite exercises the arithmetic that the GPU runs.
//
// Vocabulary (see docs/ops.md, "Definitions"):
//  * a series is packed LSB-first into 64-bit words, bit t = value at time t;
//  * an observation n (n0 <= n < T) has a target state
//        ystate = (y[n] << k) | ypast,   ypast = sum_{m<k} y[n-1-m] 2^m
//    and a source state  xstate = xpast = sum_{m<l} x[n-delay-m] 2^m;
//  * bin = (ystate << l) | xstate  ==  (y[n] << (k+l)) | (ypast << l) | xpast.
//  * "one-hot" words: for a state s, the observations whose state is s, as bits.
//    State 0 is never stored: its counts follow from the marginals, which is
//    what lets k = l = 1 get away with three AND+popcount streams per pair.
#pragma once

#include <cmath>
#include <cstdint>

#if defined(__CUDACC__) || defined(__HIPCC__)
#define TE_HD __host__ __device__ __forceinline__
#else
#define TE_HD inline
#endif

namespace te {
namespace math {

constexpr int kWordBits = 64;
// Packed rows are padded to this many words so a 512-bit load never straddles
// the end of a row; the padding is zero and so never reaches a count.
constexpr int64_t kWordPad = 8;
// Largest histogram the one-hot path produces (k = 6, l = 1): GPU threads keep
// a pair's bins in a fixed-size local array of this many counts.
constexpr int64_t kMaxOnehotBins = 256;

TE_HD int64_t first_observation(int64_t k, int64_t l, int64_t delay) {
  return k > l - 1 + delay ? k : l - 1 + delay;
}

TE_HD int64_t ceil_div(int64_t a, int64_t b) { return (a + b - 1) / b; }

TE_HD int64_t round_up(int64_t a, int64_t b) { return ceil_div(a, b) * b; }

TE_HD int64_t bin_index(int64_t ynext, int64_t ypast, int64_t xpast, int k, int l) {
  return (ynext << (k + l)) | (ypast << l) | xpast;
}

TE_HD uint64_t popcount64(uint64_t w) {
#if defined(__CUDA_ARCH__)
  return static_cast<uint64_t>(__popcll(w));
#else
  return static_cast<uint64_t>(__builtin_popcountll(w));
#endif
}

// Mask of the valid observation bits in word w of a stream of nbits bits.
TE_HD uint64_t valid_mask(int64_t w, int64_t nbits) {
  const int64_t left = nbits - w * kWordBits;
  if (left >= kWordBits) return ~uint64_t(0);
  if (left <= 0) return 0;
  return (uint64_t(1) << left) - 1;
}

// 64 bits of a packed series starting at bit `bit` (>= 0); words past nwords
// read as zero.
TE_HD uint64_t load_bits(const uint64_t* words, int64_t nwords, int64_t bit) {
  const int64_t q = bit / kWordBits;
  const int s = static_cast<int>(bit % kWordBits);
  const uint64_t lo = q < nwords ? words[q] : 0;
  if (s == 0) return lo;
  const uint64_t hi = q + 1 < nwords ? words[q + 1] : 0;
  return (lo >> s) | (hi << (kWordBits - s));
}

// Binarisation of one input value. `bad` is set for a value the contract
// rejects: NaN under a threshold, anything but 0/1 without one.
template <typename T>
TE_HD bool to_bit(T v, bool has_threshold, double threshold, bool* bad) {
  const double d = static_cast<double>(v);
  if (has_threshold) {
    if (d != d) *bad = true;
    return d > threshold;
  }
  if (d != 0.0 && d != 1.0) *bad = true;
  return d != 0.0;
}

// Lag (in time steps before n) of bit b of a state. Target: bits 0..k-1 are
// ypast (lags 1..k), bit k is ynext (lag 0). Source: bit m is lag delay+m.
TE_HD int64_t target_state_lag(int b, int k) { return b < k ? b + 1 : 0; }
TE_HD int64_t source_state_lag(int b, int64_t delay) { return delay + b; }

// One observation word of the one-hot stream of `state`: the AND, over the
// state's bits, of each lagged series word or of its complement.
TE_HD uint64_t onehot_word(const uint64_t* lag_words, int nbits, int64_t state) {
  uint64_t acc = ~uint64_t(0);
  for (int b = 0; b < nbits; ++b) {
    acc &= ((state >> b) & 1) ? lag_words[b] : ~lag_words[b];
  }
  return acc;
}

// State of one observation read straight from a packed series (the path for
// state spaces too large for one-hot streams).
TE_HD int64_t state_at(const uint64_t* series, int64_t nwords, int64_t n, int nbits,
                       bool is_target, int k, int64_t delay) {
  int64_t s = 0;
  for (int b = 0; b < nbits; ++b) {
    const int64_t lag = is_target ? target_state_lag(b, k) : source_state_lag(b, delay);
    const int64_t t = n - lag;
    const uint64_t w = t / kWordBits < nwords ? series[t / kWordBits] : 0;
    s |= static_cast<int64_t>((w >> (t % kWordBits)) & 1) << b;
  }
  return s;
}

// Four bits of a word as four 0/1 bytes, bit b in byte b (little-endian): how
// the GPU's int8 GEMM operands are written, 16 bytes per store. The four
// shifted copies of the nibble occupy bits 0-3, 7-10, 14-17 and 21-24, so the
// multiply never carries, and the mask keeps bit b of copy b.
TE_HD uint32_t nibble_to_bytes(uint32_t nibble) {
  return ((nibble & 0xFu) * 0x00204081u) & 0x01010101u;
}

// The 8 x 8 bit matrix in x (byte r = row r, bit m = column m) transposed: byte m
// of the result holds column m, bit r from row r. Three rounds of swapping the
// off-diagonal halves of 2 x 2, 4 x 4 and 8 x 8 blocks (Hacker's Delight, 7-3).
TE_HD uint64_t transpose8x8(uint64_t x) {
  x = (x & 0xAA55AA55AA55AA55ULL) | ((x & 0x00AA00AA00AA00AAULL) << 7) |
      ((x >> 7) & 0x00AA00AA00AA00AAULL);
  x = (x & 0xCCCC3333CCCC3333ULL) | ((x & 0x0000CCCC0000CCCCULL) << 14) |
      ((x >> 14) & 0x0000CCCC0000CCCCULL);
  x = (x & 0xF0F0F0F00F0F0F0FULL) | ((x & 0x00000000F0F0F0F0ULL) << 28) |
      ((x >> 28) & 0x00000000F0F0F0F0ULL);
  return x;
}

// sum_w popcount(a[w] & b[w]) over [0, n): the per-pair counting primitive.
TE_HD int64_t and_popcount(const uint64_t* a, const uint64_t* b, int64_t n) {
  int64_t c = 0;
  for (int64_t w = 0; w < n; ++w) c += static_cast<int64_t>(popcount64(a[w] & b[w]));
  return c;
}

// Joint counts of one pair from its cross counts and the two marginals.
//   cross(xs, ys) = #obs with xstate = xs and ystate = ys, for xs, ys >= 1,
//                   read at cross[(xs-1)*cross_xs + (ys-1)*cross_ys];
//   xcount[xs], ycount[ys]: per-neuron state counts (index 0 included);
//   n: number of observations. Writes all 2^(k+l+1) bins of out.
// Cross is int64 or the int32 that a GPU's int8 GEMM accumulates in (counts of
// fewer than 2^31 observations), read as it is rather than widened by a copy.
template <typename Cross>
TE_HD void assemble_joint_counts(const Cross* cross, int64_t cross_xs, int64_t cross_ys,
                                 const int64_t* xcount, const int64_t* ycount, int64_t n,
                                 int k, int l, int64_t* out) {
  const int64_t sx = int64_t(1) << l;
  const int64_t sy = int64_t(1) << (k + 1);
  int64_t all_cross = 0;
  for (int64_t ys = 1; ys < sy; ++ys) {
    int64_t row = 0;
    for (int64_t xs = 1; xs < sx; ++xs) {
      const int64_t c = static_cast<int64_t>(cross[(xs - 1) * cross_xs + (ys - 1) * cross_ys]);
      out[(ys << l) | xs] = c;
      row += c;
    }
    out[ys << l] = ycount[ys] - row;
    all_cross += row;
  }
  int64_t xs_total = 0;
  for (int64_t xs = 1; xs < sx; ++xs) {
    int64_t col = 0;
    for (int64_t ys = 1; ys < sy; ++ys)
      col += static_cast<int64_t>(cross[(xs - 1) * cross_xs + (ys - 1) * cross_ys]);
    out[xs] = xcount[xs] - col;
    xs_total += xcount[xs];
  }
  int64_t ys_total = 0;
  for (int64_t ys = 1; ys < sy; ++ys) ys_total += ycount[ys];
  out[0] = n - xs_total - ys_total + all_cross;
}

// f(c) = c log2(c / n_ref), f(0) = 0, for a reference total n_ref >= 1.
// The TE below only ever uses f through mix_term, f(a) + f(b) - f(a + b), which
// cancels the linear part -c log2 n_ref exactly (a + b - (a + b) = 0): any n_ref
// gives the same TE in exact arithmetic. In floating point the reference matters.
// With plain c log2 c (n_ref = 1) the terms reach n log2 n and each rounding costs
// ~1e-16 n log2 n, which is 8.9e-15 bits of TE on an hour of 1 ms bins and flips
// the peak delay of flat pairs. Near the pair total n, |f| <= 0.53 n and the sums
// round at ~1e-16 n: TE within ~1e-15 bits of exact arithmetic.
// c / n_ref is one correctly rounded division of exact integers (both < 2^53),
// which is why the quotient is formed before the logarithm rather than as
// log2 c - log2 n_ref, a cancellation.
TE_HD double clog2c(int64_t c, double n_ref) {
  return c > 0 ? static_cast<double>(c) * log2(static_cast<double>(c) / n_ref) : 0.0;
}

// The reference for a pair total n: n with all but its 4 leading bits cleared
// (n for n < 16, and 1 for an empty pair, whose counts are all zero). It is within
// 12.5% of n, which costs nothing in rounding, and it is the same for totals that
// differ by a few counts: the delays of one scan share it, and so one table, and
// every op (the pair TE, the counts' TE, each delay of a scan) centres a given total
// on the same value and gives bit-identical results for the same counts.
TE_HD int64_t clog_centre(int64_t n) {
  if (n <= 0) return 1;
  int shift = 0;
  while ((n >> shift) >= 16) ++shift;
  return (n >> shift) << shift;
}

TE_HD double clog_reference(int64_t n) { return static_cast<double>(clog_centre(n)); }

// Tables of f (TableClog) up to this many entries (32 MiB), on the CPU and the GPU:
// past it a table would cost more to build than the logarithms it saves.
constexpr int64_t kMaxClogTable = int64_t(1) << 22;

struct DirectClog {
  double n_ref;
  TE_HD double operator()(int64_t c) const { return clog2c(c, n_ref); }
};

// f read from a table of f(0..n) for one n_ref; the caller sizes it to cover
// every count and marginal it will be asked for (a pair's total bounds them
// all) and centres it with clog_reference (cpu/clog_table.h). Its entries are
// clog2c itself, so a table and DirectClog give bit-identical sums.
struct TableClog {
  const double* table;
  TE_HD double operator()(int64_t c) const { return table[c]; }
};

// N*TE = sum f(c_bin) + sum f(c_ypast) - sum f(c_ypast,xpast) - sum f(c_ynext,ypast),
// the plug-in sum p log2 p(yn|yp,xp)/p(yn|yp) multiplied out, is computed as
//   N*TE = sum_{yp, xp} g(c[0,yp,xp], c[1,yp,xp])  -  sum_yp g(y0[yp], y1[yp]),
//   g(a, b) = f(a) + f(b) - f(a + b),  y_b[yp] = sum_xp c[b,yp,xp].
// The second sum depends on the target alone, so the all-pairs reduction
// computes it once per target (target_sum_from_marginals). Both sums run in the
// same (yp-major) order, so when one source state carries all of a ypast's
// counts (a constant source) the first sum adds the same values as the second
// plus exact zeros, and a target that never changes makes every g zero: TE is
// then exactly 0, not a rounding residue.
template <typename Clog>
TE_HD double mix_term(int64_t a, int64_t b, Clog f) {
  return (f(a) + f(b)) - f(a + b);
}

// The target-only sum, from the target's state counts ycount[(ynext << k) | ypast].
template <typename Clog>
TE_HD double target_sum_from_marginals(const int64_t* ycount, int k, Clog f) {
  const int64_t syp = int64_t(1) << k;
  double sum = 0.0;
  for (int64_t yp = 0; yp < syp; ++yp) sum += mix_term(ycount[yp], ycount[syp | yp], f);
  return sum;
}

// The target's own counts of one past state yp, summed over the source's past from one
// pair's joint counts: y0 with ynext = 0, y1 with ynext = 1.
TE_HD void ypast_marginals(const int64_t* c, int k, int l, int64_t yp, int64_t* y0, int64_t* y1) {
  const int64_t half = int64_t(1) << (k + l);  // bins with ynext = 0 below, 1 above
  const int64_t sx = int64_t(1) << l;
  int64_t a = 0, b = 0;
  for (int64_t xs = 0; xs < sx; ++xs) {
    a += c[(yp << l) | xs];
    b += c[half | (yp << l) | xs];
  }
  *y0 = a;
  *y1 = b;
}

// TE in bits from one pair's joint counts (2^(k+l+1) bins, index as bin_index),
// given the pair's total n and its target-only sum. Zero observations give 0;
// the estimate is a conditional mutual information and so >= 0, and a negative
// rounding residue is returned as 0.
template <typename Clog>
TE_HD double te_from_joint_counts_given(const int64_t* c, int k, int l, Clog f, int64_t n,
                                        double target_sum) {
  if (n == 0) return 0.0;
  const int64_t half = int64_t(1) << (k + l);  // bins with ynext = 0 below, 1 above
  double pair_sum = 0.0;
  for (int64_t b = 0; b < half; ++b) pair_sum += mix_term(c[b], c[half | b], f);
  const double te = (pair_sum - target_sum) / static_cast<double>(n);
  return te > 0.0 ? te : 0.0;
}

// TE in bits from one pair's joint counts alone: the total and the target-only
// sum taken from the same counts (the same integers as the target's marginals,
// summed in the same order), so it is bit-identical to the all-pairs reduction.
template <typename Clog>
TE_HD double te_from_joint_counts(const int64_t* c, int k, int l, Clog f) {
  const int64_t syp = int64_t(1) << k;
  int64_t n = 0;
  double target_sum = 0.0;
  for (int64_t yp = 0; yp < syp; ++yp) {
    int64_t y0, y1;
    ypast_marginals(c, k, l, yp, &y0, &y1);
    target_sum += mix_term(y0, y1, f);
    n += y0 + y1;
  }
  return te_from_joint_counts_given(c, k, l, f, n, target_sum);
}

// te_from_joint_counts with f evaluated directly, centred on the pair's own total:
// the GPU threads' reduction and the CPU's for histograms whose totals differ.
TE_HD double te_from_joint_counts_direct(const int64_t* c, int k, int l) {
  const int64_t bins = int64_t(1) << (k + l + 1);
  int64_t n = 0;
  for (int64_t b = 0; b < bins; ++b) n += c[b];
  return te_from_joint_counts(c, k, l, DirectClog{clog_reference(n)});
}

// TE of pair (i, j) from an all-pairs cross-count matrix: row i (sx - 1) + xs - 1
// holds source i's one-hot stream xs, column j (sy - 1) + ys - 1 target j's stream
// ys, rows `ld` apart. f is a table of f(0..nobs) and target_sum the target's
// target_sum_from_marginals. The order is a compile-time constant, so a GPU thread
// keeps the bins in registers: the CUDA all-pairs kernel for the common orders
// (cuda/pair_counts_cuda.cu), exercised on the CPU by csrc/tests.
template <int K, int L, typename Cross>
TE_HD double te_of_pair_fixed_order(const Cross* cross, int64_t ld, int64_t i, int64_t j,
                                    const int64_t* xcount, const int64_t* ycount, int64_t nobs,
                                    const double* table, double target_sum) {
  constexpr int64_t kSx = int64_t(1) << L, kSy = int64_t(1) << (K + 1);
  int64_t bins[kSx * kSy];
  assemble_joint_counts(cross + i * (kSx - 1) * ld + j * (kSy - 1), ld, 1, xcount + i * kSx,
                        ycount + j * kSy, nobs, K, L, bins);
  return te_from_joint_counts_given(bins, K, L, TableClog{table}, nobs, target_sum);
}

}  // namespace math
}  // namespace te
