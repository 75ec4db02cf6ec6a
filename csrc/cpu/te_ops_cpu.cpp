// CPU implementations of the torch.ops.te ops.
#include <ATen/Parallel.h>
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <torch/library.h>

#include <algorithm>
#include <limits>
#include <utility>
#include <vector>

#include "../te_math.h"
#include "../te_plan.h"
#include "../window_plan.h"
#include "clog_table.h"
#include "pack_cpu.h"
#include "pair_counts_cpu.h"
#include "te_ops_cpu.h"

namespace te {
namespace cpu {

void check_count_values(const int64_t* c, int64_t n, int64_t bins, const char* op) {
  int64_t lo = 0, hi = 0;
  for (int64_t e = 0; e < n; ++e) {
    lo = std::min(lo, c[e]);
    hi = std::max(hi, c[e]);
  }
  check_count_range(lo, hi, bins, op);
}

namespace {

// Pack step of the drivers: the memory check, then both sides in one parallel region.
Packed pack_cpu(const at::Tensor& source, const at::Tensor& target, const SeriesPlan& plan,
                int64_t output_bytes, const char* op) {
  return pack_both(plan, workspace_bytes(plan, kRowTile, at::get_num_threads()), output_bytes,
                   host_memory_bytes(), op, [&] {
                     auto sides = pack_sides_cpu(source, target, plan, kRowTile, op);
                     return Packed{std::move(sides.first), std::move(sides.second)};
                   });
}

// Output bytes of an [a, b, c] tensor of `elem` bytes, or "too many" when it
// would overflow: the memory check then reports it instead of a crash.
int64_t output_bytes(int64_t a, int64_t b, int64_t c, int64_t elem) {
  int64_t r = 0;
  if (__builtin_mul_overflow(a, b, &r) || __builtin_mul_overflow(r, c, &r) ||
      __builtin_mul_overflow(r, elem, &r))
    return std::numeric_limits<int64_t>::max();
  return r;
}

at::Tensor joint_counts_cpu(const at::Tensor& source, const at::Tensor& target, int64_t k,
                            int64_t l, int64_t delay, std::optional<double> threshold) {
  const char* op = "te.joint_counts";
  const SeriesPlan plan = plan_series(source, target, k, l, delay, threshold, op);
  const Packed p = pack_cpu(source, target, plan, output_bytes(plan.I, plan.J, plan.bins, 8), op);
  at::Tensor out = at::empty({plan.I, plan.J, plan.bins}, source.options().dtype(at::kLong));
  int64_t* o = out.data_ptr<int64_t>();
  const int64_t J = plan.J, nb = plan.bins;
  with_history(plan.k, plan.l, [&](auto k_, auto l_) {
    for_all_pairs(p.source, p.target, plan, k_, l_, [&](int64_t i, int64_t j, const int64_t* c) {
      std::copy(c, c + nb, o + (i * J + j) * nb);
    });
  });
  return out;
}

}  // namespace

void accumulate_joint_counts_cpu(at::Tensor& counts, const at::Tensor& source,
                                 const at::Tensor& target, int64_t k, int64_t l, int64_t delay,
                                 int64_t sign, const char* op) {
  const SeriesPlan plan = plan_series(source, target, k, l, delay, std::nullopt, op);
  const Packed p = pack_cpu(source, target, plan, 0, op);
  int64_t* o = counts.data_ptr<int64_t>();
  const int64_t J = plan.J, nb = plan.bins;
  with_history(plan.k, plan.l, [&](auto k_, auto l_) {
    for_all_pairs(p.source, p.target, plan, k_, l_, [&](int64_t i, int64_t j, const int64_t* c) {
      int64_t* dst = o + (i * J + j) * nb;
      for (int64_t b = 0; b < nb; ++b) dst[b] += sign * c[b];
    });
  });
}

namespace {

at::Tensor transfer_entropy_cpu(const at::Tensor& source, const at::Tensor& target, int64_t k,
                                int64_t l, int64_t delay, std::optional<double> threshold) {
  const char* op = "te.transfer_entropy";
  const SeriesPlan plan = plan_series(source, target, k, l, delay, threshold, op);
  const Packed p = pack_cpu(source, target, plan, output_bytes(plan.I, plan.J, 1, 8), op);
  at::Tensor out = at::empty({plan.I, plan.J}, source.options().dtype(at::kDouble));
  double* o = out.data_ptr<double>();
  with_clog(plan.nobs, [&](auto f) {
    with_history(plan.k, plan.l,
                 [&](auto k_, auto l_) { te_all_pairs(p.source, p.target, plan, k_, l_, f, o); });
  });
  return out;
}

at::Tensor transfer_entropy_pairs_cpu(const at::Tensor& source, const at::Tensor& target,
                                      const at::Tensor& pairs, int64_t k, int64_t l,
                                      int64_t delay, std::optional<double> threshold) {
  const char* op = "te.transfer_entropy_pairs";
  const SeriesPlan plan = plan_series(source, target, k, l, delay, threshold, op);
  check_pairs(pairs, plan, source.device(), op);
  const Packed p = pack_cpu(source, target, plan, output_bytes(pairs.size(0), 1, 1, 8), op);
  const at::Tensor pc = pairs.contiguous();
  at::Tensor out = at::empty({pc.size(0)}, source.options().dtype(at::kDouble));
  double* o = out.data_ptr<double>();
  const int k_ = plan.k, l_ = plan.l;
  with_clog(plan.nobs, [&](auto f) {
    for_listed_pairs(p.source, p.target, plan, pc.const_data_ptr<int64_t>(), pc.size(0),
                     [&](int64_t q, const int64_t* c) { o[q] = math::te_from_joint_counts(c, k_, l_, f); });
  });
  return out;
}

// TE of every [..., bins] histogram of `c` (int64, contiguous) into `out`.
// `check_range`: the counts come from a user and must be shown non-negative
// and summable first; a window's own counts skip that pass.
void te_of_counts(const at::Tensor& c, int64_t k, int64_t l, int64_t bins, bool check_range,
                  const char* op, at::Tensor& out) {
  const int64_t npairs = out.numel();
  if (npairs == 0) return;
  const int64_t* cp = c.const_data_ptr<int64_t>();
  // One pass for the range check and the largest pair total, which bounds
  // every marginal the reduction looks up. (Two ATen reductions would cost
  // more than the op on the small per-step histograms of training.) Totals
  // are summed only after the range check has ruled out int64 overflow.
  if (check_range) check_count_values(cp, npairs * bins, bins, op);
  int64_t most = 0;
  int64_t centre = -1;
  bool one_centre = true;
  for (int64_t q = 0; q < npairs; ++q) {
    int64_t total = 0;
    for (int64_t b = 0; b < bins; ++b) total += cp[q * bins + b];
    const int64_t c = math::clog_centre(total);
    one_centre = one_centre && (q == 0 || c == centre);
    centre = c;
    most = std::max(most, total);
  }
  double* o = out.data_ptr<double>();
  // A table serves one centre (clog_table.h). A window's histograms all share
  // one total; a user's may not, and each is then reduced directly, with the
  // same f and so the same bits as a table of its own.
  if (!one_centre) {
    at::parallel_for(0, npairs, 1024, [&](int64_t q0, int64_t q1) {
      for (int64_t q = q0; q < q1; ++q)
        o[q] = math::te_from_joint_counts_direct(cp + q * bins, static_cast<int>(k), static_cast<int>(l));
    });
    return;
  }
  with_clog(most, [&](auto f) {
    with_history(static_cast<int>(k), static_cast<int>(l), [&](auto k_, auto l_) {
      at::parallel_for(0, npairs, 4096, [&](int64_t q0, int64_t q1) {
        for (int64_t q = q0; q < q1; ++q) o[q] = math::te_from_joint_counts(cp + q * bins, k_, l_, f);
      });
    });
  });
}

at::Tensor te_from_counts_cpu(const at::Tensor& counts, int64_t k, int64_t l) {
  const char* op = "te.te_from_counts";
  const int64_t bins = check_counts(counts, k, l, op);
  const at::Tensor c = counts.to(at::kLong).contiguous();
  at::Tensor out = at::empty(pair_shape(counts), counts.options().dtype(at::kDouble));
  te_of_counts(c, k, l, bins, /*check_range=*/true, op, out);
  return out;
}

// The training refresh (see window_async_ops.cpp): no range check; NaN once
// the window's status recorded a bad input value.
at::Tensor te_from_window_counts_cpu(const at::Tensor& counts,
                                     const std::optional<at::Tensor>& status, int64_t k,
                                     int64_t l) {
  const char* op = "te._te_from_window_counts";
  const int64_t bins = check_counts(counts, k, l, op);
  TORCH_CHECK_TYPE(counts.scalar_type() == at::kLong, op, ": counts must be int64, got ",
                   counts.scalar_type());
  at::Tensor out = at::empty(pair_shape(counts), counts.options().dtype(at::kDouble));
  if (status.has_value()) {
    check_window_status(*status, counts, op);
    if (status->const_data_ptr<int64_t>()[kStatusFlags] != 0) {
      return out.fill_(std::numeric_limits<double>::quiet_NaN());
    }
  }
  te_of_counts(counts.contiguous(), k, l, bins, /*check_range=*/false, op, out);
  return out;
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CPU, m) {
  m.impl("joint_counts", &joint_counts_cpu);
  m.impl("te_from_counts", &te_from_counts_cpu);
  m.impl("_te_from_window_counts", &te_from_window_counts_cpu);
  m.impl("transfer_entropy", &transfer_entropy_cpu);
  m.impl("transfer_entropy_pairs", &transfer_entropy_pairs_cpu);
}

}  // namespace cpu
}  // namespace te
