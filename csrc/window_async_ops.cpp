// The training path's sync-free ops (te_ext.StreamingJointCounts on a GPU):
//
//  * _window_append_async_: window_append_ with bad input values recorded in
//    a small device-side status tensor (layout in window_plan.h) instead of
//    raised, and the sample counter read from / advanced in that tensor, so
//    a step needs no device-to-host copy and a captured CUDA graph replays it;
//  * _te_from_window_counts: te_from_counts of counts the window produced
//    itself, without the range check (and its sync); NaN once the status
//    recorded a bad value;
//  * _window_check: raises the recorded error, with the message the immediate
//    op would have raised (one sync; called by StreamingJointCounts.check()
//    and, without blocking, by its poll() on a copy of the status).
#include <ATen/core/Tensor.h>
#include <torch/library.h>

#include <cstring>
#include <optional>

#include "window_plan.h"

namespace te {

void raise_recorded_bad_value(const int64_t* s, std::optional<double> source_threshold,
                              std::optional<double> target_threshold) {
  for (int side = 0; side < 2; ++side) {
    if (((s[kStatusFlags] >> side) & 1) == 0) continue;
    double value = 0.0;
    std::memcpy(&value, s + kStatusValue + 2 * side + 1, sizeof value);
    raise_bad_value(side == 0 ? source_threshold : target_threshold,
                    side == 0 ? "source" : "target", value, "te.window_append_");
  }
}

namespace {

void window_check(const at::Tensor& status, std::optional<double> source_threshold,
                  std::optional<double> target_threshold) {
  check_window_status(status, status, "te._window_check");
  const at::Tensor host = status.cpu();
  raise_recorded_bad_value(host.const_data_ptr<int64_t>(), source_threshold, target_threshold);
}

}  // namespace

TORCH_LIBRARY_FRAGMENT(te, m) {
  m.def(
      "_window_append_async_(Tensor(a!) counts, Tensor(b!) source_ring, Tensor(c!) target_ring, "
      "Tensor(d!) status, Tensor source, Tensor target, int k=1, int l=1, int delay=1, "
      "float? source_threshold=None, float? target_threshold=None) -> ()");
  m.def("_te_from_window_counts(Tensor counts, Tensor? status=None, int k=1, int l=1) -> Tensor");
  m.def("_window_check(Tensor status, float? source_threshold=None, "
        "float? target_threshold=None) -> ()");
}

TORCH_LIBRARY_IMPL(te, CompositeExplicitAutograd, m) { m.impl("_window_check", &window_check); }

}  // namespace te
