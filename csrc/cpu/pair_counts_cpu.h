// Drives the counting of every (source, target) pair, or of a list of pairs,
// and hands each pair's joint counts to a sink. The sink writes counts out
// (joint_counts) or reduces them to TE on the spot (transfer_entropy), so the
// fused op never materialises the [I, J, bins] histogram.
#pragma once

#include <ATen/Parallel.h>

#include <algorithm>
#include <atomic>
#include <type_traits>
#include <vector>

#include "../te_math.h"
#include "pack_cpu.h"
#include "popcount_cpu.h"

namespace te {
namespace cpu {

// Rows of one operand in a tile: about this many keeps a tile's two operands
// of one word chunk in L2 while the register tile streams through them.
constexpr int64_t kTileRows = 64;
// Words per chunk of the time axis inside a tile (4 KiB per row).
constexpr int64_t kWordChunk = 512;

inline int64_t tile_neurons(int64_t streams) {
  return std::max<int64_t>(kRowTile, math::round_up(kTileRows / streams, kRowTile));
}

// Calls fn(k, l) with compile-time constants for the common k = l = 1, so
// that the per-pair assembly and reduction unroll; the per-pair math is
// otherwise the largest part of the run time. Other histories pass ints.
template <typename Fn>
void with_history(int k, int l, Fn fn) {
  if (k == 1 && l == 1) {
    fn(std::integral_constant<int, 1>{}, std::integral_constant<int, 1>{});
  } else {
    fn(k, l);
  }
}

// Histogram of one pair on the path without one-hot streams.
inline void histogram_pair(const int32_t* xs, const int32_t* ys, int64_t nobs, int l,
                           int64_t* bins, int64_t nbins) {
  std::fill(bins, bins + nbins, 0);
  for (int64_t o = 0; o < nobs; ++o) ++bins[(static_cast<int64_t>(ys[o]) << l) | xs[o]];
}

// tile(i0, i1, j0, j1, cross, ldc) for every tile of pairs on the one-hot
// path, with cross[(a - i0 * X.streams) * ldc + (b - j0 * Y.streams)] the
// AND+popcount count of X stream row a and Y stream row b. Tiles run in
// parallel; `tile` must be thread-safe across tiles.
template <typename Tile>
void for_all_tiles(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p, Tile tile) {
  const int64_t bi = tile_neurons(X.streams), bj = tile_neurons(Y.streams);
  const int64_t ti = at::divup(p.I, bi), tj = at::divup(p.J, bj);
  const PopcountKernel& kernel = popcount_kernel();
  const uint64_t* xw = reinterpret_cast<const uint64_t*>(X.onehot.const_data_ptr<int64_t>());
  const uint64_t* yw = reinterpret_cast<const uint64_t*>(Y.onehot.const_data_ptr<int64_t>());
  // Tiles are handed out one at a time from a shared counter rather than in
  // fixed shares: on a machine shared with other work, a thread that loses
  // its core for a while no longer holds up the whole op with its share.
  const int64_t ntiles = ti * tj;
  std::atomic<int64_t> next{0};
  at::parallel_for(0, ntiles, 1, [&](int64_t, int64_t) {
    std::vector<int64_t> cross;
    for (int64_t t = next.fetch_add(1, std::memory_order_relaxed); t < ntiles;
         t = next.fetch_add(1, std::memory_order_relaxed)) {
      const int64_t i0 = (t / tj) * bi, i1 = std::min(p.I, i0 + bi);
      const int64_t j0 = (t % tj) * bj, j1 = std::min(p.J, j0 + bj);
      const int64_t a0 = i0 * X.streams, a1 = math::round_up(i1 * X.streams, kRowTile);
      const int64_t b0 = j0 * Y.streams, b1 = math::round_up(j1 * Y.streams, kRowTile);
      const int64_t ldc = b1 - b0;
      // No zeroing: the kernel's first word chunk writes every entry.
      if (cross.size() < static_cast<size_t>((a1 - a0) * ldc))
        cross.resize(static_cast<size_t>((a1 - a0) * ldc));
      for (int64_t w0 = 0; w0 < p.words; w0 += kWordChunk) {
        const int64_t w1 = std::min(p.words, w0 + kWordChunk);
        kernel.cross_block(xw, yw, p.words, w0, w1, a0, a1, b0, b1, cross.data(), ldc);
      }
      tile(i0, i1, j0, j1, static_cast<const int64_t*>(cross.data()), ldc);
    }
  });
}

// sink(i, j, counts) for all I x J pairs; sink must be thread-safe per pair.
template <typename KT, typename LT, typename Sink>
void for_all_pairs(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p, KT k, LT l,
                   Sink sink) {
  if (!p.onehot) {
    const int32_t* xs = X.states.const_data_ptr<int32_t>();
    const int32_t* ys = Y.states.const_data_ptr<int32_t>();
    const int64_t bi = tile_neurons(X.streams), bj = tile_neurons(Y.streams);
    const int64_t tj = at::divup(p.J, bj);
    at::parallel_for(0, at::divup(p.I, bi) * tj, 1, [&](int64_t t0, int64_t t1) {
      std::vector<int64_t> bins(p.bins);
      for (int64_t t = t0; t < t1; ++t) {
        const int64_t i0 = (t / tj) * bi, i1 = std::min(p.I, i0 + bi);
        const int64_t j0 = (t % tj) * bj, j1 = std::min(p.J, j0 + bj);
        for (int64_t i = i0; i < i1; ++i)
          for (int64_t j = j0; j < j1; ++j) {
            histogram_pair(xs + i * p.nobs, ys + j * p.nobs, p.nobs, p.l, bins.data(), p.bins);
            sink(i, j, bins.data());
          }
      }
    });
    return;
  }
  const int64_t* xcount = X.counts.const_data_ptr<int64_t>();
  const int64_t* ycount = Y.counts.const_data_ptr<int64_t>();
  for_all_tiles(X, Y, p, [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1, const int64_t* cross,
                             int64_t ldc) {
    int64_t bins[math::kMaxOnehotBins];
    for (int64_t i = i0; i < i1; ++i) {
      for (int64_t j = j0; j < j1; ++j) {
        const int64_t* c = cross + (i - i0) * X.streams * ldc + (j - j0) * Y.streams;
        math::assemble_joint_counts(c, ldc, 1, xcount + i * p.sx, ycount + j * p.sy, p.nobs, k,
                                    l, bins);
        sink(i, j, static_cast<const int64_t*>(bins));
      }
    }
  });
}

// The target-only part of every pair's sum (math::target_sum_from_marginals), the same
// for every source, so computed once per target. Empty without one-hot streams: those
// pairs reduce their own counts.
template <typename KT, typename Clog>
std::vector<double> target_sums(const PackedSide& Y, const SeriesPlan& p, KT k, Clog f) {
  std::vector<double> sums;
  if (!p.onehot) return sums;
  const int64_t* ycount = Y.counts.const_data_ptr<int64_t>();
  sums.resize(static_cast<size_t>(p.J));
  for (int64_t j = 0; j < p.J; ++j) sums[j] = math::target_sum_from_marginals(ycount + j * p.sy, k, f);
  return sums;
}

// sink(i * J + j, TE(source i -> target j)) for the pairs of one for_all_tiles tile, given
// target_sums(Y, ...). Every pair's total is nobs, so this is bit-identical to
// te_from_joint_counts, which recomputes both from the same integers in the same order.
// Forced inline: the same loop behind a call made the 1000-surrogate job (S1) 4-7% slower.
template <typename KT, typename LT, typename Clog, typename Sink>
__attribute__((always_inline)) inline void te_of_tile(
    const PackedSide& X, const PackedSide& Y, const SeriesPlan& p, KT k, LT l, Clog f,
    const double* target, int64_t i0, int64_t i1, int64_t j0, int64_t j1, const int64_t* cross,
    int64_t ldc, const Sink& sink) {
  const int64_t* xcount = X.counts.const_data_ptr<int64_t>();
  const int64_t* ycount = Y.counts.const_data_ptr<int64_t>();
  int64_t bins[math::kMaxOnehotBins];
  for (int64_t i = i0; i < i1; ++i) {
    const int64_t* crow = cross + (i - i0) * X.streams * ldc;
    for (int64_t j = j0; j < j1; ++j) {
      math::assemble_joint_counts(crow + (j - j0) * Y.streams, ldc, 1, xcount + i * p.sx,
                                  ycount + j * p.sy, p.nobs, k, l, bins);
      sink(i * p.J + j, math::te_from_joint_counts_given(bins, k, l, f, p.nobs, target[j]));
    }
  }
}

// out[i * J + j] = TE(source i -> target j) for all pairs.
template <typename KT, typename LT, typename Clog>
void te_all_pairs(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p, KT k, LT l,
                  Clog f, double* out) {
  if (!p.onehot) {
    for_all_pairs(X, Y, p, k, l, [&](int64_t i, int64_t j, const int64_t* c) {
      out[i * p.J + j] = math::te_from_joint_counts(c, k, l, f);
    });
    return;
  }
  const std::vector<double> target = target_sums(Y, p, k, f);
  const auto store = [out](int64_t q, double te) { out[q] = te; };
  for_all_tiles(X, Y, p, [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1, const int64_t* cross,
                             int64_t ldc) {
    te_of_tile(X, Y, p, k, l, f, target.data(), i0, i1, j0, j1, cross, ldc, store);
  });
}

// sink(q, counts) for the pairs (pairs[q, 0], pairs[q, 1]).
template <typename Sink>
void for_listed_pairs(const PackedSide& X, const PackedSide& Y, const SeriesPlan& p,
                      const int64_t* pairs, int64_t npairs, Sink sink) {
  const int64_t* xcount = X.counts.const_data_ptr<int64_t>();
  const int64_t* ycount = Y.counts.const_data_ptr<int64_t>();
  const PopcountKernel& kernel = popcount_kernel();
  at::parallel_for(0, npairs, 16, [&](int64_t q0, int64_t q1) {
    std::vector<int64_t> bins(p.bins);
    std::vector<int64_t> cross(std::max<int64_t>(1, X.streams * Y.streams));
    for (int64_t q = q0; q < q1; ++q) {
      const int64_t i = pairs[2 * q], j = pairs[2 * q + 1];
      if (!p.onehot) {
        histogram_pair(X.states.const_data_ptr<int32_t>() + i * p.nobs,
                       Y.states.const_data_ptr<int32_t>() + j * p.nobs, p.nobs, p.l,
                       bins.data(), p.bins);
        sink(q, bins.data());
        continue;
      }
      const uint64_t* xw = reinterpret_cast<const uint64_t*>(X.onehot.const_data_ptr<int64_t>());
      const uint64_t* yw = reinterpret_cast<const uint64_t*>(Y.onehot.const_data_ptr<int64_t>());
      for (int64_t xs = 0; xs < X.streams; ++xs)
        for (int64_t ys = 0; ys < Y.streams; ++ys)
          cross[xs * Y.streams + ys] =
              kernel.and_popcount(xw + (i * X.streams + xs) * p.words,
                                  yw + (j * Y.streams + ys) * p.words, p.words);
      math::assemble_joint_counts(cross.data(), Y.streams, 1, xcount + i * p.sx,
                                  ycount + j * p.sy, p.nobs, p.k, p.l, bins.data());
      sink(q, bins.data());
    }
  });
}

}  // namespace cpu
}  // namespace te
