// The delay scan te.transfer_entropy_delays: its schema, and the
// device-generic implementation that CUDA (and any device without a kernel of
// its own) runs. The CPU kernel is in cpu/delays_cpu.cpp.
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
}

namespace te {

void check_delays(c10::IntArrayRef delays, const char* op) {
  TORCH_CHECK_VALUE(!delays.empty(), op, ": delays must hold at least one delay, got none");
  for (size_t q = 0; q < delays.size(); ++q) {
    TORCH_CHECK_VALUE(delays[q] >= 1, op, ": delays must all be >= 1, got delays[", q,
                      "] = ", delays[q]);
  }
}

namespace {

// One transfer_entropy call per delay, through the dispatcher: exact by
// construction, and it runs wherever transfer_entropy has a kernel (CUDA).
at::Tensor transfer_entropy_delays_generic(const at::Tensor& source, const at::Tensor& target,
                                           c10::IntArrayRef delays, int64_t k, int64_t l,
                                           std::optional<double> threshold) {
  check_delays(delays, "te.transfer_entropy_delays");
  static auto te_op = c10::Dispatcher::singleton()
                          .findSchemaOrThrow("te::transfer_entropy", "")
                          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t,
                                            int64_t, int64_t, std::optional<double>)>();
  std::vector<at::Tensor> slices;
  slices.reserve(delays.size());
  for (const int64_t d : delays) slices.push_back(te_op.call(source, target, k, l, d, threshold));
  return at::stack(slices);
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CUDA, m) {
  m.impl("transfer_entropy_delays", &transfer_entropy_delays_generic);
}

}  // namespace te
