#include "te_plan.h"

#include <ATen/ops/stack.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>


#include "te_math.h"

namespace te {
namespace {

constexpr int64_t kInt64Max = std::numeric_limits<int64_t>::max();

// Above this many one-hot stream products per pair (popcounts per 64
// observations) a per-pair histogram over precomputed states is cheaper and
// needs far less memory. k, l <= 3 (at most 15 * 7 = 105) stay one-hot.
constexpr int64_t kMaxOnehotProducts = 128;

// The histogram path stores each observation's state as int32, so the target
// state (k + 1 bits) must fit in 31 bits; with l >= 1 that is k + l + 1 <= 32.
// A histogram that large (2^32 bins per pair) is then refused by the memory check.
constexpr int64_t kMaxHistoryBits = 32;

constexpr const char* kSupportedDtypes =
    "bool, uint8, int8, int16, int32, int64 (holding 0/1, or any values with a threshold), "
    "float16, bfloat16, float32, float64 (with a threshold)";

bool supported_series_dtype(at::ScalarType t) {
  switch (t) {
    case at::kBool: case at::kByte: case at::kChar: case at::kShort: case at::kInt:
    case at::kLong: case at::kHalf: case at::kBFloat16: case at::kFloat: case at::kDouble:
      return true;
    default:
      return false;
  }
}

void check_series_tensor(const TensorInfo& x, const char* name, const char* op) {
  TORCH_CHECK_VALUE(x.dim() == 2 || x.dim() == 3, op, ": ", name,
                    " must be [T, neurons] or [R, T, neurons], got a ", x.dim(),
                    "-d tensor of shape ", x.sizes);
  TORCH_CHECK_VALUE(x.numel() > 0, op, ": ", name, " is empty (shape ", x.sizes,
                    "); every dimension must be at least 1");
}

}  // namespace

int64_t TensorInfo::numel() const {
  int64_t n = 1;
  for (const int64_t s : sizes) n = mul_sat(n, s);
  return n;
}

TensorInfo info(const at::Tensor& t) {
  return TensorInfo{t.sizes(), t.scalar_type(), t.device(), t.is_contiguous()};
}

int64_t mul_sat(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_mul_overflow(a, b, &r) ? kInt64Max : r;
}

int64_t add_sat(int64_t a, int64_t b) {
  int64_t r = 0;
  return __builtin_add_overflow(a, b, &r) ? kInt64Max : r;
}

int64_t checked_mul(int64_t a, int64_t b, const char* what) {
  int64_t r = 0;
  TORCH_CHECK_VALUE(!__builtin_mul_overflow(a, b, &r), what, " overflows int64 (", a, " * ",
                    b, ")");
  return r;
}

void check_series_dtype(const TensorInfo& x, bool has_threshold, const char* name,
                        const char* threshold_name, const char* op) {
  const at::ScalarType t = x.dtype;
  TORCH_CHECK_TYPE(!at::isComplexType(t), op, ": ", name, " has complex dtype ", t,
                   "; expected bool, integer or floating");
  TORCH_CHECK_TYPE(has_threshold || !at::isFloatingType(t), op, ": ", name, " has dtype ", t,
                   " but ", threshold_name, " is None; pass ", threshold_name,
                   "=... to binarise floating input as value > threshold, or give a bool / "
                   "0-1 integer tensor");
  TORCH_CHECK_TYPE(supported_series_dtype(t), op, ": ", name, " has dtype ", t,
                   ", which the kernels do not read; supported: ", kSupportedDtypes,
                   " (te_ext's Python functions convert uint16/32/64 and float8 for you)");
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

void check_delay(int64_t delay, const char* op) {
  TORCH_CHECK_VALUE(delay >= 1, op, ": delay must be >= 1, got ", delay);
}

int64_t first_observation_before(int64_t length, const char* length_name, int64_t k, int64_t l,
                                 int64_t delay, const char* what, const char* op) {
  // k, l <= 31 here, so only l - 1 + delay can overflow (delay near 2^63).
  int64_t lagged = 0;
  const bool overflow = __builtin_add_overflow(l - 1, delay, &lagged);
  const int64_t n0 = overflow ? kInt64Max : std::max(k, lagged);
  TORCH_CHECK_VALUE(length > n0, op, ": ", what, ": ", length_name, " = ", length, " but k=", k,
                    ", l=", l, ", delay=", delay, " need ", length_name,
                    " > max(k, l - 1 + delay) = ",
                    overflow ? std::string("l - 1 + delay, past int64") : std::to_string(n0));
  return n0;
}

SeriesPlan plan_series(const TensorInfo& source, const TensorInfo& target, int64_t k, int64_t l,
                       int64_t delay, std::optional<double> threshold, const char* op) {
  check_series_tensor(source, "source", op);
  check_series_tensor(target, "target", op);
  TORCH_CHECK_VALUE(source.dim() == target.dim(), op,
                    ": source and target must both be [T, n] or both [R, T, n], got source ",
                    source.sizes, " and target ", target.sizes);
  TORCH_CHECK_VALUE(source.device == target.device, op,
                    ": source and target must be on the same device, got source on ",
                    source.device, " and target on ", target.device);
  check_history(k, l, op);
  check_delay(delay, op);
  if (threshold.has_value()) {
    TORCH_CHECK_VALUE(!std::isnan(*threshold), op, ": threshold must not be NaN");
  }
  check_series_dtype(source, threshold.has_value(), "source", "threshold", op);
  check_series_dtype(target, threshold.has_value(), "target", "threshold", op);

  SeriesPlan p;
  const bool reps = source.dim() == 3;
  p.R = reps ? source.size(0) : 1;
  p.T = source.size(reps ? 1 : 0);
  p.I = source.size(-1);
  p.J = target.size(-1);
  p.device = source.device;
  TORCH_CHECK_VALUE(!reps || target.size(0) == p.R, op,
                    ": source and target must have the same number of replicates R, got ", p.R,
                    " and ", target.size(0));
  TORCH_CHECK_VALUE(target.size(reps ? 1 : 0) == p.T, op,
                    ": source and target must have the same length T, got ", p.T, " and ",
                    target.size(reps ? 1 : 0));
  p.k = static_cast<int>(k);
  p.l = static_cast<int>(l);
  p.delay = delay;
  p.n0 = first_observation_before(p.T, "T", k, l, delay, "series too short for k, l, delay", op);
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

SeriesPlan plan_series(const at::Tensor& source, const at::Tensor& target, int64_t k,
                       int64_t l, int64_t delay, std::optional<double> threshold,
                       const char* op) {
  TORCH_CHECK_VALUE(source.defined(), op, ": source is undefined");
  TORCH_CHECK_VALUE(target.defined(), op, ": target is undefined");
  return plan_series(info(source), info(target), k, l, delay, threshold, op);
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

void check_fits(int64_t bytes, const SeriesPlan& p, const char* op) {
  check_memory(bytes, p.device,
               c10::str("k=", p.k, ", l=", p.l, " with I=", p.I, ", J=", p.J, ", T=", p.T,
                        ", R=", p.R, " (use smaller k + l or fewer neurons / pairs)"),
               op);
}

void check_fits(int64_t bytes, int64_t limit, const SeriesPlan& p, const char* op) {
  TORCH_CHECK_VALUE(bytes <= limit, op, ": k=", p.k, ", l=", p.l, " with I=", p.I, ", J=", p.J,
                    ", T=", p.T, ", R=", p.R, " needs ", bytes_str(bytes),
                    " of memory, more than the ", bytes_str(limit),
                    " this machine has; use smaller k + l or fewer neurons / pairs");
  check_fits(bytes, p, op);
}

void check_pairs_shape(const TensorInfo& pairs, const at::Device& device, const char* op) {
  TORCH_CHECK_TYPE(pairs.dtype == at::kLong, op, ": pairs must be int64 [P, 2], got dtype ",
                   pairs.dtype);
  TORCH_CHECK_VALUE(pairs.dim() == 2 && pairs.size(1) == 2, op,
                    ": pairs must have shape [P, 2] of (source i, target j), got ",
                    pairs.sizes);
  TORCH_CHECK_VALUE(pairs.device == device, op, ": pairs must be on ", device,
                    " like source and target, got ", pairs.device);
}

void check_pairs(const at::Tensor& pairs, const SeriesPlan& p, const at::Device& device,
                 const char* op) {
  const TensorInfo pi = info(pairs);
  check_pairs_shape(pi, device, op);
  if (pairs.numel() == 0) return;
  // Before reading P pairs: the float64 [P] output, and the kernels' contiguous
  // copy of pairs (an expanded view can describe terabytes).
  const int64_t P = pi.size(0);
  check_memory(add_sat(mul_sat(P, 8), pi.contiguous ? 0 : mul_sat(P, 16)), device,
               c10::str("pairs of ", P, " rows"), op);
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

int64_t check_counts(const TensorInfo& counts, int64_t k, int64_t l, const char* op) {
  check_history(k, l, op);
  TORCH_CHECK_TYPE(at::isIntegralType(counts.dtype, /*includeBool=*/false), op,
                   ": counts must be an integer tensor (int64 from joint_counts), got dtype ",
                   counts.dtype);
  TORCH_CHECK_TYPE(counts.dtype != at::kUInt64, op,
                   ": counts must be int8 .. int64 or uint8 .. uint32 (int64 from joint_counts), "
                   "got dtype ", counts.dtype);
  TORCH_CHECK_VALUE(counts.dim() >= 1, op, ": counts must have at least one dimension");
  const int64_t bins = int64_t(1) << (k + l + 1);
  TORCH_CHECK_VALUE(counts.size(-1) == bins, op, ": counts' last dimension must be 2^(k+l+1) = ",
                    bins, " for k=", k, ", l=", l, ", got ", counts.size(-1));
  return bins;
}

std::vector<int64_t> pair_shape(const at::Tensor& counts) {
  return std::vector<int64_t>(counts.sizes().begin(), counts.sizes().end() - 1);
}

int64_t check_counts(const at::Tensor& counts, int64_t k, int64_t l, const char* op) {
  TORCH_CHECK_VALUE(counts.defined(), op, ": counts is undefined");
  const TensorInfo c = info(counts);
  const int64_t bins = check_counts(c, k, l, op);
  // The float64 output, and an int64 contiguous copy unless counts is one.
  const int64_t n = c.numel();
  const bool copy = !(c.contiguous && c.dtype == at::kLong);
  check_memory(add_sat(mul_sat(n / std::max<int64_t>(bins, 1), 8), copy ? mul_sat(n, 8) : 0),
               c.device, c10::str("counts of shape ", c.sizes), op);
  return bins;
}

void check_count_range(int64_t least, int64_t most, int64_t bins, const char* op) {
  TORCH_CHECK_VALUE(least >= 0, op, ": counts must be non-negative, found ", least);
  const int64_t limit = std::numeric_limits<int64_t>::max() / bins;
  TORCH_CHECK_VALUE(most <= limit, op, ": counts must be at most ", limit,
                    " (so that a histogram of ", bins, " bins sums within int64), found ", most);
}

}  // namespace te
