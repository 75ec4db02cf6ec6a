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
// serves every device (CompositeExplicitAutograd); the counting itself runs in
// the CPU / CUDA kernels of joint_counts.
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>
#include <torch/library.h>

#include <algorithm>
#include <optional>

#include "te_math.h"
#include "te_plan.h"

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
  if (threshold.has_value()) {
    TORCH_CHECK_VALUE(!std::isnan(*threshold), kOp, ": ", name, "_threshold must not be NaN");
    TORCH_CHECK_VALUE(!x.is_floating_point() || !x.isnan().any().item<bool>(), kOp, ": ", name,
                      " contains NaN; with ", name, "_threshold=", *threshold,
                      " every value must be a number");
    return x.gt(*threshold);
  }
  TORCH_CHECK_TYPE(!x.is_floating_point() && !x.is_complex(), kOp, ": ", name, " has dtype ",
                   x.scalar_type(), " but ", name,
                   "_threshold is None; give a threshold to binarise it as value > threshold");
  if (x.scalar_type() == at::kBool) return x;
  const at::Tensor bad = x.ne(0).logical_and_(x.ne(1));
  if (bad.any().item<bool>()) {
    TORCH_CHECK_VALUE(false, kOp, ": ", name, " contains the value ",
                      x.masked_select(bad)[0].item<int64_t>(), " but ", name,
                      "_threshold is None, so only 0 and 1 are allowed");
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

void check_ring(const at::Tensor& ring, const char* name, int64_t cols, const at::Tensor& like) {
  TORCH_CHECK_TYPE(ring.scalar_type() == at::kByte, kOp, ": ", name, " must be uint8, got ",
                   ring.scalar_type());
  TORCH_CHECK_VALUE(ring.dim() == 2 && ring.size(1) == (cols + 7) / 8, kOp, ": ", name,
                    " must be [window, ceil(", cols, " / 8)], got ", ring.sizes());
  TORCH_CHECK_VALUE(ring.device() == like.device(), kOp, ": ", name, " must be on ",
                    like.device(), ", got ", ring.device());
}

void window_append_(at::Tensor& counts, at::Tensor& source_ring, at::Tensor& target_ring,
                    const at::Tensor& source, const at::Tensor& target, int64_t seen, int64_t k,
                    int64_t l, int64_t delay, std::optional<double> source_threshold,
                    std::optional<double> target_threshold) {
  TORCH_CHECK_VALUE(source.dim() == 2 && target.dim() == 2, kOp,
                    ": source and target must be [B, neurons], got ", source.sizes(), " and ",
                    target.sizes());
  TORCH_CHECK_VALUE(source.size(0) == target.size(0), kOp,
                    ": source and target must have the same number of rows B, got ",
                    source.size(0), " and ", target.size(0));
  TORCH_CHECK_VALUE(source.device() == target.device(), kOp,
                    ": source and target must be on the same device, got ", source.device(),
                    " and ", target.device());
  check_history(k, l, kOp);
  TORCH_CHECK_VALUE(delay >= 1, kOp, ": delay must be >= 1, got ", delay);
  TORCH_CHECK_VALUE(seen >= 0, kOp, ": seen must be >= 0, got ", seen);
  const int64_t I = source.size(1), J = target.size(1), B = source.size(0);
  check_ring(source_ring, "source_ring", I, source);
  check_ring(target_ring, "target_ring", J, source);
  const int64_t W = source_ring.size(0);
  const int64_t n0 = math::first_observation(k, l, delay);
  TORCH_CHECK_VALUE(target_ring.size(0) == W, kOp,
                    ": source_ring and target_ring must hold the same window, got ", W, " and ",
                    target_ring.size(0), " rows");
  TORCH_CHECK_VALUE(W > n0, kOp, ": the window (", W, " rows) must be > max(k, l - 1 + delay) = ", n0);
  const bool track = counts.numel() > 0;
  if (track) {
    TORCH_CHECK_TYPE(counts.scalar_type() == at::kLong, kOp, ": counts must be int64, got ",
                     counts.scalar_type());
    TORCH_CHECK_VALUE(counts.sizes() == at::IntArrayRef({I, J, int64_t(1) << (k + l + 1)}), kOp,
                      ": counts must be [", I, ", ", J, ", ", int64_t(1) << (k + l + 1),
                      "] (or empty, to keep no counts), got ", counts.sizes());
    TORCH_CHECK_VALUE(counts.device() == source.device(), kOp, ": counts must be on ",
                      source.device(), ", got ", counts.device());
  }
  if (B == 0) return;

  const at::Tensor sbits = pack_rows(binarize(source, source_threshold, "source"));
  const at::Tensor tbits = pack_rows(binarize(target, target_threshold, "target"));
  auto counts_of = [&](const at::Tensor& s, const at::Tensor& t) {
    return joint_counts_op(unpack_rows(s, I), unpack_rows(t, J), k, l, delay);
  };

  if (track && B >= W) {  // the new window lies inside the batch: count it afresh
    counts.copy_(counts_of(sbits.narrow(0, B - W, W), tbits.narrow(0, B - W, W)));
  } else if (track) {
    const int64_t start_old = std::max<int64_t>(0, seen - W);
    const int64_t start_new = std::max<int64_t>(0, seen + B - W);
    // Leaving: observations start_old+n0 .. min(start_new+n0, seen)-1, whose rows
    // (history included) all lie in the old window.
    const int64_t leave_end = std::min(start_new + n0, seen);
    if (leave_end - start_old > n0) {
      counts.sub_(counts_of(ring_rows(source_ring, start_old, leave_end),
                            ring_rows(target_ring, start_old, leave_end)));
    }
    // Entering: observations max(seen, start_new+n0) .. seen+B-1; their history
    // starts n0 rows earlier, in the ring for rows before `seen`.
    const int64_t first = std::max(seen, start_new + n0) - n0;
    at::Tensor s = sbits, t = tbits;
    if (first < seen) {
      s = at::cat({ring_rows(source_ring, first, seen), sbits});
      t = at::cat({ring_rows(target_ring, first, seen), tbits});
    } else {
      s = sbits.narrow(0, first - seen, B - (first - seen));
      t = tbits.narrow(0, first - seen, B - (first - seen));
    }
    if (s.size(0) > n0) counts.add_(counts_of(s, t));
  }

  // The last min(B, W) rows enter the ring, after the reads above.
  const int64_t keep = std::min(B, W), start = (seen + B - keep) % W;
  const int64_t head = std::min(keep, W - start);
  source_ring.narrow(0, start, head).copy_(sbits.narrow(0, B - keep, head));
  target_ring.narrow(0, start, head).copy_(tbits.narrow(0, B - keep, head));
  if (head < keep) {
    source_ring.narrow(0, 0, keep - head).copy_(sbits.narrow(0, B - keep + head, keep - head));
    target_ring.narrow(0, 0, keep - head).copy_(tbits.narrow(0, B - keep + head, keep - head));
  }
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CompositeExplicitAutograd, m) {
  m.impl("window_append_", &window_append_);
}

}  // namespace te
