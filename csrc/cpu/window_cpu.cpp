// CPU kernel of te::window_append_ (the step is planned in window_plan.h): one
// pass binarises and bit-packs the batch; the rows that leave or enter are
// read straight from the ring and the batch as column bitsets, and their joint
// counts (AND+popcount of one-hot state streams, te_math.h) are added into
// `counts` in place. Training calls this once a step on small problems, where
// any tensor allocation or thread hand-off would cost more than the counting.
#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <c10/util/ParallelGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../te_math.h"
#include "../window_plan.h"
#include "popcount_cpu.h"
#include "te_ops_cpu.h"

namespace te {
namespace cpu {
namespace {

constexpr const char* kOp = "te.window_append_";

// Below this many (row, source, target) triples a step runs on the calling
// thread: at training sizes (65 rows x 144 x 10) the work is tens of
// microseconds, less than handing it to a second thread costs, and a thread
// that another process has descheduled would stall the step for milliseconds.
constexpr int64_t kSerialWork = int64_t(1) << 24;

// Where a bad input value goes: raised at once (window_append_), or recorded
// in a deferred window's status for te::_window_check (_window_append_async_).
struct BadValueSink {
  int64_t* status = nullptr;  // record here when set; raise otherwise

  void operator()(std::optional<double> threshold, const char* name, int side, double value) const {
    if (status == nullptr) raise_bad_value(threshold, name, value, kOp);
    status[kStatusFlags] |= int64_t(1) << side;
    if (status[kStatusValue + 2 * side] == 0) {
      status[kStatusValue + 2 * side] = 1;
      std::memcpy(status + kStatusValue + 2 * side + 1, &value, sizeof value);
    }
  }
};

// x [B, C] (any strides) -> packed rows out [B, bytes], bit c % 8 of byte c / 8.
// Each byte is built in a register and stored once; a value the contract rejects
// only sets a flag, and then a second pass finds the first one and hands it to
// the sink. (A read-modify-write of the output byte per value, with the sink's
// branch, was a third of the op's time at training sizes.)
template <typename scalar_t>
void pack_batch(const at::Tensor& x, std::optional<double> threshold, const char* name, int side,
                const BadValueSink& sink, int64_t bytes, uint8_t* out) {
  const scalar_t* p = x.const_data_ptr<scalar_t>();
  const int64_t B = x.size(0), C = x.size(1), sb = x.stride(0), sc = x.stride(1);
  const bool has = threshold.has_value();
  const double thr = threshold.value_or(0.0);
  bool any_bad = false;
  for (int64_t b = 0; b < B; ++b) {
    const scalar_t* src = p + b * sb;
    uint8_t* row = out + b * bytes;
    for (int64_t c8 = 0; c8 < bytes; ++c8) {
      const int n = static_cast<int>(std::min<int64_t>(8, C - 8 * c8));
      unsigned byte = 0;
      for (int m = 0; m < n; ++m) {
        bool bad = false;
        byte |= static_cast<unsigned>(math::to_bit(src[(8 * c8 + m) * sc], has, thr, &bad)) << m;
        any_bad |= bad;
      }
      row[c8] = static_cast<uint8_t>(byte);
    }
  }
  if (!any_bad) return;
  for (int64_t b = 0; b < B; ++b)
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t v = p[b * sb + c * sc];
      bool bad = false;
      math::to_bit(v, has, thr, &bad);
      if (bad) sink(threshold, name, side, static_cast<double>(v));
    }
}

// Column bitsets of C neurons over samples [first, last): word w of neuron c
// holds samples first + 64 w .. (bit o = sample first + o); rows before `seen`
// come from the ring, the rest from the packed batch. One spare zero word per
// neuron lets load_bits read past the end. Rows go eight at a time through an
// 8 x 8 bit transpose per byte of neurons: the bit-by-bit scatter this replaced
// was a third of the op's time at training sizes (USPS, 144 x 10, batch 64).
void sample_columns(const uint8_t* ring, int64_t W, const uint8_t* batch, int64_t seen,
                    int64_t first, int64_t last, int64_t C, int64_t bytes, int64_t words,
                    uint64_t* out) {
  std::fill(out, out + C * words, uint64_t(0));
  const uint8_t* rows[8];
  for (int64_t o0 = 0; o0 < last - first; o0 += 8) {
    const int n = static_cast<int>(std::min<int64_t>(8, last - first - o0));
    for (int r = 0; r < n; ++r) rows[r] = window_row(ring, batch, bytes, W, seen, first + o0 + r);
    const int shift = static_cast<int>(o0 % math::kWordBits);
    uint64_t* word = out + o0 / math::kWordBits;
    for (int64_t byte = 0; byte < bytes; ++byte) {
      uint64_t x = 0;
      for (int r = 0; r < n; ++r) x |= uint64_t(rows[r][byte]) << (8 * r);
      if (x == 0) continue;
      const uint64_t t = math::transpose8x8(x);  // byte m: neuron 8 byte + m over the 8 rows
      const int m_end = static_cast<int>(std::min<int64_t>(8, C - byte * 8));
      for (int m = 0; m < m_end; ++m) word[(byte * 8 + m) * words] |= ((t >> (8 * m)) & 0xFF) << shift;
    }
  }
}

// One-hot state streams of every neuron over the segment's observations
// (observation o is sample first + n0 + o): out[(c * S + state) * ow + w],
// S = 2^nbits, built with te_math.h's lags and onehot_word as the pair kernels
// build theirs. counts[c * S + state] receives each stream's population.
void state_streams(const uint64_t* cols, int64_t C, int64_t words, int64_t n0, int64_t nobs,
                   int nbits, bool is_target, int k, int64_t delay, int64_t ow, uint64_t* out,
                   int64_t* counts) {
  const int64_t S = int64_t(1) << nbits;
  std::vector<uint64_t> lag(nbits);
  for (int64_t c = 0; c < C; ++c) {
    const uint64_t* col = cols + c * words;
    for (int64_t st = 0; st < S; ++st) counts[c * S + st] = 0;
    for (int64_t w = 0; w < ow; ++w) {
      for (int b = 0; b < nbits; ++b) {
        const int64_t shift = is_target ? math::target_state_lag(b, k) : math::source_state_lag(b, delay);
        lag[b] = math::load_bits(col, words, n0 - shift + w * math::kWordBits);
      }
      const uint64_t valid = math::valid_mask(w, nobs);
      for (int64_t st = 0; st < S; ++st) {
        const uint64_t v = math::onehot_word(lag.data(), nbits, st) & valid;
        out[(c * S + st) * ow + w] = v;
        counts[c * S + st] += static_cast<int64_t>(math::popcount64(v));
      }
    }
  }
}

// One segment of samples [first, last) as one-hot state streams of its
// observations (from first + n0 on) and their populations, read straight from
// the ring and the packed batch.
struct Segment {
  int64_t sign = 0, nobs = 0, ow = 0;
  std::vector<uint64_t> xs, ys;    // [I][sx][ow], [J][sy][ow]
  std::vector<int64_t> xcount, ycount;  // [I][sx], [J][sy]
};

Segment make_segment(const uint8_t* sring, const uint8_t* tring, const uint8_t* sbits,
                     const uint8_t* tbits, int64_t seen, int64_t first, int64_t last,
                     const WindowArgs& a, int64_t sbytes, int64_t tbytes, int k, int l,
                     int64_t delay, int64_t sign) {
  Segment g;
  g.sign = sign;
  g.nobs = last - first - a.n0;
  if (g.nobs <= 0) {
    g.nobs = 0;
    return g;
  }
  const int64_t words = math::ceil_div(last - first, math::kWordBits) + 1;
  g.ow = math::ceil_div(g.nobs, math::kWordBits);
  const int64_t sx = int64_t(1) << l, sy = int64_t(1) << (k + 1);
  std::vector<uint64_t> scols(a.I * words), tcols(a.J * words);
  sample_columns(sring, a.W, sbits, seen, first, last, a.I, sbytes, words, scols.data());
  sample_columns(tring, a.W, tbits, seen, first, last, a.J, tbytes, words, tcols.data());
  g.xs.resize(a.I * sx * g.ow);
  g.ys.resize(a.J * sy * g.ow);
  g.xcount.resize(a.I * sx);
  g.ycount.resize(a.J * sy);
  state_streams(scols.data(), a.I, words, a.n0, g.nobs, l, false, k, delay, g.ow, g.xs.data(),
                g.xcount.data());
  state_streams(tcols.data(), a.J, words, a.n0, g.nobs, k + 1, true, k, delay, g.ow,
                g.ys.data(), g.ycount.data());
  return g;
}

// The segments' signed sums of the marginals and of the observation count:
// assemble_joint_counts is linear in its inputs, so the segments' signed cross
// counts, marginals and observation counts are summed first and each pair is
// assembled and written once per step, whatever leaves and enters. Summed once
// per neuron here, not once per pair.
struct SignedMarginals {
  std::vector<int64_t> x, y;  // [I][sx], [J][sy]
  int64_t n = 0;
};

SignedMarginals signed_marginals(const Segment* segs, int nsegs, int64_t I, int64_t J,
                                 int64_t sx, int64_t sy) {
  SignedMarginals m;
  m.x.assign(I * sx, 0);
  m.y.assign(J * sy, 0);
  for (int s = 0; s < nsegs; ++s) {
    const Segment& g = segs[s];
    m.n += g.sign * g.nobs;
    for (int64_t a = 0; a < I * sx; ++a) m.x[a] += g.sign * g.xcount[a];
    for (int64_t a = 0; a < J * sy; ++a) m.y[a] += g.sign * g.ycount[a];
  }
  return m;
}

// counts[i, j, :] += the signed sum over the segments of their joint counts.
// SX, SY: the state counts when known at compile time (k = l = 1: 2 and 4, the
// training default, fully unrolled), else 0 and read at run time.
template <int64_t SX, int64_t SY>
__attribute__((always_inline)) inline void pair_rows_n(const Segment* segs, int nsegs,
                                                       const SignedMarginals& m, int64_t J,
                                                       int64_t sx_, int64_t sy_, int k, int l,
                                                       int64_t i0, int64_t i1, int64_t* counts) {
  const int64_t sx = SX ? SX : sx_, sy = SY ? SY : sy_, bins = sx * sy;
  const int64_t cells = (sx - 1) * (sy - 1);  // cross counts of one pair
  // Per source row, the signed cross counts of every target: one word of the
  // source's stream is loaded once and ANDed with each target stream's word in
  // turn, a loop without a carried dependence that the compiler unrolls. (Per
  // pair and per segment, a one-word and_popcount call was mostly loop overhead.)
  std::vector<int64_t> cross(J * cells);
  // Fixed sizes live on the stack; run-time ones on the heap.
  constexpr int64_t kFixed = SX && SY ? SX * SY : 1;
  int64_t fixed[kFixed];
  std::vector<int64_t> heap(SX && SY ? 0 : bins);
  int64_t* joint = SX && SY ? fixed : heap.data();
  const int64_t* mx = m.x.data();
  const int64_t* my = m.y.data();
  for (int64_t i = i0; i < i1; ++i) {
    std::fill(cross.begin(), cross.end(), int64_t(0));
    for (int s = 0; s < nsegs; ++s) {
      const Segment& g = segs[s];
      const int64_t ow = g.ow, sign = g.sign;
      const uint64_t* ys = g.ys.data();
      for (int64_t x = 1; x < sx; ++x) {
        const uint64_t* xs = g.xs.data() + (i * sx + x) * ow;
        int64_t* cx = cross.data() + (x - 1) * (sy - 1);
        for (int64_t w = 0; w < ow; ++w) {
          const uint64_t xw = xs[w];
          if (xw == 0) continue;
          for (int64_t j = 0; j < J; ++j)
            for (int64_t y = 1; y < sy; ++y)
              cx[j * cells + y - 1] +=
                  sign * static_cast<int64_t>(math::popcount64(xw & ys[(j * sy + y) * ow + w]));
        }
      }
    }
    for (int64_t j = 0; j < J; ++j) {
      math::assemble_joint_counts(cross.data() + j * cells, sy - 1, 1, mx + i * sx, my + j * sy,
                                  m.n, k, l, joint);
      int64_t* out = counts + (i * J + j) * bins;
      for (int64_t b = 0; b < bins; ++b) out[b] += joint[b];
    }
  }
}

__attribute__((always_inline)) inline void pair_rows(const Segment* segs, int nsegs,
                                                     const SignedMarginals& m, int64_t J,
                                                     int64_t sx, int64_t sy, int k, int l,
                                                     int64_t i0, int64_t i1, int64_t* counts) {
  if (sx == 2 && sy == 4) {
    pair_rows_n<2, 4>(segs, nsegs, m, J, sx, sy, k, l, i0, i1, counts);
  } else {
    pair_rows_n<0, 0>(segs, nsegs, m, J, sx, sy, k, l, i0, i1, counts);
  }
}

// Without a target attribute __builtin_popcountll is a libgcc call: the same
// loop compiled for the POPCNT instruction, taken unless the dispatched CPU
// kernel is "generic" (the CPU lacks it, or TE_EXT_CPU_KERNEL chose so).
using PairRowsFn = void (*)(const Segment*, int, const SignedMarginals&, int64_t, int64_t,
                            int64_t, int, int, int64_t, int64_t, int64_t*);
#if defined(__x86_64__)
__attribute__((target("popcnt"))) void pair_rows_popcnt(const Segment* segs, int nsegs,
                                                        const SignedMarginals& m, int64_t J,
                                                        int64_t sx, int64_t sy, int k, int l,
                                                        int64_t i0, int64_t i1, int64_t* counts) {
  pair_rows(segs, nsegs, m, J, sx, sy, k, l, i0, i1, counts);
}
#endif
void pair_rows_generic(const Segment* segs, int nsegs, const SignedMarginals& m, int64_t J,
                       int64_t sx, int64_t sy, int k, int l, int64_t i0, int64_t i1,
                       int64_t* counts) {
  pair_rows(segs, nsegs, m, J, sx, sy, k, l, i0, i1, counts);
}

void accumulate_segments(int64_t* counts, const Segment* segs, int nsegs, const WindowArgs& a,
                         int k, int l) {
  PairRowsFn rows = &pair_rows_generic;
#if defined(__x86_64__)
  if (std::strcmp(popcount_kernel().name, "generic") != 0) rows = &pair_rows_popcnt;
#endif
  const int64_t sx = int64_t(1) << l, sy = int64_t(1) << (k + 1);
  const SignedMarginals m = signed_marginals(segs, nsegs, a.I, a.J, sx, sy);
  at::parallel_for(0, a.I, 1, [&](int64_t i0, int64_t i1) {
    rows(segs, nsegs, m, a.J, sx, sy, k, l, i0, i1, counts);
  });
}

void window_step_cpu(at::Tensor& counts, at::Tensor& source_ring, at::Tensor& target_ring,
                     const at::Tensor& source, const at::Tensor& target, int64_t seen, int64_t k,
                     int64_t l, int64_t delay, std::optional<double> source_threshold,
                     std::optional<double> target_threshold, const BadValueSink& sink) {
  const WindowArgs a = check_window_args(counts, source_ring, target_ring, source, target, seen,
                                         k, l, delay, source_threshold, target_threshold, kOp);
  if (a.B == 0) return;
  check_threshold_dtype(source, source_threshold, "source", kOp);
  check_threshold_dtype(target, target_threshold, "target", kOp);
  const int64_t sbytes = (a.I + 7) / 8, tbytes = (a.J + 7) / 8;
  std::vector<uint8_t> sbits(a.B * sbytes), tbits(a.B * tbytes);
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, source.scalar_type(),
                             "te_window_pack", [&] {
    pack_batch<scalar_t>(source, source_threshold, "source", 0, sink, sbytes, sbits.data());
  });
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, target.scalar_type(),
                             "te_window_pack", [&] {
    pack_batch<scalar_t>(target, target_threshold, "target", 1, sink, tbytes, tbits.data());
  });

