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
//    and, without blocking, by its poll() on a copy of the status);
//  * _window_refresh_: TEFeedback's refresh in one call: _te_from_window_counts
//    written into its float32 TE buffer and, transposed, into 1 + TE, the
//    gradient scale of the paper's rule (no Python between the steps: on a
//    GPU four launches and no Python between them, where the Python version took
//    five ops).
#include <ATen/core/Tensor.h>
#include <ATen/core/dispatch/Dispatcher.h>
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

void window_refresh(const at::Tensor& counts, const std::optional<at::Tensor>& status, int64_t k,
                    int64_t l, at::Tensor& te, at::Tensor& grad_scale) {
  const char* op = "te._window_refresh_";
  static const auto te_of = c10::Dispatcher::singleton()
                                .findSchemaOrThrow("te::_te_from_window_counts", "")
                                .typed<at::Tensor(const at::Tensor&, const std::optional<at::Tensor>&,
                                                  int64_t, int64_t)>();
  const at::Tensor t = te_of.call(counts, status, k, l);  // checks counts, status, k and l
  TORCH_CHECK_VALUE(t.dim() == 2, op, ": counts must be [I, J, bins], got ", counts.sizes());
  TORCH_CHECK_VALUE(te.sizes() == t.sizes() && te.is_floating_point() && te.device() == t.device(),
                    op, ": te must be a floating [", t.size(0), ", ", t.size(1), "] tensor on ",
                    t.device(), ", got ", te.scalar_type(), " ", te.sizes(), " on ", te.device());
  te.copy_(t);
  if (grad_scale.numel() == 0) return;  // a rule without a gradient scale
  TORCH_CHECK_VALUE(grad_scale.dim() == 2 && grad_scale.size(0) == t.size(1) &&
                        grad_scale.size(1) == t.size(0) && grad_scale.is_floating_point() &&
                        grad_scale.device() == t.device(),
                    op, ": grad_scale must be empty or a floating [", t.size(1), ", ", t.size(0),
                    "] tensor on ", t.device(), ", got ", grad_scale.scalar_type(), " ",
                    grad_scale.sizes(), " on ", grad_scale.device());
  grad_scale.copy_(t.t()).add_(1.0);  // (1 + TE)^T, in grad_scale's dtype
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
  m.def("_window_refresh_(Tensor counts, Tensor? status, int k, int l, Tensor(a!) te, "
        "Tensor(b!) grad_scale) -> ()");
}

TORCH_LIBRARY_IMPL(te, CompositeExplicitAutograd, m) {
  m.impl("_window_check", &window_check);
  m.impl("_window_refresh_", &window_refresh);
}

}  // namespace te
