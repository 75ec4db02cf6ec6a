// The schemas of torch.ops.te. Kernels register per device in cpu/ and cuda/.
#include <torch/library.h>

TORCH_LIBRARY(te, m) {
  m.def(
      "joint_counts(Tensor source, Tensor target, int k=1, int l=1, int delay=1, "
      "float? threshold=None) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def("te_from_counts(Tensor counts, int k=1, int l=1) -> Tensor",
        {at::Tag::pt2_compliant_tag});
  m.def(
      "transfer_entropy(Tensor source, Tensor target, int k=1, int l=1, int delay=1, "
      "float? threshold=None) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  m.def(
      "transfer_entropy_pairs(Tensor source, Tensor target, Tensor pairs, int k=1, int l=1, "
      "int delay=1, float? threshold=None) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // One step of a sliding window (te_ext.StreamingJointCounts): appends the rows
  // of source [B, I] / target [B, J] to the bit-packed rings, sample `seen` first,
  // and updates counts (int64 [I, J, bins], or empty to keep none) to the joint
  // counts over the window's last `window` rows. `seen` is a Scalar, not an int,
  // because an int schema turns a Python bool into 1 before any check could see
  // it; window_seen (window_plan.h) accepts integers only.
  m.def(
      "window_append_(Tensor(a!) counts, Tensor(b!) source_ring, Tensor(c!) target_ring, "
      "Tensor source, Tensor target, Scalar seen, int k=1, int l=1, int delay=1, "
      "float? source_threshold=None, float? target_threshold=None) -> ()",
      {at::Tag::pt2_compliant_tag});
  // The device-generic implementation of window_append_ (what CUDA runs), under
  // its own name so the CPU tests can run it beside the CPU kernel.
  m.def(
      "_window_append_generic_(Tensor(a!) counts, Tensor(b!) source_ring, "
      "Tensor(c!) target_ring, Tensor source, Tensor target, Scalar seen, int k=1, int l=1, "
      "int delay=1, float? source_threshold=None, float? target_threshold=None) -> ()",
      {at::Tag::pt2_compliant_tag});
}