  uint8_t* sring = source_ring.data_ptr<uint8_t>();
  uint8_t* tring = target_ring.data_ptr<uint8_t>();
  auto segment = [&](int64_t first, int64_t last, int64_t sign) {
    return make_segment(sring, tring, sbits.data(), tbits.data(), seen, first, last, a, sbytes,
                        tbytes, static_cast<int>(k), static_cast<int>(l), delay, sign);
  };
  const WindowStep step = plan_window_step(seen, a.B, a.W, a.n0);
  const int64_t rows = std::min(a.B, a.W) + 2 * a.n0 + (step.recount ? 0 : a.B);
  const c10::ParallelGuard serial(rows * a.I * a.J < kSerialWork);
  if (a.track) {
    Segment segs[2];
    int nsegs = 0;
    if (step.recount) {
      counts.zero_();
      segs[nsegs++] = segment(seen + a.B - a.W, seen + a.B, +1);
    } else {
      segs[nsegs++] = segment(step.leave_first, step.leave_last, -1);
      segs[nsegs++] = segment(step.enter_first, seen + a.B, +1);
    }
    // A segment without observations adds nothing and has no streams: dropped.
    int kept = 0;
    for (int s = 0; s < nsegs; ++s) {
      if (segs[s].nobs == 0) continue;
      if (kept != s) segs[kept] = std::move(segs[s]);
      ++kept;
    }
    if (kept > 0) {
      accumulate_segments(counts.data_ptr<int64_t>(), segs, kept, a, static_cast<int>(k),
                          static_cast<int>(l));
    }
  }
  // After the reads: the batch's last rows overwrite the oldest.
  for (int64_t r = step.write_from; r < a.B; ++r) {
    const int64_t row = (step.write_at + (r - step.write_from)) % a.W;
    std::memcpy(sring + row * sbytes, sbits.data() + r * sbytes, sbytes);
    std::memcpy(tring + row * tbytes, tbits.data() + r * tbytes, tbytes);
  }
}

