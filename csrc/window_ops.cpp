// te::window_append_: one step of a sliding window whose joint counts are kept
// up to date incrementally (the streaming TE of training, te_ext.StreamingJointCounts).
//
// The window's rows are kept bit-packed along the neuron axis in ring buffers
// (uint8 [W, ceil(C / 8)], row of sample s at s % W). A step subtracts the
// counts of the observations that leave the window and adds those of the
// observations that enter, each as te::joint_counts over the few rows that
// hold them and their history, so its cost is O(batch), not O(window). Counts
// are integers: the result equals joint_counts over the window exactly.
//
// It is written with ATen ops and the joint_counts op, so one implementation
// serves every device without a kernel of its own (CompositeExplicitAutograd);
// the counting itself runs in the kernels of joint_counts. CPU and CUDA have
// kernels (cpu/window_cpu.cpp, cuda/window_cuda.cu); the composite stays
// reachable as te._window_append_generic_ so the CPU tests compare them.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <cmath>
#include <optional>

#include "te_math.h"
#include "te_plan.h"
#include "window_plan.h"

namespace te {
namespace {

constexpr const char* kOp = "te.window_append_";

at::Tensor joint_counts_op(const at::Tensor& source, const at::Tensor& target, int64_t k,
                           int64_t l, int64_t delay) {
  static const auto op =
      c10::Dispatcher::singleton()
          .findSchemaOrThrow("te::joint_counts", "")
          .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t,
                            std::optional<double>)>();
  return op.call(source, target, k, l, delay, std::nullopt);
}

// bool [B, C]: value > threshold (NaN raises), or the 0/1 values checked.
at::Tensor binarize(const at::Tensor& x, std::optional<double> threshold, const char* name) {
  check_threshold_dtype(x, threshold, name, kOp);
  if (threshold.has_value()) {
    if (x.is_floating_point() && x.isnan().any().item<bool>()) {
      raise_bad_value(threshold, name, NAN, kOp);
    }
    // In double, as the kernels compare (te_math.h to_bit): 0.1f > 0.1 holds,
    // but compared in float32 the threshold would round to 0.1f first.
    return x.to(at::kDouble).gt(*threshold);
  }
  if (x.scalar_type() == at::kBool) return x;
  const at::Tensor bad = x.ne(0).logical_and_(x.ne(1));
  if (bad.any().item<bool>()) {
    raise_bad_value(threshold, name, x.masked_select(bad)[0].item<double>(), kOp);
  }
  return x.ne(0);
}

at::Tensor bit_shifts(const at::Device& device) {
  return at::arange(8, at::TensorOptions().dtype(at::kByte).device(device));
}

// bool [B, C] -> uint8 [B, ceil(C / 8)]; bit c % 8 of byte c / 8 holds column c.
at::Tensor pack_rows(const at::Tensor& bits) {
  const int64_t rows = bits.size(0), cols = bits.size(1);
  at::Tensor b = bits.to(at::kByte);
  if (cols % 8 != 0) b = at::constant_pad_nd(b, {0, 8 - cols % 8});
  return b.view({rows, -1, 8}).bitwise_left_shift(bit_shifts(bits.device())).sum(-1, false, at::kByte);
}

// uint8 [n, ceil(C / 8)] -> uint8 0/1 [n, C].
at::Tensor unpack_rows(const at::Tensor& packed, int64_t cols) {
  return packed.unsqueeze(-1)
      .bitwise_right_shift(bit_shifts(packed.device()))
      .bitwise_and_(1)
      .view({packed.size(0), -1})
      .narrow(1, 0, cols);
}

// Packed rows of samples first .. last-1 of a ring of W rows, oldest first.
at::Tensor ring_rows(const at::Tensor& ring, int64_t first, int64_t last) {
  const int64_t W = ring.size(0), a = first % W, n = last - first;
  if (a + n <= W) return ring.narrow(0, a, n);
  return at::cat({ring.narrow(0, a, W - a), ring.narrow(0, 0, n - (W - a))});
}

void window_append_composite(at::Tensor& counts, at::Tensor& source_ring,
                             at::Tensor& target_ring, const at::Tensor& source,
                             const at::Tensor& target, const c10::Scalar& seen_arg, int64_t k,
                             int64_t l, int64_t delay, std::optional<double> source_threshold,
                             std::optional<double> target_threshold) {
  const int64_t seen = window_seen(seen_arg, kOp);
  const WindowArgs a = check_window_args(counts, source_ring, target_ring, source, target, seen,
                                         k, l, delay, source_threshold, target_threshold, kOp);
  if (a.B == 0) return;
  const at::Tensor sbits = pack_rows(binarize(source, source_threshold, "source"));
  const at::Tensor tbits = pack_rows(binarize(target, target_threshold, "target"));
  const WindowStep step = plan_window_step(seen, a.B, a.W, a.n0);
  auto counts_of = [&](const at::Tensor& s, const at::Tensor& t) {
    return joint_counts_op(unpack_rows(s, a.I), unpack_rows(t, a.J), k, l, delay);
  };
  // Rows of samples [first, seen + B): the ring's, then the batch's.
  auto rows = [&](const at::Tensor& ring, const at::Tensor& bits, int64_t first) {
    if (first >= seen) return bits.narrow(0, first - seen, a.B - (first - seen));
    return at::cat({ring_rows(ring, first, seen), bits});
  };
  if (a.track && step.recount) {
    counts.copy_(counts_of(sbits.narrow(0, a.B - a.W, a.W), tbits.narrow(0, a.B - a.W, a.W)));
  } else if (a.track) {
    if (step.leave_last - step.leave_first > a.n0) {
      counts.sub_(counts_of(ring_rows(source_ring, step.leave_first, step.leave_last),
                            ring_rows(target_ring, step.leave_first, step.leave_last)));
    }
    if (seen + a.B - step.enter_first > a.n0) {
      counts.add_(counts_of(rows(source_ring, sbits, step.enter_first),
                            rows(target_ring, tbits, step.enter_first)));
    }
  }
  // After the reads: the batch's last rows overwrite the oldest.
  const int64_t keep = a.B - step.write_from, head = step.write_head;
  source_ring.narrow(0, step.write_at, head).copy_(sbits.narrow(0, step.write_from, head));
  target_ring.narrow(0, step.write_at, head).copy_(tbits.narrow(0, step.write_from, head));
  if (head < keep) {
    source_ring.narrow(0, 0, keep - head).copy_(sbits.narrow(0, step.write_from + head, keep - head));
    target_ring.narrow(0, 0, keep - head).copy_(tbits.narrow(0, step.write_from + head, keep - head));
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CompositeExplicitAutograd, m) {
  m.impl("window_append_", &window_append_composite);
  m.impl("_window_append_generic_", &window_append_composite);
}

}  // namespace te
