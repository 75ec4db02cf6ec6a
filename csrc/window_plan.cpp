// The argument checks of te::window_append_ (declared in window_plan.h),
// shared by its CPU kernel, its device-generic implementation and its fake
// kernel (through te_ext._C): they read the tensors' metadata only.
#include "window_plan.h"

#include <c10/util/Exception.h>

#include <cmath>
#include <limits>
#include <string>
#include <utility>

namespace te {
namespace {

void check_ring(const TensorInfo& ring, const char* name, int64_t cols, const at::Device& device,
                const char* op) {
  TORCH_CHECK_TYPE(ring.dtype == at::kByte, op, ": ", name, " must be uint8, got ", ring.dtype);
  TORCH_CHECK_VALUE(ring.dim() == 2 && ring.size(1) == (cols + 7) / 8 && ring.contiguous, op,
                    ": ", name, " must be a contiguous [window, ceil(", cols, " / 8)], got ",
                    ring.sizes);
  TORCH_CHECK_VALUE(ring.device == device, op, ": ", name, " must be on ", device, " like source, got ",
                    ring.device);
}

}  // namespace

void check_window_seen(const c10::Scalar& seen, const char* op) {
  if (seen.isIntegral(/*includeBool=*/false)) return;
  TORCH_CHECK_TYPE(!seen.isBoolean(), op,
                   ": seen must be an int (the number of samples appended so far), got bool (",
                   seen.toBool() ? "True" : "False", ")");
  TORCH_CHECK_TYPE(!seen.isFloatingPoint(), op,
                   ": seen must be an int (the number of samples appended so far), got float (",
                   seen.toDouble(), ")");
  C10_THROW_ERROR(TypeError, c10::str(op, ": seen must be an int (the number of samples "
                                          "appended so far), got ", seen.type()));
}

int64_t window_seen(const c10::Scalar& seen, const char* op) {
  check_window_seen(seen, op);
  return seen.toLong();
}

void check_threshold_dtype(const at::Tensor& x, std::optional<double> threshold,
                           const char* name, const char* op) {
  const std::string threshold_name = std::string(name) + "_threshold";
  check_series_dtype(info(x), threshold.has_value(), name, threshold_name.c_str(), op);
}

void raise_bad_value(std::optional<double> threshold, const char* name, double value,
                     const char* op) {
  if (threshold.has_value()) {
    C10_THROW_ERROR(ValueError, c10::str(op, ": ", name, " contains NaN; with ", name,
                                         "_threshold=", *threshold, " every value must be a number"));
  }
  C10_THROW_ERROR(ValueError, c10::str(op, ": ", name, " contains the value ", value, " but ",
                                       name, "_threshold is None, so only 0 and 1 are allowed"));
}

WindowArgs check_window_args(const TensorInfo& counts, const TensorInfo& source_ring,
                             const TensorInfo& target_ring, const TensorInfo& source,
                             const TensorInfo& target, int64_t seen, int64_t k, int64_t l,
                             int64_t delay, std::optional<double> source_threshold,
                             std::optional<double> target_threshold, const char* op) {
  TORCH_CHECK_VALUE(source.dim() == 2 && target.dim() == 2, op,
                    ": source and target must be [B, neurons], got ", source.sizes, " and ",
                    target.sizes);
  TORCH_CHECK_VALUE(source.size(0) == target.size(0), op,
                    ": source and target must have the same number of rows B, got ",
                    source.size(0), " and ", target.size(0));
  TORCH_CHECK_VALUE(source.device == target.device, op,
                    ": source and target must be on the same device, got ", source.device,
                    " and ", target.device);
  check_history(k, l, op);
  check_delay(delay, op);
  WindowArgs a;
  a.B = source.size(0);
  // seen + B (the samples after this step) is the largest sum the step forms.
  TORCH_CHECK_VALUE(seen >= 0, op, ": seen must be >= 0, got ", seen);
  TORCH_CHECK_VALUE(seen <= std::numeric_limits<int64_t>::max() - a.B, op, ": seen = ", seen,
                    " plus the batch of ", a.B, " rows overflows int64");
  for (const auto& [name, thr] : {std::pair{"source_threshold", source_threshold},
                                  std::pair{"target_threshold", target_threshold}}) {
    TORCH_CHECK_VALUE(!thr.has_value() || !std::isnan(*thr), op, ": ", name, " must not be NaN");
  }
  check_series_dtype(source, source_threshold.has_value(), "source", "source_threshold", op);
  check_series_dtype(target, target_threshold.has_value(), "target", "target_threshold", op);
  a.I = source.size(1);
  a.J = target.size(1);
  check_ring(source_ring, "source_ring", a.I, source.device, op);
  check_ring(target_ring, "target_ring", a.J, source.device, op);
  a.W = source_ring.size(0);
  TORCH_CHECK_VALUE(target_ring.size(0) == a.W, op,
                    ": source_ring and target_ring must hold the same window, got ", a.W,
                    " and ", target_ring.size(0), " rows");
  a.n0 = first_observation_before(a.W, "window", k, l, delay,
                                  "the window holds too few rows for k, l, delay", op);
  a.track = counts.numel() > 0;
  if (a.track) {
    const int64_t bins = int64_t(1) << (k + l + 1);
    TORCH_CHECK_TYPE(counts.dtype == at::kLong, op, ": counts must be int64, got ", counts.dtype);
    TORCH_CHECK_VALUE(counts.sizes == at::IntArrayRef({a.I, a.J, bins}), op,
                      ": counts must be [", a.I, ", ", a.J, ", ", bins,
                      "] (or empty, to keep no counts), got ", counts.sizes);
    TORCH_CHECK_VALUE(counts.device == source.device && counts.contiguous, op,
                      ": counts must be contiguous on ", source.device, ", got ",
                      counts.contiguous ? "" : "a non-contiguous tensor on ", counts.device);
  }
  return a;
}

WindowArgs check_window_args(const at::Tensor& counts, const at::Tensor& source_ring,
                             const at::Tensor& target_ring, const at::Tensor& source,
                             const at::Tensor& target, int64_t seen, int64_t k, int64_t l,
                             int64_t delay, std::optional<double> source_threshold,
                             std::optional<double> target_threshold, const char* op) {
  int i = 0;
  for (const at::Tensor* t : {&counts, &source_ring, &target_ring, &source, &target}) {
    static constexpr const char* kNames[] = {"counts", "source_ring", "target_ring", "source",
                                             "target"};
    TORCH_CHECK_VALUE(t->defined(), op, ": ", kNames[i], " is undefined");
    ++i;
  }
  return check_window_args(info(counts), info(source_ring), info(target_ring), info(source),
                           info(target), seen, k, l, delay, source_threshold, target_threshold,
                           op);
}

}  // namespace te
