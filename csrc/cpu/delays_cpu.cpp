// CPU kernel of te.transfer_entropy_delays: TE at many source delays, sharing
// all the work that does not depend on the delay.
//
// Every delay's observations are n = n0(d) .. T-1 with its own
// n0(d) = max(k, l - 1 + d), so the streams are laid out once for the
// smallest delay's window (slot o <-> time n0min + o) and each delay masks the
// slots before its own n0 out of its source streams. Then
//  * the target is binarised, packed and turned into one-hot streams once;
//    each delay's target marginals are the shared ones minus the popcount of
//    the few slots it skips;
//  * the source is binarised and packed once into plain bit series, and each
//    delay's source streams are word shifts of those series (a few word
//    operations per neuron, against I * J pairs of counting);
//  * the source streams of a chunk of delays are stacked into one tall
//    operand, so a chunk's counts are one tiled AND+popcount product.
// Counts are integers and each delay's reduction calls the same te_math.h
// functions on the same integers, in the same order, as transfer_entropy, so
// slice d is bit-identical to transfer_entropy(..., delay = delays[d]).
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <torch/library.h>

#include <algorithm>
#include <cstdlib>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include "../delays_plan.h"
#include "../te_math.h"
#include "../te_plan.h"
#include "clog_table.h"
#include "delay_scan_output.h"
#include "delays_sparse_cpu.h"
#include "pack_cpu.h"
#include "pair_counts_cpu.h"

