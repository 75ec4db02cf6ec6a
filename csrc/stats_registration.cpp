// Schemas of the statistics ops (te_ext.stats). Kernels: cpu/stats_cpu.cpp,
// cuda/stats_cuda.cu.
#include <torch/library.h>

TORCH_LIBRARY_FRAGMENT(te, m) {
  // Permutation surrogates, reduced on the fly: for every pair, the observed TE
  // and, over the surrogates s (rows of int64 permutations [S, nobs]), how many
  // reached it (TE_s >= TE), sum_s TE_s and sum_s TE_s^2. Surrogate s moves the
  // source's past state of observation permutations[s, q] to observation q
  // (pooled over replicates) while the target's stay in place. Shapes: [I, J],
  // or [P] with pairs. The [S, I, J] surrogate values are never materialised.
  m.def(
      "transfer_entropy_surrogates(Tensor source, Tensor target, Tensor permutations, int k=1, "
      "int l=1, int delay=1, float? threshold=None, Tensor? pairs=None) -> "
      "(Tensor te, Tensor at_least, Tensor sum, Tensor sum_sq)",
      {at::Tag::pt2_compliant_tag});
  // Local TE of listed pairs at every observation: float64 [P, R * (T - n0)].
  m.def(
      "local_transfer_entropy(Tensor source, Tensor target, Tensor pairs, int k=1, int l=1, "
      "int delay=1, float? threshold=None) -> Tensor",
      {at::Tag::pt2_compliant_tag});
  // Sorted local TE (Kajiwara et al. 2021; stats_math.h) of every [..., bins]
  // histogram: float64 counts.shape[:-1], positive for an excitatory link.
  m.def("sorted_local_te(Tensor counts, int k=1, int l=1) -> Tensor",
        {at::Tag::pt2_compliant_tag});
}
