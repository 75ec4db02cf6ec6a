// See delays_sparse_cpu.h. Notation as in te_math.h: observation n has target
// state ystate(n) from y[n-k..n] and, at delay d, source state xstate(n - d)
// from x[n-d-l+1..n-d]. With u = n - d ("source time"), delay d counts the
// u in [lo(d), hi(d)) = [n0(d) - d, T - d) of every replicate.
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>

#include <algorithm>
#include <vector>

#include "../te_math.h"
#include "clog_table.h"
#include "delays_sparse_cpu.h"

namespace te {
namespace cpu {
namespace {

// 64 bits of a replicate's packed series from bit `bit`, which may be
// negative (times before 0 read as zero).
inline uint64_t load_from(const uint64_t* row, int64_t nwords, int64_t bit) {
  if (bit >= 0) return math::load_bits(row, nwords, bit);
  if (bit <= -math::kWordBits) return 0;
  return math::load_bits(row, nwords, 0) << (-bit);
}

// state(field) where bit p of the field is time t - width + 1 + p: the newest
// bit (time t) is the state's bit 0 for a source, bit k for a target.
std::vector<int> reversal_table(int width, bool is_target, int k) {
  std::vector<int> table(size_t(1) << width);
  for (int f = 0; f < (1 << width); ++f) {
    int s = 0;
    if (is_target) {
      s = ((f >> k) & 1) << k;  // ynext = y[n]: the field's top bit
      for (int m = 0; m < k; ++m) s |= ((f >> (k - 1 - m)) & 1) << m;  // y[n-1-m]
    } else {
      for (int m = 0; m < width; ++m) s |= ((f >> (width - 1 - m)) & 1) << m;  // x[u-m]
    }
    table[f] = s;
  }
  return table;
}

// The times t in [t0, t1) of one replicate (ascending) whose state over bits
// t-width+1..t is not zero, with that state: every spike s makes
// t = s .. s+width-1 such. t1 <= T.
template <typename Fn>
void nonzero_states(const uint64_t* row, int64_t nwords, int64_t t0, int64_t t1, int width,
                    const std::vector<int>& table, Fn fn) {
  const uint64_t field_mask = (uint64_t(1) << width) - 1;
  const int64_t first = std::max<int64_t>(0, t0 - width + 1);  // earliest spike that counts
  int64_t next = t0;  // first time not yet emitted
  for (int64_t w = first / math::kWordBits; w * math::kWordBits < t1 && w < nwords; ++w) {
    uint64_t bits = row[w];
    if (w == first / math::kWordBits) bits &= ~uint64_t(0) << (first % math::kWordBits);
    while (bits) {
      const int64_t s = w * math::kWordBits + __builtin_ctzll(bits);
      bits &= bits - 1;
      if (s >= t1) return;
      const int64_t end = std::min<int64_t>(s + width, t1);
      for (int64_t t = std::max(s, next); t < end; ++t)
        fn(t, table[load_from(row, nwords, t - width + 1) & field_mask]);
      next = std::max(next, end);
    }
  }
}

// Every source's observations with a non-zero state, ordered by time: the
// events at global time g = r * T + u are entries [start[g], start[g + 1]) of
// `who`, each source index << 8 | state.
// A block of targets' counters, and the span of time walked for all of them
// before moving on (a multiple of 64: chunks start on word boundaries).
constexpr int64_t kCounterBytes = int64_t(256) << 10;
constexpr int64_t kTimeChunk = 8192;
// A first-order counter gains at most one count per target observation of a time chunk,
// so a chunk's counts fit the 16-bit chunk counters.
static_assert(kTimeChunk < (int64_t(1) << 16), "first-order chunk counters are 16-bit");

// For the first-order walk also key[e] = source - u * I (u: the event's time
// in its replicate), so that the counter of (lag n - u, source), row-major
// [lag][source], is n * I + key[e] less a constant: one add per coincidence.
struct EventsByTime {
  std::vector<int64_t> start;
  std::vector<uint32_t> who;
  std::vector<int64_t> key;
};

// Also fills xcount[(i * Q + q) * SX + state]: source i's state counts over
// delay q's u in [lo[q], hi[q]) of every replicate.
EventsByTime source_events(const uint64_t* xraw, int64_t W, int64_t RW, int64_t I, int64_t R,
                           int64_t T, int l, int64_t SX, const std::vector<int>& xtable,
                           const std::vector<int64_t>& lo, const std::vector<int64_t>& hi,
                           bool with_key, std::vector<int64_t>& xcount) {
  const int64_t Q = static_cast<int64_t>(lo.size());
  const int64_t G = R * T, GW = R * RW;  // global times and words (word gw: replicate gw / RW)
  const uint64_t field_mask = (uint64_t(1) << l) - 1;
  // Word w of replicate r of source i, with bit t set where the state at t is not zero.
  auto active = [&](const uint64_t* row, int64_t w) {
    uint64_t m = row[w];
    for (int b = 1; b < l; ++b) m |= load_from(row, RW, w * math::kWordBits - b);
    return m & math::valid_mask(w, T);
  };
  // Calls fn(r, a, b) for the words [a, b) of replicate r inside global words [w0, w1).
  auto by_replicate = [&](int64_t w0, int64_t w1, auto fn) {
    for (int64_t r = w0 / RW; r * RW < w1; ++r)
      fn(r, std::max(w0 - r * RW, int64_t(0)), std::min(w1 - r * RW, RW));
  };
  // Time-major in word ranges, one thread each: count the events at every
  // time, then place them (sources ascending within a time).
  EventsByTime ev;
  ev.start.assign(static_cast<size_t>(G + 1), 0);
  const int64_t parts = std::max<int64_t>(1, std::min<int64_t>(GW, at::get_num_threads() * 4));
  std::vector<int64_t> part_events(static_cast<size_t>(parts + 1), 0);
  auto words_of = [&](int64_t part) { return std::make_pair(GW * part / parts, GW * (part + 1) / parts); };
  auto time_of = [&](int64_t gw, int bit) { return (gw / RW) * T + (gw % RW) * math::kWordBits + bit; };
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t part = p0; part < p1; ++part) {
      const auto [w0, w1] = words_of(part);
      int64_t n = 0;
      by_replicate(w0, w1, [&](int64_t r, int64_t a, int64_t b) {
        int64_t* counts = ev.start.data() + r * T + 1;
        for (int64_t i = 0; i < I; ++i) {
          const uint64_t* row = xraw + i * W + r * RW;
          for (int64_t w = a; w < b; ++w)
            for (uint64_t m = active(row, w); m; m &= m - 1, ++n)
              ++counts[w * math::kWordBits + __builtin_ctzll(m)];
        }
      });
      part_events[part + 1] = n;
    }
  });
  for (int64_t part = 0; part < parts; ++part) part_events[part + 1] += part_events[part];
  const size_t E = static_cast<size_t>(part_events[parts]);
  ev.who.resize(E);
  if (with_key) ev.key.resize(E);
  at::parallel_for(0, parts, 1, [&](int64_t p0, int64_t p1) {
    for (int64_t part = p0; part < p1; ++part) {
      const auto [w0, w1] = words_of(part);
      if (w0 == w1) continue;
      // The part's times, up to the end of its last replicate (past T no time is).
      const int64_t g0 = time_of(w0, 0);
      const int64_t g1 = std::min(time_of(w1 - 1, 0) + math::kWordBits, ((w1 - 1) / RW + 1) * T);
      // Prefix sums over the part's times; slots past T of a replicate hold no events.
      ev.start[g0] = part_events[part];
      for (int64_t g = g0 + 1; g < g1; ++g) ev.start[g] += ev.start[g - 1];
      std::vector<int64_t> fill(ev.start.begin() + g0, ev.start.begin() + g1);
      by_replicate(w0, w1, [&](int64_t r, int64_t a, int64_t b) {
        const int64_t off = r * T - g0;  // fill[off + u]: where time u's next event goes
        for (int64_t i = 0; i < I; ++i) {
          const uint64_t* row = xraw + i * W + r * RW;
          for (int64_t w = a; w < b; ++w)
            for (uint64_t m = active(row, w); m; m &= m - 1) {
              const int64_t u = w * math::kWordBits + __builtin_ctzll(m);
              const int64_t at = fill[off + u]++;
              ev.who[at] = static_cast<uint32_t>(i << 8 | xtable[load_from(row, RW, u - l + 1) & field_mask]);
              if (with_key) ev.key[at] = i - u * I;
            }
        }
      });
    }
  });
  ev.start[G] = part_events[parts];
  // Each source's state counts: all of its events, less those near either end
  // of a replicate that a delay's [lo, hi) leaves out.
  xcount.assign(static_cast<size_t>(I * Q * SX), 0);
  std::vector<int64_t> total(static_cast<size_t>(I * SX), 0);
  for (size_t e = 0; e < E; ++e) ++total[(ev.who[e] >> 8) * SX + (ev.who[e] & 0xff)];
  for (int64_t i = 0; i < I; ++i)
    for (int64_t q = 0; q < Q; ++q)
      for (int64_t st = 1; st < SX; ++st) xcount[(i * Q + q) * SX + st] = total[i * SX + st];
  const int64_t lo_max = *std::max_element(lo.begin(), lo.end());
  const int64_t hi_min = *std::min_element(hi.begin(), hi.end());
  auto leave_out = [&](int64_t r, int64_t u0, int64_t u1) {
    for (int64_t u = u0; u < u1; ++u)
      for (int64_t e = ev.start[r * T + u]; e < ev.start[r * T + u + 1]; ++e)
        for (int64_t q = 0; q < Q; ++q)
          if (u < lo[q] || u >= hi[q])
            --xcount[((ev.who[e] >> 8) * Q + q) * SX + (ev.who[e] & 0xff)];
  };
  for (int64_t r = 0; r < R; ++r) {
    const int64_t head = std::min(lo_max, T);
    leave_out(r, 0, head);
    leave_out(r, std::max(head, hi_min), T);
  }
  return ev;
}

}  // namespace

