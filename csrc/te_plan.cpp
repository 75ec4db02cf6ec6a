#include "te_plan.h"

#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>
#include <unistd.h>

#include <cmath>
#include <limits>
#include <string>

#include "te_math.h"

namespace te {
namespace {

// Above this many one-hot stream products per pair (popcounts per 64
// observations) a per-pair histogram over precomputed states is cheaper and
// needs far less memory. k, l <= 3 (at most 15 * 7 = 105) stay one-hot.
constexpr int64_t kMaxOnehotProducts = 128;

// The histogram path stores each observation's state as int32, so the target
// state (k + 1 bits) must fit in 31 bits; with l >= 1 that is k + l + 1 <= 32.
// A histogram that large (2^32 bins per pair) is then refused by the memory check.
constexpr int64_t kMaxHistoryBits = 32;

void check_series_tensor(const at::Tensor& x, const char* name, const char* op) {
  TORCH_CHECK_VALUE(x.defined(), op, ": ", name, " is undefined");
  TORCH_CHECK_VALUE(x.dim() == 2 || x.dim() == 3, op, ": ", name,
                    " must be [T, neurons] or [R, T, neurons], got a ", x.dim(),
                    "-d tensor of shape ", x.sizes());
  TORCH_CHECK_TYPE(!x.is_complex(), op, ": ", name, " has complex dtype ", x.scalar_type(),
                   "; expected bool, integer or floating");
  TORCH_CHECK_VALUE(x.numel() > 0, op, ": ", name, " is empty (shape ", x.sizes(),
                    "); every dimension must be at least 1");
}

void check_dtype_for_threshold(const at::Tensor& x, const char* name, bool has_threshold,
                               const char* op) {
  if (has_threshold) return;
  TORCH_CHECK_TYPE(!at::isFloatingType(x.scalar_type()), op, ": ", name, " has dtype ",
                   x.scalar_type(),
                   " but threshold is None; pass threshold=... to binarise floating input "
                   "as value > threshold, or give a bool / 0-1 integer tensor");
}

}  // namespace

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  TORCH_CHECK_VALUE(!__builtin_mul_overflow(a, b, &r), what, " overflows int64 (", a, " * ",
                    b, ")");
  return r;
}

SeriesPlan plan_series(const at::Tensor& source, const at::Tensor& target, int64_t k,
                       int64_t l, int64_t delay, std::optional<double> threshold,
                       const char* op) {
  check_series_tensor(source, "source", op);
  check_series_tensor(target, "target", op);
  TORCH_CHECK_VALUE(source.dim() == target.dim(), op,
                    ": source and target must both be [T, n] or both [R, T, n], got source ",
                    source.sizes(), " and target ", target.sizes());
  TORCH_CHECK_VALUE(source.device() == target.device(), op,
                    ": source and target must be on the same device, got source on ",
                    source.device(), " and target on ", target.device());
  check_history(k, l, op);
  TORCH_CHECK_VALUE(delay >= 1, op, ": delay must be >= 1, got ", delay);
  if (threshold.has_value()) {
    TORCH_CHECK_VALUE(!std::isnan(*threshold), op, ": threshold must not be NaN");
  }
  check_dtype_for_threshold(source, "source", threshold.has_value(), op);
  check_dtype_for_threshold(target, "target", threshold.has_value(), op);

  SeriesPlan p;
  const bool reps = source.dim() == 3;
  p.R = reps ? source.size(0) : 1;
  p.T = source.size(reps ? 1 : 0);
  p.I = source.size(-1);
  p.J = target.size(-1);
  TORCH_CHECK_VALUE(!reps || target.size(0) == p.R, op,
                    ": source and target must have the same number of replicates R, got ", p.R,
                    " and ", target.size(0));
  TORCH_CHECK_VALUE(target.size(reps ? 1 : 0) == p.T, op,
                    ": source and target must have the same length T, got ", p.T, " and ",
                    target.size(reps ? 1 : 0));
  p.k = static_cast<int>(k);
  p.l = static_cast<int>(l);
  p.delay = delay;
  p.n0 = math::first_observation(k, l, delay);
  TORCH_CHECK_VALUE(p.T > p.n0, op, ": series too short for k, l, delay: T = ", p.T,
                    " but k=", k, ", l=", l, ", delay=", delay,
                    " need T > max(k, l - 1 + delay) = ", p.n0);
  p.has_threshold = threshold.has_value();
  p.threshold = threshold.value_or(0.0);
  p.obs_per_rep = p.T - p.n0;
  p.nobs = checked_mul(p.R, p.obs_per_rep, "number of observations");
  p.raw_words = math::ceil_div(p.T, math::kWordBits);
  p.rep_words = math::ceil_div(p.obs_per_rep, math::kWordBits);
  p.words = math::round_up(checked_mul(p.R, p.rep_words, "packed words"), math::kWordPad);
  p.sx = int64_t(1) << l;
  p.sy = int64_t(1) << (k + 1);
  p.bins = int64_t(1) << (k + l + 1);
  p.onehot = (p.sx - 1) * (p.sy - 1) <= kMaxOnehotProducts && p.bins <= math::kMaxOnehotBins;
  return p;
}

