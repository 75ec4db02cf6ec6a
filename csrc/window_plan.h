// One step of te::window_append_, planned once for every implementation (the
// CPU kernel and the device-generic composite): which rows' observations leave
// the window, which enter, and the argument checks.
//
// Samples are numbered from 0 in the order appended; the window after a step
// of B rows holds samples [max(0, seen + B - W), seen + B), and its
// observations are those at least n0 rows after the window's first sample.
#pragma once

#include <ATen/core/Tensor.h>

#include <algorithm>
#include <cstdint>
#include <optional>

#include "te_plan.h"

namespace te {

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

inline WindowStep plan_window_step(int64_t seen, int64_t B, int64_t W, int64_t n0) {
  WindowStep s;
  const int64_t keep = std::min(B, W);
  s.write_from = B - keep;
  s.write_at = (seen + B - keep) % W;
  s.write_head = std::min(keep, W - s.write_at);
  if (B >= W) {
    s.recount = true;
    return s;
  }
  const int64_t start_old = std::max<int64_t>(0, seen - W);
  const int64_t start_new = std::max<int64_t>(0, seen + B - W);
  s.leave_first = start_old;
  s.leave_last = std::min(start_new + n0, seen);
  s.enter_first = std::max(seen, start_new + n0) - n0;
  return s;
}

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

// check_series_dtype of side `name` ("source" / "target") against its
// `name`_threshold; check_window_args already runs it for both sides.
void check_threshold_dtype(const at::Tensor& x, std::optional<double> threshold,
                           const char* name, const char* op);

// ValueError for a rejected value of side `name`: NaN under a threshold, or a
// value other than 0/1 without one.
[[noreturn]] void raise_bad_value(std::optional<double> threshold, const char* name,
                                  double value, const char* op);

}  // namespace te
