// One step of te::window_append_, planned once for every implementation (the
// CPU kernel, the CUDA kernels and the device-generic composite): which rows'
// observations leave the window, which enter, and the argument checks.
//
// The plan is HOST_DEVICE: the CUDA kernels of the deferred op re-plan from a
// sample counter held on the device (status[kStatusSeen]), so a captured CUDA
// graph replays correct steps.
//
// Samples are numbered from 0 in the order appended; the window after a step
// of B rows holds samples [max(0, seen + B - W), seen + B), and its
// observations are those at least n0 rows after the window's first sample.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/core/Scalar.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <cstdint>
#include <optional>

#include "te_plan.h"
#include "te_math.h"

namespace te {

// The int64 status tensor of a window whose bad-value checks are deferred
// (te::_window_append_async_, te::_window_check, te::_te_from_window_counts):
//   [kStatusSeen]         samples appended (the deferred op reads and advances it)
//   [kStatusFlags]        bit 0: source held a bad value, bit 1: target did
//   [kStatusValue + 2s]   1 once side s recorded a value, [kStatusValue + 2s + 1]
//                         that value's double bits (the first one recorded)
//   [kStatusBlocksDone]   scratch of the CUDA ring-write kernel (last-block-done)
constexpr int64_t kStatusSeen = 0;
constexpr int64_t kStatusFlags = 1;
constexpr int64_t kStatusValue = 2;
constexpr int64_t kStatusBlocksDone = 6;
constexpr int64_t kStatusSize = 8;

struct WindowStep {
  // The new window lies inside the batch: count it afresh from the batch's
  // last W rows (no ring reads).
  bool recount = false;
  // joint_counts over samples [leave_first, leave_last) (all in the old window)
  // gives exactly the observations that leave; nothing leaves when the range
  // holds no more than n0 rows.
  int64_t leave_first = 0, leave_last = 0;
  // joint_counts over samples [enter_first, seen + B) gives exactly the
  // observations that enter; rows before `seen` come from the ring.
  int64_t enter_first = 0;
  // After the reads, batch rows [write_from, B) enter the ring at row
  // write_at, the first write_head of them before the ring wraps to row 0.
  int64_t write_from = 0, write_at = 0, write_head = 0;
};

TE_HD WindowStep plan_window_step(int64_t seen, int64_t B, int64_t W, int64_t n0) {
  // Ternaries, not std::min/max: this also runs in device code.
  WindowStep s;
  const int64_t keep = B < W ? B : W;
  s.write_from = B - keep;
  s.write_at = (seen + B - keep) % W;
  s.write_head = keep < W - s.write_at ? keep : W - s.write_at;
  if (B >= W) {
    s.recount = true;
    return s;
  }
  const int64_t start_old = seen - W > 0 ? seen - W : 0;
  const int64_t start_new = seen + B - W > 0 ? seen + B - W : 0;
  s.leave_first = start_old;
  s.leave_last = start_new + n0 < seen ? start_new + n0 : seen;
  s.enter_first = (seen > start_new + n0 ? seen : start_new + n0) - n0;
  return s;
}

// The packed row of sample `sample`, `bytes` long: the ring holds the samples
// before `seen` (row sample % W), the packed batch those from `seen` on. The
// CPU and CUDA kernels read every sample through this.
TE_HD const uint8_t* window_row(const uint8_t* ring, const uint8_t* batch, int64_t bytes,
                                int64_t W, int64_t seen, int64_t sample) {
  return sample < seen ? ring + (sample % W) * bytes : batch + (sample - seen) * bytes;
}

TE_HD int64_t window_sample_bit(const uint8_t* ring, const uint8_t* batch, int64_t bytes,
                                int64_t W, int64_t seen, int64_t sample, int64_t col) {
  return (window_row(ring, batch, bytes, W, seen, sample)[col >> 3] >> (col & 7)) & 1;
}

// Bits of a state (k + 1 of a target, l of a source): the ops allow k + l + 1 <= 32.
constexpr int kMaxStateBits = 32;

struct WindowArgs {
  int64_t I = 0, J = 0, B = 0, W = 0, n0 = 0;
  bool track = false;  // counts is non-empty: keep them
};

// Checks every argument of window_append_ (op name `op` in messages) from the
// tensors' metadata only (window_plan.cpp): the kernels and the fake kernel
// (te_ext/_fake.py, through te_ext._C) run this same function.
WindowArgs check_window_args(const TensorInfo& counts, const TensorInfo& source_ring,
                             const TensorInfo& target_ring, const TensorInfo& source,
                             const TensorInfo& target, int64_t seen, int64_t k, int64_t l,
                             int64_t delay, std::optional<double> source_threshold,
                             std::optional<double> target_threshold, const char* op);
WindowArgs check_window_args(const at::Tensor& counts, const at::Tensor& source_ring,
                             const at::Tensor& target_ring, const at::Tensor& source,
                             const at::Tensor& target, int64_t seen, int64_t k, int64_t l,
                             int64_t delay, std::optional<double> source_threshold,
                             std::optional<double> target_threshold, const char* op);

// window_append_'s `seen` as an int64: a TypeError names it unless it holds an
// integer (a bool or a float is refused; the schema takes a Scalar so that a
// Python bool reaches this check instead of arriving as 1). The fake kernel
// runs check_window_seen, the same test without reading a symbolic value.
void check_window_seen(const c10::Scalar& seen, const char* op);
int64_t window_seen(const c10::Scalar& seen, const char* op);

// check_series_dtype of side `name` ("source" / "target") against its
// `name`_threshold; check_window_args already runs it for both sides.
void check_threshold_dtype(const at::Tensor& x, std::optional<double> threshold,
                           const char* name, const char* op);

// ValueError for a rejected value of side `name`: NaN under a threshold, or a
// value other than 0/1 without one.
[[noreturn]] void raise_bad_value(std::optional<double> threshold, const char* name,
                                  double value, const char* op);

// Raises, as the immediate op would have, the first bad value that a deferred
// window recorded in `status` (host memory); returns when none was.
void raise_recorded_bad_value(const int64_t* status, std::optional<double> source_threshold,
                              std::optional<double> target_threshold);

// Checks the status tensor of a deferred window: int64 [kStatusSize],
// contiguous, on like's device.
inline void check_window_status(const at::Tensor& status, const at::Tensor& like, const char* op) {
  TORCH_CHECK_VALUE(status.scalar_type() == at::kLong && status.dim() == 1 &&
                        status.size(0) == kStatusSize && status.is_contiguous() &&
                        status.device() == like.device(),
                    op, ": status must be a contiguous int64 [", kStatusSize, "] on ",
                    like.device(), ", got ", status.scalar_type(), " ", status.sizes(), " on ",
                    status.device());
}

}  // namespace te