namespace te {
namespace cpu {
namespace {

// Stacked source streams of one chunk of delays stay under this many bytes
// (at least one delay per chunk), so memory does not grow with the scan.
constexpr int64_t kChunkBytes = int64_t(64) << 20;

// The geometry of one delay inside the shared layout.
struct DelayView {
  int64_t delay = 1;
  int64_t skip = 0;  // slots of each replicate before this delay's n0
  int64_t nobs = 0;  // R * (T - n0(delay))
};

// Bits [0, nbits) of a packed row, popcounted.
int64_t prefix_popcount(const uint64_t* row, int64_t nbits) {
  int64_t c = 0;
  for (int64_t w = 0; w * math::kWordBits < nbits; ++w)
    c += static_cast<int64_t>(math::popcount64(row[w] & math::valid_mask(w, nbits)));
  return c;
}

// A delay's target state counts: the shared window's counts minus the states
// of the slots it skips. Index 0 from the total, as the packer does it.
void target_counts_for_delay(const PackedSide& Y, const SeriesPlan& pb, const DelayView& v,
                             int64_t* out) {
  const int64_t S = pb.sy;
  const int64_t* shared = Y.counts.const_data_ptr<int64_t>();
  const uint64_t* rows = reinterpret_cast<const uint64_t*>(Y.onehot.const_data_ptr<int64_t>());
  at::parallel_for(0, pb.J, 64, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      int64_t nonzero = 0;
      for (int64_t s = 1; s < S; ++s) {
        const uint64_t* row = rows + (j * (S - 1) + s - 1) * pb.words;
        int64_t skipped = 0;
        for (int64_t r = 0; r < pb.R; ++r) skipped += prefix_popcount(row + r * pb.rep_words, v.skip);
        out[j * S + s] = shared[j * S + s] - skipped;
        nonzero += out[j * S + s];
      }
      out[j * S] = v.nobs - nonzero;
    }
  });
}

// One-hot streams of source neuron i at delay v.delay in the shared layout,
// from its packed series (`raw`, replicate r at r * raw_words), and the state
// counts: the packer's onehot_column, with the slots before this delay's n0
// masked out. A slot o is time n = n0min + o; bit b of its state is
// x[n - delay - b], at series bit o + n0min - delay - b, which is >= 0 for
// every slot not masked out.
void source_streams_for_delay(const uint64_t* raw, int64_t raw_words, const SeriesPlan& pb,
                              const DelayView& v, uint64_t* rows, int64_t* cnt) {
  const int nbits = pb.l;
  const int64_t S = pb.sx;
  const int64_t span = pb.obs_per_rep;  // slots per replicate
  std::fill(cnt, cnt + S, int64_t(0));
  uint64_t lag_words[math::kWordBits];
  for (int64_t r = 0; r < pb.R; ++r) {
    const uint64_t* series = raw + r * raw_words;
    for (int64_t w = 0; w < pb.rep_words; ++w) {
      const int64_t lo = std::max(w * math::kWordBits, v.skip);  // first unmasked slot
      const int64_t dst = r * pb.rep_words + w;
      if (lo >= std::min((w + 1) * math::kWordBits, span)) {
        for (int64_t s = 1; s < S; ++s) rows[(s - 1) * pb.words + dst] = 0;
        continue;
      }
      const int shift = static_cast<int>(lo - w * math::kWordBits);
      for (int b = 0; b < nbits; ++b)
        lag_words[b] = math::load_bits(series, raw_words, lo + pb.n0 - v.delay - b) << shift;
      const uint64_t mask = math::valid_mask(w, span) & (~uint64_t(0) << shift);
      for (int64_t s = 1; s < S; ++s) {
        const uint64_t word = math::onehot_word(lag_words, nbits, s) & mask;
        rows[(s - 1) * pb.words + dst] = word;
        cnt[s] += static_cast<int64_t>(math::popcount64(word));
      }
    }
  }
  finish_onehot_column(pb, S, v.nobs, rows, cnt);
}

// The plan of the source packed as plain bit series: one "state" bit at lag
// 0 and every time step an observation, so its one stream is the series.
SeriesPlan raw_series_plan(const SeriesPlan& pb) {
  SeriesPlan pr = pb;
  pr.l = 1;
  pr.delay = 0;
  pr.n0 = 0;
  pr.obs_per_rep = pb.T;
  pr.nobs = checked_mul(pb.R, pb.T, "number of time steps");
  pr.rep_words = pb.raw_words;
  pr.words = math::round_up(checked_mul(pb.R, pb.raw_words, "packed words"), math::kWordPad);
  pr.sx = 2;
  pr.bins = int64_t(1) << (pb.k + 2);
  pr.onehot = true;
  return pr;
}

// ---------------------------------------------------------------------------
// k = l = 1: two target streams a delay instead of three.
//
// With A(e) = sum_{n in [e, T)} x[n-e] y[n] (lag e, over lag e's own window) and
// C(d) = sum_{n in [d, T)} x[n-d] y[n] y[n-1], the count against the past,
// B(d) = sum_{n in [d, T)} x[n-d] y[n-1], is A(d-1) over one observation less:
// A(d-1) - x[T-d] y[T-1] (per replicate). So the streams are the source at every
// lag in {d - 1, d} (as the streams of one "neuron", so a tile holds all lags of
// a pair) against two target streams, y and y & y[-1], and a pair's one-hot
// cross counts at delay d are (B - C, A - C, C) for ys = 1, 2, 3: the same
// integers the one-hot product gives, so the same TE bit for bit.

// Bits [a, b) of a packed row, popcounted.
int64_t range_popcount(const uint64_t* row, int64_t a, int64_t b) {
  return b > a ? prefix_popcount(row, b) - prefix_popcount(row, a) : 0;
}

// `xs` and `ys` are the sides packed as plain series (raw_series_plan).
at::Tensor scan_first_order(const PackedSide& xs, const PackedSide& ys,
                            c10::IntArrayRef delays, const SeriesPlan& pb, ScanResult what,
                            const at::TensorOptions& options, const char* op) {
  const int64_t D = static_cast<int64_t>(delays.size());
  const int64_t I = pb.I, J = pb.J, R = pb.R, T = pb.T;
  const SeriesPlan pr = raw_series_plan(pb);  // slot n = time n, every replicate
  const int64_t W = pr.words, RW = pb.raw_words;
  // The lags: every delay and the one before it.
  std::vector<int64_t> lags;
  for (const int64_t d : delays) {
    lags.push_back(d - 1);
    lags.push_back(d);
  }
  std::sort(lags.begin(), lags.end());
  lags.erase(std::unique(lags.begin(), lags.end()), lags.end());
  const int64_t L = static_cast<int64_t>(lags.size());
  auto lag_index = [&](int64_t e) {
    return std::lower_bound(lags.begin(), lags.end(), e) - lags.begin();
  };
  std::vector<int64_t> at_d(D), at_prev(D), nobs(D);
  for (int64_t q = 0; q < D; ++q) {
    at_d[q] = lag_index(delays[q]);
    at_prev[q] = lag_index(delays[q] - 1);
    nobs[q] = R * (T - delays[q]);  // n0 = max(1, delay) = delay
  }
  {
    int64_t bytes = mul_sat(mul_sat(mul_sat(D, I), J),
                            DelayScanOutput::bytes_per_pair(what, pb.bins));
    bytes = add_sat(bytes, mul_sat(mul_sat(mul_sat(J, 2), W), 8));
    bytes = add_sat(bytes, kChunkBytes);
    check_fits(bytes, host_memory_bytes(), pb, op);
  }
  const uint64_t* xraw = reinterpret_cast<const uint64_t*>(xs.onehot.const_data_ptr<int64_t>());
  const uint64_t* yraw = reinterpret_cast<const uint64_t*>(ys.onehot.const_data_ptr<int64_t>());
  auto bit = [&](const uint64_t* row, int64_t r, int64_t t) -> uint64_t {
    return (row[r * RW + t / math::kWordBits] >> (t % math::kWordBits)) & 1;
  };

  // Target streams y and z = y & y[-1] (z is 0 at the first step of each replicate).
  const int64_t yrows = math::round_up(J * 2, kRowTile);
  at::Tensor ystreams = at::zeros({yrows, W}, options.dtype(at::kLong));
  uint64_t* yw = reinterpret_cast<uint64_t*>(ystreams.data_ptr<int64_t>());
  std::vector<uint64_t> ylast(static_cast<size_t>(J));  // bit r: y_r[T-1]
  std::vector<int64_t> ycount(static_cast<size_t>(D * J * 4));
  std::vector<double> target_sum(static_cast<size_t>(D * J));
  at::parallel_for(0, J, 16, [&](int64_t j0, int64_t j1) {
    for (int64_t j = j0; j < j1; ++j) {
      const uint64_t* y = yraw + j * W;
      uint64_t* ys_ = yw + (2 * j) * W;
      uint64_t* zs = yw + (2 * j + 1) * W;
      for (int64_t r = 0; r < R; ++r) {
        for (int64_t w = 0; w < RW; ++w) {
          const uint64_t cur = y[r * RW + w];
          const uint64_t prev = (cur << 1) | (w > 0 ? y[r * RW + w - 1] >> 63 : 0);
          ys_[r * RW + w] = cur;
          zs[r * RW + w] = cur & prev;
        }
        ylast[j] |= bit(y, r, T - 1) << r;
      }
      // The state counts of each delay's window [d, T), as the packer counts them.
      for (int64_t q = 0; q < D; ++q) {
        const int64_t d = delays[q];
        int64_t sy = 0, sp = 0, sz = 0;
        for (int64_t r = 0; r < R; ++r) {
          sy += range_popcount(ys_ + r * RW, d, T);
          sp += range_popcount(ys_ + r * RW, d - 1, T - 1);
          sz += range_popcount(zs + r * RW, d, T);
        }
        int64_t* c = ycount.data() + (q * J + j) * 4;
        c[3] = sz;
        c[2] = sy - sz;
        c[1] = sp - sz;
        c[0] = nobs[q] - (c[1] + c[2] + c[3]);
      }
    }
  });

  DelayScanOutput out(D, I, J, pb.bins, what, options);
  PackedSide Y;
  Y.onehot = ystreams;
  Y.streams = 2;
  // Sources in chunks, so the lagged streams stay under kChunkBytes.
  const int64_t per_source = std::max<int64_t>(1, mul_sat(mul_sat(L, W), 8));
  const int64_t chunk = std::clamp<int64_t>(kChunkBytes / per_source, 1, I);
  const int64_t xrows = math::round_up(chunk * L, kRowTile);
  at::Tensor xstreams = at::empty({xrows, W}, options.dtype(at::kLong));
  uint64_t* xw = reinterpret_cast<uint64_t*>(xstreams.data_ptr<int64_t>());
  std::vector<int64_t> xcount(static_cast<size_t>(chunk * D));  // x = 1 observations
  std::vector<uint64_t> xlast(static_cast<size_t>(chunk * D));  // bit r: x_r[T-d]
  SeriesPlan lag_plan = pr;  // one source stream at lag e, valid from n = e
  with_clogs(nobs.data(), D, [&](auto fs) {
    for (int64_t q = 0; q < D; ++q)
      for (int64_t j = 0; j < J; ++j)
        target_sum[q * J + j] = math::target_sum_from_marginals(
            ycount.data() + (q * J + j) * 4, 1, fs(q));
    for (int64_t s0 = 0; s0 < I; s0 += chunk) {
      const int64_t ns = std::min(chunk, I - s0);
      at::parallel_for(0, ns, 4, [&](int64_t a0, int64_t a1) {
        int64_t cnt[2];
        for (int64_t a = a0; a < a1; ++a) {
          const uint64_t* x = xraw + (s0 + a) * W;
          for (int64_t e = 0; e < L; ++e) {
            DelayView v{lags[e], lags[e], 0};
            source_streams_for_delay(x, RW, lag_plan, v, xw + (a * L + e) * W, cnt);
          }
          for (int64_t q = 0; q < D; ++q) {
            int64_t c = 0;
            uint64_t last = 0;
            for (int64_t r = 0; r < R; ++r) {
              c += range_popcount(x + r * RW, 0, T - delays[q]);
              last |= bit(x, r, T - delays[q]) << r;
            }
            xcount[a * D + q] = c;
            xlast[a * D + q] = last;
          }
        }
      });
      std::fill(xw + ns * L * W, xw + xrows * W, uint64_t(0));
      PackedSide X;
      X.onehot = xstreams;
      X.streams = L;
      SeriesPlan ps = pr;
      ps.I = ns;
      for_all_tiles(X, Y, ps, [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                  const int64_t* cross, int64_t ldc) {
        int64_t bins[8];
        for (int64_t a = i0; a < i1; ++a) {
          const int64_t* crow = cross + (a - i0) * L * ldc;
          for (int64_t q = 0; q < D; ++q) {
            const int64_t* cd = crow + at_d[q] * ldc;
            const int64_t* cp = crow + at_prev[q] * ldc;
            const int64_t xc[2] = {nobs[q] - xcount[a * D + q], xcount[a * D + q]};
            const uint64_t xl = xlast[a * D + q];
            for (int64_t j = j0; j < j1; ++j) {
              const int64_t b = (j - j0) * 2;
              const int64_t A = cd[b], C = cd[b + 1];
              const uint64_t both = xl & ylast[j];
              const int64_t B = cp[b] - (R == 1 ? static_cast<int64_t>(both)
                                                : static_cast<int64_t>(math::popcount64(both)));
              const int64_t c3[3] = {B - C, A - C, C};
              const int64_t* yc = ycount.data() + (q * J + j) * 4;
              math::assemble_joint_counts(c3, 3, 1, xc, yc, nobs[q], 1, 1, bins);
              out.put(q, s0 + a, j,
                      math::te_from_joint_counts_given(bins, 1, 1, fs(q), nobs[q],
                                                       target_sum[q * J + j]),
                      bins, 1, 1);
            }
          }
        }
      });
    }
  });
  return out.tensor();
}

// TE_EXT_DELAYS_PATH picks the scan's path: auto (the default: sparse when
// the measured density says it pays), dense or sparse. Tests and benchmarks use
// it to run both paths on the same input.
enum class ScanPath { kAuto, kDense, kSparse };

ScanPath requested_path(const char* op) {
  const char* v = std::getenv("TE_EXT_DELAYS_PATH");
  if (v == nullptr || *v == '\0' || std::string(v) == "auto") return ScanPath::kAuto;
  if (std::string(v) == "dense") return ScanPath::kDense;
  if (std::string(v) == "sparse") return ScanPath::kSparse;
  TORCH_CHECK_VALUE(false, op, ": the environment variable TE_EXT_DELAYS_PATH must be auto, dense "
                    "or sparse, got '", v, "'");
}

int64_t distinct_count(c10::IntArrayRef delays) {
  std::vector<int64_t> d(delays.begin(), delays.end());
  std::sort(d.begin(), d.end());
  return std::unique(d.begin(), d.end()) - d.begin();
}

// The scan from the source packed as plain series (`series`, with plan `pr`;
// pb is the plan at the smallest delay). `target_series()` gives the target
// packed the same way (for the sparse and first-order scans, and the density),
// `dense_target()` the target as a tensor, from which the general dense scan
// packs its one-hot target streams.
template <typename TargetSeries, typename DenseTarget>
at::Tensor scan_series(const PackedSide& series, const SeriesPlan& pb, const SeriesPlan& pr,
                       c10::IntArrayRef delays, ScanResult what,
                       const at::TensorOptions& options, const char* op,
                       TargetSeries target_series, DenseTarget dense_target) {
  const int64_t k = pb.k, l = pb.l;
  const ScanPath path = requested_path(op);
  // Replicates are one bit each of a word in the first-order scan's boundary terms.
  const bool first_order = k == 1 && l == 1 && pb.R <= 64 && !std::getenv("TE_EXT_DELAYS_GENERAL");
  if (path != ScanPath::kDense || first_order) {
    const PackedSide& ys = target_series();
    const int64_t distinct = distinct_count(delays);
    const double source_density = packed_density(series, pr, pb.I);
    const double density = (source_density + packed_density(ys, pr, pb.J)) / 2;
    // uint32 counters and source indices in 24 bits: the sparse path's limits.
    const bool fits = pb.R * pb.T < (int64_t(1) << 32) && pb.I < (int64_t(1) << 24);
    TORCH_CHECK_VALUE(fits || path != ScanPath::kSparse, op,
                      ": TE_EXT_DELAYS_PATH=sparse needs R * T < 2^32 and fewer than 2^24 "
                      "sources, got R * T = ", pb.R * pb.T, " and ", pb.I, " sources");
    const bool sparse =
        fits && (path == ScanPath::kSparse ||
                 (path == ScanPath::kAuto && sparse_scan_pays(density, pb, distinct)));
    if (sparse) {
      // The source events (12 bytes each: at most l per spike), their index
      // by time, and the per-delay target marginals, besides the output.
      const double events = std::min(1.0, source_density * pb.l) * static_cast<double>(pb.R * pb.T) *
                            static_cast<double>(pb.I);
      int64_t bytes = mul_sat(mul_sat(mul_sat(static_cast<int64_t>(delays.size()), pb.I), pb.J),
                              DelayScanOutput::bytes_per_pair(what, pb.bins));
      bytes = add_sat(bytes, events > 1e17 ? std::numeric_limits<int64_t>::max()
                                            : static_cast<int64_t>(events * 12));
      bytes = add_sat(bytes, mul_sat(add_sat(mul_sat(pb.R, pb.T), 1), 8));
      bytes = add_sat(bytes, mul_sat(mul_sat(distinct, add_sat(pb.I, pb.J)), pb.sy * 8 + 8));
      check_fits(bytes, host_memory_bytes(), pb, op);
      DelayScanOutput out(static_cast<int64_t>(delays.size()), pb.I, pb.J, pb.bins, what,
                          options);
      scan_sparse(series, ys, delays, pb, pr, out);
      return out.tensor();
    }
    if (first_order) return scan_first_order(series, ys, delays, pb, what, options, op);
  }

  const int64_t D = static_cast<int64_t>(delays.size());
  const int64_t I = pb.I, J = pb.J;
  const int64_t xstreams = pb.sx - 1;
  const int64_t stream_bytes = mul_sat(pb.words, 8);
  // Delays per chunk, so that a chunk's stacked streams stay under kChunkBytes.
  const int64_t per_delay = std::max<int64_t>(1, mul_sat(mul_sat(I, xstreams), stream_bytes));
  const int64_t chunk = std::clamp<int64_t>(kChunkBytes / per_delay, 1, D);
  {
    int64_t bytes = mul_sat(mul_sat(mul_sat(D, I), J),
                            DelayScanOutput::bytes_per_pair(what, pb.bins));
    bytes = add_sat(bytes, mul_sat(mul_sat(J, pb.sy - 1), stream_bytes));        // target streams
    bytes = add_sat(bytes, mul_sat(mul_sat(chunk, I), mul_sat(xstreams, stream_bytes)));
    bytes = add_sat(bytes, mul_sat(add_sat(mul_sat(chunk, I), J), (pb.sx + pb.sy) * 8));
    check_fits(bytes, host_memory_bytes(), pb, op);
  }

  // The target's one-hot streams (the source's series are packed above).
  const PackedSide Y = pack_side_cpu(dense_target(), pb, /*is_target=*/true, kRowTile, op, "target");
  const uint64_t* raw = reinterpret_cast<const uint64_t*>(series.onehot.const_data_ptr<int64_t>());

  DelayScanOutput out(D, I, J, pb.bins, what, options);
  std::vector<DelayView> views(static_cast<size_t>(D));
  for (int64_t q = 0; q < D; ++q) {
    const int64_t n0 = math::first_observation(k, l, delays[q]);
    views[q] = {delays[q], n0 - pb.n0, pb.R * (pb.T - n0)};
  }

  const int64_t rows = math::round_up(chunk * I * xstreams, kRowTile);
  at::Tensor xstack = at::empty({rows, pb.words}, options.dtype(at::kLong));
  at::Tensor xcounts = at::empty({chunk * I, pb.sx}, options.dtype(at::kLong));
  std::vector<int64_t> ycounts(static_cast<size_t>(chunk * J * pb.sy));
  std::vector<double> target_sum(static_cast<size_t>(chunk * J));
  uint64_t* xw = reinterpret_cast<uint64_t*>(xstack.data_ptr<int64_t>());
  int64_t* xc = xcounts.data_ptr<int64_t>();

  std::vector<int64_t> view_nobs(static_cast<size_t>(D));
  for (int64_t q = 0; q < D; ++q) view_nobs[q] = views[q].nobs;
  with_clogs(view_nobs.data(), D, [&](auto fs) {
    with_history(pb.k, pb.l, [&](auto k_, auto l_) {
      for (int64_t q0 = 0; q0 < D; q0 += chunk) {
        const int64_t nd = std::min(chunk, D - q0);
        // Source streams of every (delay, neuron) of the chunk, stacked.
        at::parallel_for(0, nd * I, 16, [&](int64_t a0, int64_t a1) {
          for (int64_t a = a0; a < a1; ++a) {
            const DelayView& v = views[q0 + a / I];
            source_streams_for_delay(raw + (a % I) * pr.words, pb.raw_words, pb, v,
                                     xw + a * xstreams * pb.words, xc + a * pb.sx);
          }
        });
        std::fill(xw + nd * I * xstreams * pb.words, xw + rows * pb.words, uint64_t(0));
        for (int64_t c = 0; c < nd; ++c) {
          int64_t* yc = ycounts.data() + c * J * pb.sy;
          target_counts_for_delay(Y, pb, views[q0 + c], yc);
          for (int64_t j = 0; j < J; ++j)
            target_sum[c * J + j] = math::target_sum_from_marginals(yc + j * pb.sy, k_, fs(q0 + c));
        }
        PackedSide X;
        X.onehot = xstack;
        X.streams = xstreams;
        SeriesPlan ps = pb;
        ps.I = nd * I;
        // The chunk's counts are one tiled product; each pair is reduced with
        // its own delay's marginals and total as soon as its counts exist.
        for_all_tiles(X, Y, ps, [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                                    const int64_t* cross, int64_t ldc) {
          int64_t bins[math::kMaxOnehotBins];
          for (int64_t a = i0; a < i1; ++a) {
            const int64_t c = a / I;
            const DelayView& v = views[q0 + c];
            const int64_t* crow = cross + (a - i0) * xstreams * ldc;
            const int64_t* yc = ycounts.data() + c * J * pb.sy;
            for (int64_t j = j0; j < j1; ++j) {
              math::assemble_joint_counts(crow + (j - j0) * Y.streams, ldc, 1, xc + a * pb.sx,
                                          yc + j * pb.sy, v.nobs, k_, l_, bins);
              out.put(q0 + c, a % I, j,
                      math::te_from_joint_counts_given(bins, k_, l_, fs(q0 + c), v.nobs,
                                                       target_sum[c * J + j]),
                      bins, k_, l_);
            }
          }
        });
      }
    });
  });
  return out.tensor();
}


at::Tensor scan_cpu(const at::Tensor& source, const at::Tensor& target, c10::IntArrayRef delays,
                    int64_t k, int64_t l, std::optional<double> threshold, ScanResult what,
                    const char* op) {
  check_delays(delays, op);
  const int64_t dmin = *std::min_element(delays.begin(), delays.end());
  const int64_t dmax = *std::max_element(delays.begin(), delays.end());
  // The longest delay decides whether T is long enough (and says so).
  plan_series(source, target, k, l, dmax, threshold, op);
  const SeriesPlan pb = plan_series(source, target, k, l, dmin, threshold, op);
  // Histories too large for one-hot streams take transfer_entropy's
  // per-pair histograms, one delay at a time.
  if (!pb.onehot) {
    TORCH_CHECK_VALUE(what != ScanResult::kCounts, op, ": histories this large (k + l = ",
                      k + l, ") have no one-hot scan to return counts from");
    return scan_by_delay(source, target, delays, k, l, threshold, what == ScanResult::kSigned);
  }
  const SeriesPlan pr = raw_series_plan(pb);
  // Both sides as plain packed series: what the first-order and sparse scans
  // read, and what the density is measured on.
  check_fits(mul_sat(mul_sat(add_sat(pb.I, pb.J), pr.words), 8), host_memory_bytes(), pb, op);
  const PackedSide series = pack_side_cpu(source, pr, /*is_target=*/false, 1, op, "source");
  // An all-pairs scan of one recording passes the same tensor twice: pack it once.
  const bool same = source.is_same(target) ||
                    (source.data_ptr() == target.data_ptr() && source.sizes() == target.sizes() &&
                     source.strides() == target.strides() && source.dtype() == target.dtype());
  std::optional<PackedSide> ys;
  return scan_series(
      series, pb, pr, delays, what, source.options(), op,
      [&]() -> const PackedSide& {
        if (same) return series;
        if (!ys) ys = pack_side_cpu(target, pr, /*is_target=*/false, 1, op, "target");
        return *ys;
      },
      [&]() -> const at::Tensor& { return target; });
}

// ---------------------------------------------------------------------------
// Packed input (te._transfer_entropy_delays_packed): each side as int64 words
// [N, W], bit t of row i = neuron i at time t (LSB first), W >= ceil(T / 64),
// every bit at or past T zero. A spike recording binned straight into words
// (te-matrix) never exists as a [T, N] byte array: 1/8 of the memory.

// Raises ValueError unless `words` is int64 [N, W] on the CPU, wide enough for
// `length` bits, with no bit set at or past `length`.
void check_words(const at::Tensor& words, int64_t length, const char* op, const char* name) {
  TORCH_CHECK_VALUE(words.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK_TYPE(words.scalar_type() == at::kLong, op, ": ", name,
                   " must be int64 words, got dtype ", words.scalar_type());
  TORCH_CHECK_VALUE(words.dim() == 2, op, ": ", name, " must be 2-d [neurons, words], got ",
                    words.dim(), " dimensions");
  TORCH_CHECK_VALUE(words.device().is_cpu(), op, ": ", name, " must be on the CPU, got ",
                    words.device());
  const int64_t need = math::ceil_div(length, math::kWordBits);
  TORCH_CHECK_VALUE(words.size(1) >= need, op, ": ", name, " holds ", words.size(1),
                    " words a neuron, too few for length ", length, " (need ", need, ")");
  const at::Tensor w = words.contiguous();
  const uint64_t* p = reinterpret_cast<const uint64_t*>(w.const_data_ptr<int64_t>());
  const int64_t W = w.size(1);
  for (int64_t i = 0; i < w.size(0); ++i)
    for (int64_t q = need - 1; q < W; ++q) {
      const uint64_t past = p[i * W + q] & ~math::valid_mask(q, length);
      TORCH_CHECK_VALUE(past == 0, op, ": ", name, " has a bit set at or past length ", length,
                        " (neuron ", i, ", word ", q, ")");
    }
}

// A side packed as plain series (raw_series_plan `pr`) from checked words:
// the words themselves when they already have its layout, else a padded copy.
PackedSide side_from_words(const at::Tensor& words, const SeriesPlan& pr) {
  const int64_t n = words.size(0), need = pr.raw_words;
  PackedSide side;
  side.streams = 1;
  if (words.is_contiguous() && words.size(1) == pr.words) {
    side.onehot = words;
    return side;
  }
  side.onehot = at::zeros({n, pr.words}, words.options());
  side.onehot.narrow(1, 0, need).copy_(words.narrow(1, 0, need));
  return side;
}

// The series as bool [T, N], for the paths that read a tensor.
at::Tensor unpack_words(const at::Tensor& words, int64_t length) {
  const at::Tensor w = words.contiguous();
  const int64_t n = w.size(0), W = w.size(1);
  at::Tensor out = at::empty({length, n}, w.options().dtype(at::kBool));
  const uint64_t* p = reinterpret_cast<const uint64_t*>(w.const_data_ptr<int64_t>());
  bool* o = out.data_ptr<bool>();
  at::parallel_for(0, length, 4096, [&](int64_t t0, int64_t t1) {
    for (int64_t t = t0; t < t1; ++t)
      for (int64_t i = 0; i < n; ++i)
        o[t * n + i] = (p[i * W + t / math::kWordBits] >> (t % math::kWordBits)) & 1;
  });
  return out;
}

at::Tensor transfer_entropy_delays_packed_cpu(const at::Tensor& source, const at::Tensor& target,
                                              int64_t length, c10::IntArrayRef delays, int64_t k,
                                              int64_t l, bool with_sign) {
  const char* op = "te._transfer_entropy_delays_packed";
  check_delays(delays, op);
  TORCH_CHECK_VALUE(length >= 1, op, ": length must be >= 1, got ", length);
  check_words(source, length, op, "source");
  check_words(target, length, op, "target");
  const ScanResult what = with_sign ? ScanResult::kSigned : ScanResult::kTe;
  // Plan as for bool [T, N] series of these sizes.
  const std::vector<int64_t> xs{length, source.size(0)}, ys{length, target.size(0)};
  TensorInfo xi, yi;
  xi.sizes = xs;
  yi.sizes = ys;
  const int64_t dmin = *std::min_element(delays.begin(), delays.end());
  const int64_t dmax = *std::max_element(delays.begin(), delays.end());
  plan_series(xi, yi, k, l, dmax, std::nullopt, op);
  const SeriesPlan pb = plan_series(xi, yi, k, l, dmin, std::nullopt, op);
  if (!pb.onehot)
    return scan_by_delay(unpack_words(source, length), unpack_words(target, length), delays, k,
                         l, std::nullopt, with_sign);
  const SeriesPlan pr = raw_series_plan(pb);
  const PackedSide series = side_from_words(source, pr);
  const bool same = source.is_same(target);
  std::optional<PackedSide> packed_target;
  std::optional<at::Tensor> dense_target;
  return scan_series(
      series, pb, pr, delays, what, source.options(), op,
      [&]() -> const PackedSide& {
        if (same) return series;
        if (!packed_target) packed_target = side_from_words(target, pr);
        return *packed_target;
      },
      [&]() -> const at::Tensor& {
        if (!dense_target) dense_target = unpack_words(target, length);
        return *dense_target;
      });
}

at::Tensor transfer_entropy_delays_cpu(const at::Tensor& source, const at::Tensor& target,
                                       c10::IntArrayRef delays, int64_t k, int64_t l,
                                       std::optional<double> threshold) {
  return scan_cpu(source, target, delays, k, l, threshold, ScanResult::kTe,
                  "te.transfer_entropy_delays");
}

at::Tensor transfer_entropy_delays_signed_cpu(const at::Tensor& source, const at::Tensor& target,
                                              c10::IntArrayRef delays, int64_t k, int64_t l,
                                              std::optional<double> threshold) {
  return scan_cpu(source, target, delays, k, l, threshold, ScanResult::kSigned,
                  "te.transfer_entropy_delays_signed");
}

at::Tensor transfer_entropy_delays_counts_cpu(const at::Tensor& source, const at::Tensor& target,
                                              c10::IntArrayRef delays, int64_t k, int64_t l,
                                              std::optional<double> threshold) {
  return scan_cpu(source, target, delays, k, l, threshold, ScanResult::kCounts,
                  "te._transfer_entropy_delays_counts");
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CPU, m) {
  m.impl("transfer_entropy_delays", &transfer_entropy_delays_cpu);
  m.impl("transfer_entropy_delays_signed", &transfer_entropy_delays_signed_cpu);
  m.impl("_transfer_entropy_delays_counts", &transfer_entropy_delays_counts_cpu);
  m.impl("_transfer_entropy_delays_packed", &transfer_entropy_delays_packed_cpu);
}

}  // namespace cpu
}  // namespace te
