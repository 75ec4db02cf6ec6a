// CPU kernels of the statistics ops: permutation surrogates reduced on the fly,
// and local TE. They reuse the packing (pack_cpu), the tile drivers and
// popcount kernels (pair_counts_cpu.h) and the reduction math (te_math.h) of
// transfer_entropy, so a surrogate costs what one transfer_entropy call costs
// minus the packing of the target, which is done once.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/empty_like.h>
#include <ATen/ops/zeros.h>
#include <ATen/ops/zeros_like.h>
#include <torch/library.h>

#include <algorithm>
#include <atomic>
#include <limits>
#include <tuple>
#include <vector>

#include "../stats_math.h"
#include "../stats_plan.h"
#include "../te_math.h"
#include "../te_plan.h"
#include "clog_table.h"
#include "pack_cpu.h"
#include "pair_counts_cpu.h"
#include "te_ops_cpu.h"

namespace te {
namespace cpu {
namespace {

// Raises ValueError naming the first row of `perm` that is not a permutation
// of 0..nobs-1 (the lowest such row, whatever the thread count).
void check_rows_are_permutations(const at::Tensor& perm, const char* op) {
  const int64_t S = perm.size(0), n = perm.size(1);
  const int64_t* pp = perm.const_data_ptr<int64_t>();
  std::atomic<int64_t> first_bad{S};
  at::parallel_for(0, S, 1, [&](int64_t s0, int64_t s1) {
    std::vector<char> seen(static_cast<size_t>(n));
    for (int64_t s = s0; s < s1; ++s) {
      std::fill(seen.begin(), seen.end(), 0);
      bool ok = true;
      for (int64_t q = 0; q < n && ok; ++q) {
        const int64_t v = pp[s * n + q];
        ok = v >= 0 && v < n && !seen[v];
        if (ok) seen[v] = 1;
      }
      if (!ok) {
        int64_t cur = first_bad.load();
        while (s < cur && !first_bad.compare_exchange_weak(cur, s)) {
        }
      }
    }
  });
  if (first_bad.load() < S) stats::fail_not_permutation(first_bad.load(), n, op);
}

// The source's one-hot stream rows laid out observation-major: word rb of
// pooled observation q holds bit r of row 64 * rb + r. A permutation of the
// observations is then a gather of whole words, and one 64 x 64 bit
// transpose per block turns it back into stream rows.
struct ObservationMajor {
  std::vector<uint64_t> words;  // [nobs, blocks]
  int64_t blocks = 0;           // 64-row blocks of stream rows
  int64_t rows = 0;             // stream rows in use: I * streams
};

ObservationMajor observation_major(const PackedSide& X, const SeriesPlan& p) {
  ObservationMajor om;
  om.rows = p.I * X.streams;
  om.blocks = math::ceil_div(om.rows, math::kWordBits);
  om.words.assign(static_cast<size_t>(p.nobs * om.blocks), 0);
  const uint64_t* xw = reinterpret_cast<const uint64_t*>(X.onehot.const_data_ptr<int64_t>());
  const int64_t used_words = p.R * p.rep_words;
  at::parallel_for(0, om.blocks * used_words, 16, [&](int64_t t0, int64_t t1) {
    uint64_t block[64];
    for (int64_t t = t0; t < t1; ++t) {
      const int64_t rb = t / used_words, w = t % used_words;
      for (int64_t r = 0; r < 64; ++r) {
        const int64_t row = rb * 64 + r;
        block[r] = row < om.rows ? xw[row * p.words + w] : 0;
      }
      transpose_bits64(block);  // block[b]: bit r = row 64 rb + r at observation bit b
      int valid = 0;
      const int64_t first = stats::word_observations(w, p.R, p.obs_per_rep, p.rep_words, &valid);
      for (int b = 0; b < valid; ++b) om.words[(first + b) * om.blocks + rb] = block[b];
    }
  });
  return om;
}

// Writes into Xp's stream rows the source streams with observation perm[q]
// moved to q, for the row blocks marked in `need` (all when empty). Rows and
// words outside the observations keep their zeros.
void permute_streams(const ObservationMajor& om, const int64_t* perm, const SeriesPlan& p,
                     const std::vector<char>& need, PackedSide& Xp) {
  uint64_t* xw = reinterpret_cast<uint64_t*>(Xp.onehot.data_ptr<int64_t>());
  const int64_t used_words = p.R * p.rep_words;
  at::parallel_for(0, used_words, 4, [&](int64_t w0, int64_t w1) {
    uint64_t block[64];
    int64_t src[64];
    for (int64_t w = w0; w < w1; ++w) {
      int nb = 0;  // valid observation bits in this word
      const int64_t first = stats::word_observations(w, p.R, p.obs_per_rep, p.rep_words, &nb);
      for (int b = 0; b < nb; ++b) src[b] = perm[first + b] * om.blocks;
      for (int64_t rb = 0; rb < om.blocks; ++rb) {
        if (!need.empty() && !need[rb]) continue;
        for (int b = 0; b < nb; ++b) block[b] = om.words[src[b] + rb];
        std::fill(block + nb, block + 64, uint64_t(0));
        transpose_bits64(block);  // block[r]: word w of row 64 rb + r
        const int64_t r1 = std::min<int64_t>(64, om.rows - rb * 64);
        for (int64_t r = 0; r < r1; ++r) xw[(rb * 64 + r) * p.words + w] = block[r];
      }
    }
  });
}

// The histogram path's equivalent: Xp.states[i, q] = X.states[i, perm[q]].
void permute_states(const PackedSide& X, const int64_t* perm, const SeriesPlan& p,
                    const std::vector<char>& need, PackedSide& Xp) {
  const int32_t* xs = X.states.const_data_ptr<int32_t>();
  int32_t* out = Xp.states.data_ptr<int32_t>();
  at::parallel_for(0, p.I, 1, [&](int64_t i0, int64_t i1) {
    for (int64_t i = i0; i < i1; ++i) {
      if (!need.empty() && !need[i]) continue;
      const int32_t* row = xs + i * p.nobs;
      int32_t* dst = out + i * p.nobs;
      for (int64_t q = 0; q < p.nobs; ++q) dst[q] = row[perm[q]];
    }
  });
}

struct Outputs {
  at::Tensor te, at_least, sum, sum_sq;
  double* te_p() { return te.data_ptr<double>(); }
};

struct Accumulate {
  const double* te;
  int64_t* at_least;
  double* sum;
  double* sum_sq;
  void operator()(int64_t q, double v) const {
    stats::add_surrogate(v, te[q], at_least + q, sum + q, sum_sq + q);
  }
};

// One surrogate's TE of every pair, each handed to acc(pair index, TE). Each
// pair is reduced by one thread per surrogate and surrogates run in order, so
// the sums are the same on every thread count.
template <typename KT, typename LT, typename Clog>
void surrogate_all_pairs(const PackedSide& Xp, const PackedSide& Y, const SeriesPlan& p, KT k,
                         LT l, Clog f, const std::vector<double>& target_sum, const Accumulate& acc) {
  if (!p.onehot) {
    for_all_pairs(Xp, Y, p, k, l, [&](int64_t i, int64_t j, const int64_t* c) {
      acc(i * p.J + j, math::te_from_joint_counts(c, k, l, f));
    });
    return;
  }
  for_all_tiles(Xp, Y, p, [&](int64_t i0, int64_t i1, int64_t j0, int64_t j1,
                              const int64_t* cross, int64_t ldc) {
    te_of_tile(Xp, Y, p, k, l, f, target_sum.data(), i0, i1, j0, j1, cross, ldc, acc);
  });
}

std::tuple<at::Tensor, at::Tensor, at::Tensor, at::Tensor> transfer_entropy_surrogates_cpu(
    const at::Tensor& source, const at::Tensor& target, const at::Tensor& permutations, int64_t k,
    int64_t l, int64_t delay, std::optional<double> threshold,
    const std::optional<at::Tensor>& pairs) {
  const char* op = "te.transfer_entropy_surrogates";
  const SeriesPlan p = plan_series(source, target, k, l, delay, threshold, op);
  if (pairs.has_value()) check_pairs(*pairs, p, source.device(), op);
  stats::check_permutations_shape(permutations, p, source.device(), op);
  const at::Tensor perm = permutations.contiguous();
  check_rows_are_permutations(perm, op);

  const int64_t npairs = pairs.has_value() ? pairs->size(0) : mul_sat(p.I, p.J);
  // Workspace: the packed sides, the permuted copy of the source side and its
  // observation-major form, and the four outputs.
  int64_t bytes = workspace_bytes(p, kRowTile, at::get_num_threads());
  const int64_t source_rows = math::round_up(p.I * (p.sx - 1), kRowTile);
  const int64_t source_copy = p.onehot ? mul_sat(mul_sat(source_rows, p.words), 8)
                                       : mul_sat(mul_sat(p.I, p.nobs), 4);
  bytes = add_sat(bytes, mul_sat(source_copy, 2));
  bytes = add_sat(bytes, mul_sat(npairs, 32));
  check_fits(bytes, host_memory_bytes(), p, op);

  PackedSide X, Y;
  std::tie(X, Y) = pack_sides_cpu(source, target, p, kRowTile, op);
  const auto dopts = source.options().dtype(at::kDouble);
  std::vector<int64_t> shape = pairs.has_value() ? std::vector<int64_t>{npairs}
                                                 : std::vector<int64_t>{p.I, p.J};
  Outputs out{at::empty(shape, dopts), at::zeros(shape, dopts.dtype(at::kLong)),
              at::zeros(shape, dopts), at::zeros(shape, dopts)};
  const Accumulate acc{out.te_p(), out.at_least.data_ptr<int64_t>(), out.sum.data_ptr<double>(),
                       out.sum_sq.data_ptr<double>()};

  // The permuted source side: counts are the source's (a permutation keeps
  // them); streams or states are rewritten for each surrogate.
  PackedSide Xp;
  Xp.counts = X.counts;
  Xp.streams = X.streams;
  ObservationMajor om;
  if (p.onehot) {
    Xp.onehot = at::zeros_like(X.onehot);
    om = observation_major(X, p);
  } else {
    Xp.states = at::empty_like(X.states);
  }

  // With listed pairs only the sources they name are permuted.
  at::Tensor pc;
  std::vector<char> need;
  if (pairs.has_value()) {
    pc = pairs->contiguous();
    const int64_t* pp = pc.const_data_ptr<int64_t>();
    need.assign(static_cast<size_t>(p.onehot ? om.blocks : p.I), 0);
    for (int64_t q = 0; q < npairs; ++q) {
      const int64_t i = pp[2 * q];
      if (!p.onehot) {
        need[i] = 1;
        continue;
      }
      for (int64_t s = 0; s < X.streams; ++s) need[(i * X.streams + s) / 64] = 1;
    }
  }

  const int64_t S = perm.size(0);
  const int64_t* pp = perm.const_data_ptr<int64_t>();
  with_clog(p.nobs, [&](auto f) {
    if (pairs.has_value()) {
      const int64_t* prs = pc.const_data_ptr<int64_t>();
      const int k_ = p.k, l_ = p.l;
      double* te = out.te_p();
      for_listed_pairs(X, Y, p, prs, npairs, [&](int64_t q, const int64_t* c) {
        te[q] = math::te_from_joint_counts(c, k_, l_, f);
      });
      for (int64_t s = 0; s < S; ++s) {
        if (p.onehot) permute_streams(om, pp + s * p.nobs, p, need, Xp);
        else permute_states(X, pp + s * p.nobs, p, need, Xp);
        for_listed_pairs(Xp, Y, p, prs, npairs, [&](int64_t q, const int64_t* c) {
          acc(q, math::te_from_joint_counts(c, k_, l_, f));
        });
      }
      return;
    }
    with_history(p.k, p.l, [&](auto k_, auto l_) {
      te_all_pairs(X, Y, p, k_, l_, f, out.te_p());
      // The target's sums are the same for every surrogate: only the source is permuted.
      const std::vector<double> target_sum = target_sums(Y, p, k_, f);
      for (int64_t s = 0; s < S; ++s) {
        if (p.onehot) permute_streams(om, pp + s * p.nobs, p, need, Xp);
        else permute_states(X, pp + s * p.nobs, p, need, Xp);
        surrogate_all_pairs(Xp, Y, p, k_, l_, f, target_sum, acc);
      }
    });
  });
  return {out.te, out.at_least, out.sum, out.sum_sq};
}

at::Tensor local_transfer_entropy_cpu(const at::Tensor& source, const at::Tensor& target,
                                      const at::Tensor& pairs, int64_t k, int64_t l, int64_t delay,
                                      std::optional<double> threshold) {
  const char* op = "te.local_transfer_entropy";
  SeriesPlan p = plan_series(source, target, k, l, delay, threshold, op);
  check_pairs(pairs, p, source.device(), op);
  p.onehot = false;  // per-observation states are what local values need
  const int64_t npairs = pairs.size(0);
  int64_t bytes = workspace_bytes(p, kRowTile, at::get_num_threads());
  bytes = add_sat(bytes, mul_sat(mul_sat(npairs, p.nobs), 8));
  check_fits(bytes, host_memory_bytes(), p, op);
  PackedSide X, Y;
  std::tie(X, Y) = pack_sides_cpu(source, target, p, kRowTile, op);
  at::Tensor out = at::empty({npairs, p.nobs}, source.options().dtype(at::kDouble));
  if (npairs == 0) return out;
  const at::Tensor pc = pairs.contiguous();
  const int64_t* prs = pc.const_data_ptr<int64_t>();
  const int32_t* xs = X.states.const_data_ptr<int32_t>();
  const int32_t* ys = Y.states.const_data_ptr<int32_t>();
  double* o = out.data_ptr<double>();
  const int64_t syp = int64_t(1) << p.k, half = int64_t(1) << (p.k + p.l);
  at::parallel_for(0, npairs, 1, [&](int64_t q0, int64_t q1) {
    std::vector<int64_t> bins(p.bins), ynyp(p.sy), yp(syp);
    for (int64_t q = q0; q < q1; ++q) {
      const int32_t* x = xs + prs[2 * q] * p.nobs;
      const int32_t* y = ys + prs[2 * q + 1] * p.nobs;
      histogram_pair(x, y, p.nobs, p.l, bins.data(), p.bins);
      // Marginals of the pair: (ynext, ypast) = target state, and ypast.
      for (int64_t s = 0; s < p.sy; ++s) {
        int64_t c = 0;
        for (int64_t xv = 0; xv < p.sx; ++xv) c += bins[(s << p.l) | xv];
        ynyp[s] = c;
      }
      for (int64_t v = 0; v < syp; ++v) yp[v] = ynyp[v] + ynyp[syp | v];
      for (int64_t n = 0; n < p.nobs; ++n) {
        const int64_t ystate = y[n], xv = x[n];
        const int64_t bin = (ystate << p.l) | xv;
        const int64_t past = bin & (half - 1);  // (ypast << l) | xpast
        o[q * p.nobs + n] = stats::local_te(bins[bin], bins[past] + bins[half | past], ynyp[ystate],
                                            yp[ystate & (syp - 1)]);
      }
    }
  });
  return out;
}

at::Tensor sorted_local_te_cpu(const at::Tensor& counts, int64_t k, int64_t l) {
  const char* op = "te.sorted_local_te";
  const int64_t bins = check_counts(counts, k, l, op);
  const at::Tensor c = counts.to(at::kLong).contiguous();
  at::Tensor out = at::empty(pair_shape(counts), counts.options().dtype(at::kDouble));
  const int64_t npairs = out.numel();
  const int64_t* cp = c.const_data_ptr<int64_t>();
  check_count_values(cp, npairs * bins, bins, op);
  double* o = out.data_ptr<double>();
  at::parallel_for(0, npairs, 4096, [&](int64_t q0, int64_t q1) {
    for (int64_t q = q0; q < q1; ++q)
      o[q] = stats::sorted_local_te_from_joint_counts(cp + q * bins, static_cast<int>(k),
                                                      static_cast<int>(l));
  });
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CPU, m) {
  m.impl("sorted_local_te", &sorted_local_te_cpu);
  m.impl("transfer_entropy_surrogates", &transfer_entropy_surrogates_cpu);
  m.impl("local_transfer_entropy", &local_transfer_entropy_cpu);
}

}  // namespace cpu
}  // namespace te