void window_append_cpu(at::Tensor& counts, at::Tensor& source_ring, at::Tensor& target_ring,
                       const at::Tensor& source, const at::Tensor& target,
                       const c10::Scalar& seen, int64_t k, int64_t l, int64_t delay,
                       std::optional<double> source_threshold,
                       std::optional<double> target_threshold) {
  window_step_cpu(counts, source_ring, target_ring, source, target,
                  window_seen(seen, "te.window_append_"), k, l, delay,
                  source_threshold, target_threshold, BadValueSink{});
}

// The deferred op on the CPU: the same step, the counter and bad values in
// `status` (the CUDA kernel's protocol, so the CPU tests exercise it).
void window_append_async_cpu(at::Tensor& counts, at::Tensor& source_ring,
                             at::Tensor& target_ring, at::Tensor& status,
                             const at::Tensor& source, const at::Tensor& target, int64_t k,
                             int64_t l, int64_t delay, std::optional<double> source_threshold,
                             std::optional<double> target_threshold) {
  check_window_status(status, source, "te._window_append_async_");
  int64_t* st = status.data_ptr<int64_t>();
  window_step_cpu(counts, source_ring, target_ring, source, target, st[kStatusSeen], k, l, delay,
                  source_threshold, target_threshold, BadValueSink{st});
  st[kStatusSeen] += source.size(0);
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CPU, m) {
  m.impl("window_append_", &window_append_cpu);
  m.impl("_window_append_async_", &window_append_async_cpu);
}

}  // namespace cpu
}  // namespace te
