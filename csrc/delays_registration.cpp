// The delay scans te.transfer_entropy_delays(_signed): their schemas, and the
// device-generic implementation that CUDA runs (scan_by_delay). The CPU
// kernels are in cpu/delays_cpu.cpp.
#include <ATen/ops/stack.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <c10/util/Exception.h>
#include <torch/library.h>

#include <vector>

#include "delays_plan.h"

TORCH_LIBRARY_FRAGMENT(te, m) {
  // float64 [D, I, J]; slice d equals transfer_entropy(source, target, k, l,
  // delays[d], threshold) exactly.
  m.def(
      "transfer_entropy_delays(Tensor source, Tensor target, int[] delays, int k=1, int l=1, "
      "float? threshold=None) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // The same scan with the sign of every link from the same joint counts:
  // float64 [2, D, I, J], [0] the TE above and [1] its sorted local TE
  // (te.sorted_local_te), positive for an excitatory link.
  m.def(
      "transfer_entropy_delays_signed(Tensor source, Tensor target, int[] delays, int k=1, "
      "int l=1, float? threshold=None) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // The scan's joint counts, int64 [D, I, J, 2^(k+l+1)], from whichever CPU
  // path TE_EXT_DELAYS_PATH picks: for tests that compare the paths' integers.
  m.def(
      "_transfer_entropy_delays_counts(Tensor source, Tensor target, int[] delays, int k=1, "
      "int l=1, float? threshold=None) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // The scan of series given as bit-packed int64 words [N, W] (bit t of row i:
  // neuron i at time t, LSB first; no bit set at or past `length`), CPU only:
  // what te-matrix bins spike times into, so no [T, N] array is ever made.
  // float64 [D, I, J], or [2, D, I, J] as transfer_entropy_delays_signed.
  m.def(
      "_transfer_entropy_delays_packed(Tensor source, Tensor target, int length, int[] delays, "
      "int k=1, int l=1, bool signed=False) -> Tensor",
      {at::Tag::pt2_compliant_tag});
}

namespace te {

void check_delays(c10::IntArrayRef delays, const char* op) {
  TORCH_CHECK_VALUE(!delays.empty(), op, ": delays must hold at least one delay, got none");
  for (size_t q = 0; q < delays.size(); ++q) {
    TORCH_CHECK_VALUE(delays[q] >= 1, op, ": delays must all be >= 1, got delays[", q,
                      "] = ", delays[q]);
  }
}

at::Tensor scan_by_delay(const at::Tensor& source, const at::Tensor& target,
                         c10::IntArrayRef delays, int64_t k, int64_t l,
                         std::optional<double> threshold, bool with_sign) {
  using SeriesOp = at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t,
                              std::optional<double>);
  static auto te_op = c10::Dispatcher::singleton()
                          .findSchemaOrThrow("te::transfer_entropy", "")
                          .typed<SeriesOp>();
  static auto counts_op = c10::Dispatcher::singleton()
                              .findSchemaOrThrow("te::joint_counts", "")
                              .typed<SeriesOp>();
  static auto sign_op = c10::Dispatcher::singleton()
                            .findSchemaOrThrow("te::sorted_local_te", "")
                            .typed<at::Tensor(const at::Tensor&, int64_t, int64_t)>();
  std::vector<at::Tensor> te, sign;
  te.reserve(delays.size());
  for (const int64_t d : delays) {
    te.push_back(te_op.call(source, target, k, l, d, threshold));
    if (with_sign) sign.push_back(sign_op.call(counts_op.call(source, target, k, l, d, threshold), k, l));
  }
  return with_sign ? at::stack({at::stack(te), at::stack(sign)}) : at::stack(te);
}

namespace {

at::Tensor transfer_entropy_delays_generic(const at::Tensor& source, const at::Tensor& target,
                                           c10::IntArrayRef delays, int64_t k, int64_t l,
                                           std::optional<double> threshold) {
  check_delays(delays, "te.transfer_entropy_delays");
  return scan_by_delay(source, target, delays, k, l, threshold, false);
}

at::Tensor transfer_entropy_delays_signed_generic(const at::Tensor& source,
                                                  const at::Tensor& target,
                                                  c10::IntArrayRef delays, int64_t k, int64_t l,
                                                  std::optional<double> threshold) {
  check_delays(delays, "te.transfer_entropy_delays_signed");
  return scan_by_delay(source, target, delays, k, l, threshold, true);
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CUDA, m) {
  m.impl("transfer_entropy_delays", &transfer_entropy_delays_generic);
  m.impl("transfer_entropy_delays_signed", &transfer_entropy_delays_signed_generic);
}

}  // namespace te