int64_t workspace_bytes(const SeriesPlan& p, int64_t row_pad, int64_t workers) {
  const int64_t neurons = p.I + p.J;
  int64_t bytes = checked_mul(checked_mul(neurons, p.R, "workspace"), p.raw_words * 8, "workspace");
  bytes += checked_mul(neurons, (p.sx + p.sy) * 8, "workspace");
  if (p.onehot) {
    const int64_t rows = math::round_up(p.I * (p.sx - 1), row_pad) +
                         math::round_up(p.J * (p.sy - 1), row_pad);
    bytes += checked_mul(checked_mul(rows, p.words, "workspace"), 8, "workspace");
  } else {
    bytes += checked_mul(checked_mul(neurons, p.nobs, "workspace"), 4, "workspace");
    // Each worker fills one pair's full histogram at a time.
    bytes += checked_mul(checked_mul(workers, p.bins, "workspace"), 8, "workspace");
  }
  return bytes;
}

void check_fits(int64_t bytes, int64_t limit, const SeriesPlan& p, const char* op) {
  TORCH_CHECK_VALUE(bytes <= limit, op, ": k=", p.k, ", l=", p.l, " with I=", p.I, ", J=", p.J,
                    ", T=", p.T, ", R=", p.R, " needs ", bytes,
                    " bytes of memory, more than the ", limit,
                    " available; use smaller k + l or fewer neurons / pairs");
}

int64_t host_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES);
  const long page = sysconf(_SC_PAGE_SIZE);
  if (pages <= 0 || page <= 0) return std::numeric_limits<int64_t>::max();
  return static_cast<int64_t>(pages) * static_cast<int64_t>(page);
}

void check_pairs(const at::Tensor& pairs, const SeriesPlan& p, const at::Device& device,
                 const char* op) {
  TORCH_CHECK_TYPE(pairs.scalar_type() == at::kLong, op, ": pairs must be int64 [P, 2], got dtype ",
                   pairs.scalar_type());
  TORCH_CHECK_VALUE(pairs.dim() == 2 && pairs.size(1) == 2, op,
                    ": pairs must have shape [P, 2] of (source i, target j), got ",
                    pairs.sizes());
  TORCH_CHECK_VALUE(pairs.device() == device, op, ": pairs must be on ", device,
                    " like source and target, got ", pairs.device());
  if (pairs.numel() == 0) return;
  // One reduction per column; on CUDA this is the one sync the op needs.
  const auto lo = std::get<0>(pairs.min(0));
  const auto hi = std::get<0>(pairs.max(0));
  const auto bounds = at::stack({lo, hi}).cpu();
  const int64_t* b = bounds.data_ptr<int64_t>();
  TORCH_CHECK_VALUE(b[0] >= 0 && b[2] < p.I, op, ": pairs[:, 0] (source index) must be in [0, ",
                    p.I, "), found values in [", b[0], ", ", b[2], "]");
  TORCH_CHECK_VALUE(b[1] >= 0 && b[3] < p.J, op, ": pairs[:, 1] (target index) must be in [0, ",
                    p.J, "), found values in [", b[1], ", ", b[3], "]");
}

void check_history(int64_t k, int64_t l, const char* op) {
  TORCH_CHECK_VALUE(k >= 1, op, ": k (target history length) must be >= 1, got ", k);
  TORCH_CHECK_VALUE(l >= 1, op, ": l (source history length) must be >= 1, got ", l);
  // k and l are bounded one at a time first: k + l itself could overflow.
  if (k < kMaxHistoryBits && l < kMaxHistoryBits && k + l + 1 <= kMaxHistoryBits) return;
  const bool small = k <= (int64_t(1) << 31) && l <= (int64_t(1) << 31);
  TORCH_CHECK_VALUE(false, op, ": k + l = ",
                    small ? std::to_string(k + l) : std::to_string(k) + " + " + std::to_string(l),
                    " is too large: 2^(k+l+1) bins per pair cannot be held in memory "
                    "(k + l + 1 must be <= ", kMaxHistoryBits, ")");
}

int64_t check_counts(const at::Tensor& counts, int64_t k, int64_t l, const char* op) {
  check_history(k, l, op);
  TORCH_CHECK_TYPE(at::isIntegralType(counts.scalar_type(), /*includeBool=*/false), op,
                   ": counts must be an integer tensor (int64 from joint_counts), got dtype ",
                   counts.scalar_type());
  TORCH_CHECK_VALUE(counts.dim() >= 1, op, ": counts must have at least one dimension");
  const int64_t bins = int64_t(1) << (k + l + 1);
  TORCH_CHECK_VALUE(counts.size(-1) == bins, op, ": counts' last dimension must be 2^(k+l+1) = ",
                    bins, " for k=", k, ", l=", l, ", got ", counts.size(-1));
  return bins;
}

void check_count_range(int64_t least, int64_t most, int64_t bins, const char* op) {
  TORCH_CHECK_VALUE(least >= 0, op, ": counts must be non-negative, found ", least);
  const int64_t limit = std::numeric_limits<int64_t>::max() / bins;
  TORCH_CHECK_VALUE(most <= limit, op, ": counts must be at most ", limit,
                    " (so that a histogram of ", bins, " bins sums within int64), found ", most);
}

}  // namespace te