double packed_density(const PackedSide& side, const SeriesPlan& pr, int64_t rows) {
  const uint64_t* w = reinterpret_cast<const uint64_t*>(side.onehot.const_data_ptr<int64_t>());
  int64_t ones = 0;
  for (int64_t c = 0; c < rows; ++c)
    for (int64_t x = 0; x < pr.R * pr.raw_words; ++x)
      ones += static_cast<int64_t>(math::popcount64(w[c * pr.words + x]));
  const double cells = static_cast<double>(rows) * static_cast<double>(pr.R * pr.T);
  return cells > 0 ? static_cast<double>(ones) / cells : 1.0;
}

bool sparse_scan_pays(double density, const SeriesPlan& pb, int64_t unique_delays) {
  // sparse / dense time ~ A p^2 + B p / D. The dense scan costs D * streams / 64
  // word operations per pair and time step (streams = (2^l - 1)(2^(k+1) - 1)
  // one-hot pairs); the sparse one c per coincidence of a source and a target
  // state that are not zero, (k + 1) l p^2 D of them, plus building the events
  // (the B term). c = 3 for the first-order walk and 28 for the general one;
  // the constants are fitted to a sweep of p in 0.01-0.2, D in {5, 30} and
  // (k, l) in {(1, 1), (2, 1), (3, 2)} on 2 cores with AVX-512 VPOPCNTDQ
  // (docs/recordings.md); where popcount is slower the dense side costs more.
  const double p = density;
  const double streams = static_cast<double>((pb.sx - 1) * (pb.sy - 1));
  const double c = (pb.k == 1 && pb.l == 1) ? 3.0 : 28.0;
  const double A = (pb.k + 1) * pb.l * math::kWordBits * c / streams;
  const double B = 100.0;
  return A * p * p + B * p / static_cast<double>(unique_delays) < 0.8;
}

