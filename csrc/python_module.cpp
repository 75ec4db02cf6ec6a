// The Python module te_ext._C: importing it registers the ops (static
// initialisers in the other files) and exposes build facts.
#include <ATen/Parallel.h>
#include <torch/extension.h>
#include <torch/version.h>

#include <optional>
#include <string>
#include <tuple>
#include <vector>

#include "cpu/delays_sparse_cpu.h"
#include "cpu/popcount_cpu.h"
#include "stats_plan.h"
#include "te_plan.h"
#include "window_plan.h"

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

// A tensor as the fake kernels describe it: (sizes, dtype, device, contiguous).
using Described = std::tuple<std::vector<int64_t>, at::ScalarType, at::Device, bool>;

te::TensorInfo info(const Described& d) {
  return te::TensorInfo{std::get<0>(d), std::get<1>(d), std::get<2>(d), std::get<3>(d)};
}

int64_t check_series(const Described& source, const Described& target, int64_t k, int64_t l,
                     int64_t delay, std::optional<double> threshold, const std::string& op) {
  return te::plan_series(info(source), info(target), k, l, delay, threshold, op.c_str()).bins;
}

void check_pairs(const Described& pairs, const at::Device& device, const std::string& op) {
  te::check_pairs_shape(info(pairs), device, op.c_str());
}

// The statistics ops' checks on descriptions: the series (plan_series), the pairs when listed,
// and the permutations against the plan's pooled observations. Returns n_obs.
int64_t check_statistics(const Described& source, const Described& target,
                         const std::optional<Described>& pairs,
                         const std::optional<Described>& permutations, int64_t k, int64_t l,
                         int64_t delay, std::optional<double> threshold, const std::string& op) {
  const te::TensorInfo s = info(source);
  const te::SeriesPlan p = te::plan_series(s, info(target), k, l, delay, threshold, op.c_str());
  if (pairs.has_value()) te::check_pairs_shape(info(*pairs), s.device, op.c_str());
  if (permutations.has_value()) {
    te::stats::check_permutations_shape(info(*permutations), p, s.device, op.c_str());
  }
  return p.nobs;
}

int64_t check_counts(const Described& counts, int64_t k, int64_t l, const std::string& op) {
  return te::check_counts(info(counts), k, l, op.c_str());
}

void check_window(const Described& counts, const Described& source_ring,
                  const Described& target_ring, const Described& source,
                  const Described& target, int64_t seen, int64_t k, int64_t l, int64_t delay,
                  std::optional<double> source_threshold, std::optional<double> target_threshold,
                  const std::string& op) {
  te::check_window_args(info(counts), info(source_ring), info(target_ring), info(source),
                        info(target), seen, k, l, delay, source_threshold, target_threshold,
                        op.c_str());
}

// torch's pybind caster cannot load a c10::Scalar, so the Python value the
// fake kernel received becomes one here, as the schema's Scalar would hold it.
void check_window_seen(const py::handle& seen, const std::string& op) {
  if (PyBool_Check(seen.ptr())) {
    te::check_window_seen(c10::Scalar(seen.ptr() == Py_True), op.c_str());
  } else if (PyFloat_Check(seen.ptr())) {
    te::check_window_seen(c10::Scalar(PyFloat_AsDouble(seen.ptr())), op.c_str());
  } else if (!PyIndex_Check(seen.ptr())) {  // ints, numpy ints and SymInts pass
    throw py::type_error(op + ": seen must be an int (the number of samples appended so far), got " +
                         std::string(Py_TYPE(seen.ptr())->tp_name));
  }
}

}  // namespace

PYBIND11_MODULE(TORCH_EXTENSION_NAME, m) {
  m.doc() = "Compiled transfer-entropy ops; use them as torch.ops.te.* or te_ext.*";
  m.def("build_info", &build_info, "How this extension was built and what it runs.");
  m.def("_set_cpu_kernel", &te::cpu::set_popcount_kernel,
        "Select the CPU popcount kernel by name (testing and benchmarking).");
  // The checks below raise c10 errors: give Python the class the ops give it
  // (ValueError / TypeError) and the message without a C++ backtrace.
  pybind11::register_local_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const c10::ValueError& e) {
      PyErr_SetString(PyExc_ValueError, e.what_without_backtrace());
    } catch (const c10::TypeError& e) {
      PyErr_SetString(PyExc_TypeError, e.what_without_backtrace());
    } catch (const c10::Error& e) {
      PyErr_SetString(PyExc_RuntimeError, e.what_without_backtrace());
    }
  });
  // The kernels' argument checks on tensor descriptions, for the fake kernels
  // (te_ext/_fake.py) and the Python classes: one implementation for all.
  m.def("_check_series", &check_series, "plan_series's checks; returns the bins per pair.");
  m.def("_check_pairs", &check_pairs, "The metadata checks of pairs.");
  m.def("_check_counts", &check_counts, "check_counts; returns the bins per pair.");
  m.def("_check_statistics", &check_statistics,
        "The statistics ops' checks of series, pairs and permutations; returns n_obs.");
  m.def("_check_window", &check_window, "window_append_'s argument checks.");
  m.def("_check_window_seen", &check_window_seen,
        "window_append_'s type check of seen (a Scalar in the schema, so a bool reaches it).");
  m.def(
      "_check_history",
      [](int64_t k, int64_t l, const std::string& op) { te::check_history(k, l, op.c_str()); },
      "1 <= k, 1 <= l and k + l + 1 <= 32.");
  m.def(
      "_check_memory",
      [](int64_t bytes, const at::Device& device, const std::string& what, const std::string& op) {
        te::check_memory(bytes, device, what, op.c_str());
      },
      "ValueError unless `bytes` fit in the memory usable on `device` now.");
  m.def("_usable_memory_bytes", &te::usable_memory_bytes,
        "7/8 of the memory available on `device` now (what check_memory allows).");
  m.attr("_MEMORY_QUERY_BYTES") = te::kMemoryQueryBytes;
  m.def(
      "_sparse_scan_pays",
      [](double density, int64_t k, int64_t l, int64_t unique_delays) {
        te::SeriesPlan p;
        p.k = static_cast<int>(k);
        p.l = static_cast<int>(l);
        p.sx = int64_t(1) << l;
        p.sy = int64_t(1) << (k + 1);
        return te::cpu::sparse_scan_pays(density, p, unique_delays);
      },
      "Whether te.transfer_entropy_delays on the CPU takes the spike-sparse path at this "
      "density (ones' fraction), k, l and number of distinct delays (TE_EXT_DELAYS_PATH=auto).");
}
