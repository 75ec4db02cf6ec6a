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
}