void scan_sparse(const PackedSide& source, const PackedSide& target, c10::IntArrayRef delays,
                 const SeriesPlan& pb, const SeriesPlan& pr, DelayScanOutput& out) {
  const int k = pb.k, l = pb.l;
  const int64_t I = pb.I, J = pb.J, R = pb.R, T = pb.T;
  const int64_t SX = pb.sx, SY = pb.sy;
  const int64_t RW = pb.raw_words, W = pr.words;
  std::vector<int64_t> distinct(delays.begin(), delays.end());
  std::sort(distinct.begin(), distinct.end());
  distinct.erase(std::unique(distinct.begin(), distinct.end()), distinct.end());
  const int64_t Q = static_cast<int64_t>(distinct.size());
  std::vector<int64_t> lo(Q), hi(Q), nobs(Q);
  for (int64_t q = 0; q < Q; ++q) {
    const int64_t n0 = math::first_observation(k, l, distinct[q]);
    lo[q] = n0 - distinct[q];
    hi[q] = T - distinct[q];
    nobs[q] = R * (T - n0);
  }
  const uint64_t* xraw = reinterpret_cast<const uint64_t*>(source.onehot.const_data_ptr<int64_t>());
  const uint64_t* yraw = reinterpret_cast<const uint64_t*>(target.onehot.const_data_ptr<int64_t>());
  const std::vector<int> xtable = reversal_table(l, false, k);
  const std::vector<int> ytable = reversal_table(k + 1, true, k);

  // Each distinct delay's target state counts over n in [n0, T), and the
  // target-only sums, as the dense paths have them.
  std::vector<int64_t> ycount(static_cast<size_t>(Q * J * SY));
  std::vector<double> target_sum(static_cast<size_t>(Q * J));
  at::parallel_for(0, J, 1, [&](int64_t j0, int64_t j1) {
    std::vector<int64_t> total(static_cast<size_t>(SY));
    std::vector<std::pair<int64_t, int>> early;  // (n, state) with n below the last n0
    const int64_t n0max = math::first_observation(k, l, distinct.back());
    for (int64_t j = j0; j < j1; ++j) {
      std::fill(total.begin(), total.end(), 0);
      early.clear();
      for (int64_t r = 0; r < R; ++r)
        nonzero_states(yraw + j * W + r * RW, RW, 0, T, k + 1, ytable, [&](int64_t n, int s) {
          ++total[s];
          if (n < n0max) early.emplace_back(n, s);
        });
      for (int64_t q = 0; q < Q; ++q) {
        int64_t* c = ycount.data() + (q * J + j) * SY;
        const int64_t n0 = lo[q] + distinct[q];
        int64_t nonzero = 0;
        for (int64_t s = 1; s < SY; ++s) c[s] = total[s];
        for (const auto& e : early)
          if (e.first < n0) --c[e.second];
        for (int64_t s = 1; s < SY; ++s) nonzero += c[s];
        c[0] = nobs[q] - nonzero;
      }
    }
  });
  std::vector<int64_t> slot_of(static_cast<size_t>(delays.size()));
  for (size_t a = 0; a < delays.size(); ++a)
    slot_of[a] = std::lower_bound(distinct.begin(), distinct.end(), delays[a]) - distinct.begin();

  const int64_t cells = (SX - 1) * (SY - 1);  // one-hot cross counts of a pair at one delay
  const int64_t dmin = distinct.front(), dmax = distinct.back();
  const int64_t n0max = math::first_observation(k, l, dmax);
  std::vector<int> delay_slot(static_cast<size_t>(dmax - dmin + 1), -1);
  for (int64_t q = 0; q < Q; ++q) delay_slot[distinct[q] - dmin] = static_cast<int>(q);
  std::vector<std::vector<int64_t>> slots_of(static_cast<size_t>(Q));
  for (size_t a = 0; a < delays.size(); ++a) slots_of[slot_of[a]].push_back(static_cast<int64_t>(a));
  std::vector<int64_t> xcount;
  const bool first_order = k == 1 && l == 1;
  const EventsByTime ev =
      source_events(xraw, W, RW, I, R, T, l, SX, xtable, lo, hi, first_order, xcount);
  // First order (k = l = 1): only the target's spikes are walked. With
  // A(e) = #{n in [e, T): x[n-e] = y[n] = 1} at every lag e in [dmin - 1, dmax]
  // and C(d) = #{n in [d, T): x[n-d] = y[n] = y[n-1] = 1}, delay d's one-hot
  // cross counts (ys = 1, 2, 3) are (A(d-1) - x[T-d] y[T-1] - C, A(d) - C, C):
  // the first-order dense scan's identity, per replicate.
  const int64_t emin = dmin - 1, lags = dmax - dmin + 2;
  // The counts of target observations n in [t0, t1) of replicate r, added to
  // A = counters[(lag - emin) * I + source], C = counters[(lags + q) * I + source].
  auto walk_first_order = [&](const uint64_t* y, int64_t r, int64_t t0, int64_t t1,
                              uint16_t* counters) {
    const uint32_t* w = ev.who.data();
    const int64_t* key = ev.key.data();
    const int64_t* start = ev.start.data() + r * T;
    for (int64_t wd = t0 / math::kWordBits; wd * math::kWordBits < t1; ++wd) {
      uint64_t bits = y[wd];
      while (bits) {
        const int64_t n = wd * math::kWordBits + __builtin_ctzll(bits);
        bits &= bits - 1;
        if (n >= t1) break;
        const int64_t u0 = std::max<int64_t>(0, n - dmax), u1 = n - emin;
        if (u1 < 0) continue;
        const int64_t at_n = (n - emin) * I;  // + key = [n - u - emin][source]
        for (int64_t e = start[u0], e1 = start[u1 + 1]; e < e1; ++e) ++counters[at_n + key[e]];
        if (n == 0 || !((y[(n - 1) / math::kWordBits] >> ((n - 1) % math::kWordBits)) & 1)) continue;
        for (int64_t u = u0; u <= n - dmin; ++u) {
          const int q = delay_slot[n - u - dmin];
          if (q < 0) continue;
          uint16_t* row = counters + (lags + q) * I;
          for (int64_t e = start[u], e1 = start[u + 1]; e < e1; ++e) ++row[w[e] >> 8];
        }
      }
    }
  };
  // Any order: counters[(q * I + source) * cells + (xs - 1) * (SY - 1) + ys - 1].
  auto walk_general = [&](const uint64_t* y, int64_t r, int64_t t0, int64_t t1,
                          uint32_t* counters) {
    const uint32_t* w = ev.who.data();
    const int64_t* start = ev.start.data() + r * T;
    nonzero_states(y, RW, t0, t1, k + 1, ytable, [&](int64_t n, int ys) {
      const int64_t u0 = std::max<int64_t>(0, n - dmax), u1 = n - dmin;  // u in [u0, u1]
      if (u1 < 0) return;
      const bool check = n < n0max;  // early observations miss some delays
      for (int64_t u = u0; u <= u1; ++u) {
        const int64_t e0 = start[u], e1 = start[u + 1];
        const int q = delay_slot[n - u - dmin];
        if (e0 == e1 || q < 0 || (check && u < lo[q])) continue;
        uint32_t* cq = counters + q * I * cells + (ys - 1);
        for (int64_t e = e0; e < e1; ++e) ++cq[(w[e] >> 8) * cells + ((w[e] & 0xff) - 1) * (SY - 1)];
      }
    });
  };
  auto bit_at = [&](const uint64_t* row, int64_t r, int64_t t) -> int64_t {
    return static_cast<int64_t>((row[r * RW + t / math::kWordBits] >> (t % math::kWordBits)) & 1);
  };
  auto first_order_cells = [&](const uint32_t* counters, int64_t i, int64_t q, int64_t j,
                               int64_t* c64) {
    const int64_t d = distinct[q];
    int64_t edge = 0;  // the observation n = T - 1 that A(d-1) has and delay d lacks
    for (int64_t r = 0; r < R; ++r) edge += bit_at(xraw + i * W, r, T - d) & bit_at(yraw + j * W, r, T - 1);
    const int64_t C = counters[(lags + q) * I + i];
    c64[0] = static_cast<int64_t>(counters[(d - 1 - emin) * I + i]) - edge - C;
    c64[1] = static_cast<int64_t>(counters[(d - emin) * I + i]) - C;
    c64[2] = C;
  };
  with_clogs(nobs.data(), Q, [&](auto fs) {
    for (int64_t q = 0; q < Q; ++q)
      for (int64_t j = 0; j < J; ++j)
        target_sum[q * J + j] = math::target_sum_from_marginals(ycount.data() + (q * J + j) * SY, k, fs(q));
    // Per target: its observations with a non-zero state, each against the
    // source events dmin..dmax steps before it, one count per coincidence.
    // Targets go in blocks whose counters fit in L2, and time in chunks whose
    // source events fit beside them, so neither is fetched from memory per spike.
    // uint32 counters: R T < 2^32 is a condition of this path.
    const int64_t per_target = first_order ? (lags + Q) * I : Q * I * cells;
    const int64_t block = std::clamp<int64_t>(kCounterBytes / (per_target * 4), 1, 64);
    at::parallel_for(0, math::ceil_div(J, block), 1, [&](int64_t b0, int64_t b1) {
      std::vector<uint32_t> counters(static_cast<size_t>(block * per_target));
      // First order: a target's counts of one time chunk in 16 bits (half the cache), added
      // to its 32-bit counters after the chunk.
      std::vector<uint16_t> chunk(first_order ? static_cast<size_t>(per_target) : 0);
      int64_t c64[math::kMaxOnehotBins], bins[math::kMaxOnehotBins];
      for (int64_t jb = b0; jb < b1; ++jb) {
        const int64_t j0 = jb * block, j1 = std::min(J, j0 + block);
        std::fill(counters.begin(), counters.end(), 0u);
        for (int64_t r = 0; r < R; ++r)
          for (int64_t t0 = 0; t0 < T; t0 += kTimeChunk)
            for (int64_t j = j0; j < j1; ++j) {
              const uint64_t* y = yraw + j * W + r * RW;
              uint32_t* c = counters.data() + (j - j0) * per_target;
              const int64_t t1 = std::min(T, t0 + kTimeChunk);
              if (first_order) {
                walk_first_order(y, r, t0, t1, chunk.data());
                for (int64_t a = 0; a < per_target; ++a) c[a] += chunk[a];
                std::fill(chunk.begin(), chunk.end(), uint16_t(0));
              } else {
                walk_general(y, r, t0, t1, c);
              }
            }
        for (int64_t j = j0; j < j1; ++j) {
          const uint32_t* c = counters.data() + (j - j0) * per_target;
          for (int64_t q = 0; q < Q; ++q)
            for (int64_t i = 0; i < I; ++i) {
              if (first_order) {
                first_order_cells(c, i, q, j, c64);
              } else {
                for (int64_t a = 0; a < cells; ++a) c64[a] = c[(q * I + i) * cells + a];
              }
              math::assemble_joint_counts(c64, SY - 1, 1, xcount.data() + (i * Q + q) * SX,
                                          ycount.data() + (q * J + j) * SY, nobs[q], k, l, bins);
              const double te =
                  math::te_from_joint_counts_given(bins, k, l, fs(q), nobs[q], target_sum[q * J + j]);
              out.put(slots_of[q], i, j, te, bins, k, l);
            }
        }
      }
    });
  });
}

}  // namespace cpu
}  // namespace te
