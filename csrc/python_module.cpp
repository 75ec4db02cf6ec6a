// The Python module te_ext._C: importing it registers the ops (static
// initialisers in the other files) and exposes build facts.
#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/version.h>

#include "cpu/popcount_cpu.h"

#define TE_STR_(x) #x
#define TE_STR(x) TE_STR_(x)
#define TE_TORCH_VERSION \
  TE_STR(TORCH_VERSION_MAJOR) "." TE_STR(TORCH_VERSION_MINOR) "." TE_STR(TORCH_VERSION_PATCH)

namespace {

pybind11::dict build_info() {
  pybind11::dict d;
  d["torch"] = TE_TORCH_VERSION;
#ifdef _OPENMP
  d["openmp"] = true;
#else
  d["openmp"] = false;
#endif
#ifdef TE_WITH_CUDA
  d["cuda"] = true;
#else
  d["cuda"] = false;
#endif
  d["threads"] = at::get_num_threads();
  d["cpu_kernel"] = te::cpu::popcount_kernel().name;
  d["cpu_kernels_available"] = te::cpu::available_kernels();
  return d;
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Compiled transfer-entropy ops; use them as torch.ops.te.* or te_ext.*";
  m.def("build_info", &build_info, "How this extension was built and what it runs.");
  m.def("_set_cpu_kernel", &te::cpu::set_popcount_kernel,
        "Select the CPU popcount kernel by name (testing and benchmarking).");
}
