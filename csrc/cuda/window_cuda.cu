// CUDA kernels of te::window_append_ and te::_window_append_async_, the
// training step of te_ext.StreamingJointCounts. Same structure as the CPU
// kernel (cpu/window_cpu.cpp), planned by the same plan_window_step:
//
//   1. pack:  binarise both batches (math::to_bit, compared in double) into
//             packed rows, bit c % 8 of byte c / 8; bad values are recorded
//             in a status tensor instead of being thrown from the device;
//   2. count: one thread per (source, target) pair subtracts the joint counts
//             of the observations that leave the window and adds those that
//             enter, reading their rows from the ring and the packed batch;
//   3. write: the batch's last rows overwrite the ring's oldest.
//
// Three launches and no device-to-host copy. The deferred op also keeps the
// sample counter `seen` on the device (kernels 2 and 3 re-plan from it, the
// last block of kernel 3 advances it), so a CUDA graph that captured a step
// replays correct steps. The immediate op (window_append_, the contract's
// "bad input raises") reads the status back after kernel 1, before anything is
// modified: one sync, outside the training path.
#include <ATen/core/Tensor.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAGuard.h>
#include <c10/cuda/CUDAStream.h>
#include <torch/library.h>

#include "../te_math.h"
#include "../window_plan.h"
#include "launch.cuh"

namespace te {
namespace cuda {
namespace {

constexpr const char* kOp = "te.window_append_";

// One side's batch as the pack kernel reads it: any of the contract's dtypes,
// switched on in device code so that source and target may differ without
// instantiating every pair of types.
struct BatchIn {
  const void* data;
  int64_t stride_b, stride_c, cols, bytes;
  c10::ScalarType dtype;
  bool has_threshold;
  double threshold;
  uint8_t* out;  // packed rows [B, bytes]
};

template <typename T>
__device__ __forceinline__ bool bit_as(const BatchIn& x, int64_t off, bool* bad, double* value) {
  const T v = static_cast<const T*>(x.data)[off];
  bool b = false;
  const bool bit = math::to_bit(v, x.has_threshold, x.threshold, &b);
  if (b) {
    *bad = true;
    *value = static_cast<double>(v);
  }
  return bit;
}

__device__ __forceinline__ bool bit_of(const BatchIn& x, int64_t off, bool* bad, double* value) {
  switch (x.dtype) {
    case c10::ScalarType::Bool: return bit_as<bool>(x, off, bad, value);
    case c10::ScalarType::Byte: return bit_as<uint8_t>(x, off, bad, value);
    case c10::ScalarType::Char: return bit_as<int8_t>(x, off, bad, value);
    case c10::ScalarType::Short: return bit_as<int16_t>(x, off, bad, value);
    case c10::ScalarType::Int: return bit_as<int32_t>(x, off, bad, value);
    case c10::ScalarType::Long: return bit_as<int64_t>(x, off, bad, value);
    case c10::ScalarType::Half: return bit_as<c10::Half>(x, off, bad, value);
    case c10::ScalarType::BFloat16: return bit_as<c10::BFloat16>(x, off, bad, value);
    case c10::ScalarType::Float: return bit_as<float>(x, off, bad, value);
    default: return bit_as<double>(x, off, bad, value);  // Double (checked on the host)
  }
}

bool supported_dtype(c10::ScalarType t) {
  switch (t) {
    case c10::ScalarType::Bool: case c10::ScalarType::Byte: case c10::ScalarType::Char:
    case c10::ScalarType::Short: case c10::ScalarType::Int: case c10::ScalarType::Long:
    case c10::ScalarType::Half: case c10::ScalarType::BFloat16: case c10::ScalarType::Float:
    case c10::ScalarType::Double:
      return true;
    default:
      return false;
  }
}

// Records a bad value of side `side` (0 source, 1 target): the flag, and the
// first value seen, as the CPU kernel would have named it.
__device__ void record_bad(int64_t* status, int side, double value) {
  atomicOr(reinterpret_cast<unsigned long long*>(status + kStatusFlags), 1ull << side);
  auto* taken = reinterpret_cast<unsigned long long*>(status + kStatusValue + 2 * side);
  if (atomicCAS(taken, 0ull, 1ull) == 0ull) {
    status[kStatusValue + 2 * side + 1] = __double_as_longlong(value);
  }
}

// Launch 1: one thread per packed byte of either side.
__global__ void window_pack_kernel(BatchIn src, BatchIn tgt, int64_t B, int64_t* status) {
  const int64_t src_total = B * src.bytes;
  const int64_t total = src_total + B * tgt.bytes;
  for (int64_t idx = grid_start(); idx < total; idx += grid_stride()) {
    const int side = idx < src_total ? 0 : 1;
    const BatchIn& x = side == 0 ? src : tgt;
    const int64_t e = side == 0 ? idx : idx - src_total;
    const int64_t b = e / x.bytes, g = e % x.bytes;
    const int64_t c_end = (g + 1) * 8 < x.cols ? (g + 1) * 8 : x.cols;
    bool bad = false;
    double value = 0.0;
    uint8_t byte = 0;
    for (int64_t c = g * 8; c < c_end; ++c) {
      byte |= static_cast<uint8_t>(bit_of(x, b * x.stride_b + c * x.stride_c, &bad, &value))
              << (c & 7);
    }
    x.out[b * x.bytes + g] = byte;
    if (bad) record_bad(status, side, value);
  }
}

// One side's rows of samples: the ring's before `seen`, the packed batch's after.
struct Rows {
  const uint8_t* ring;
  const uint8_t* batch;
  int64_t bytes;
};

__device__ __forceinline__ int64_t bit_at(const Rows& r, int64_t sample, int64_t seen, int64_t W,
                                          int64_t col) {
  const uint8_t* row = sample < seen ? r.ring + (sample % W) * r.bytes
                                     : r.batch + (sample - seen) * r.bytes;
  return (row[col >> 3] >> (col & 7)) & 1;
}

struct WindowGeometry {
  int64_t I, J, B, W, n0, delay;
  int k, l;
};

// counts[i, j, :] += sign * the joint counts of the observations of samples
// [first, last) (those at least n0 after `first`), one thread owning the pair.
__device__ void accumulate_pair(int64_t* c, const Rows& src, const Rows& tgt, int64_t i,
                                int64_t j, int64_t first, int64_t last, int64_t sign,
                                int64_t seen, const WindowGeometry& g) {
  if (last - first <= g.n0) return;  // no observation in the range
  for (int64_t n = first + g.n0; n < last; ++n) {
    const int64_t ynext = bit_at(tgt, n - math::target_state_lag(g.k, g.k), seen, g.W, j);
    int64_t ypast = 0, xpast = 0;
    for (int b = 0; b < g.k; ++b)
      ypast |= bit_at(tgt, n - math::target_state_lag(b, g.k), seen, g.W, j) << b;
    for (int b = 0; b < g.l; ++b)
      xpast |= bit_at(src, n - math::source_state_lag(b, g.delay), seen, g.W, i) << b;
    c[math::bin_index(ynext, ypast, xpast, g.k, g.l)] += sign;
  }
}

__device__ __forceinline__ int64_t current_seen(const int64_t* status, int64_t seen_host) {
  return status != nullptr ? status[kStatusSeen] : seen_host;
}

// Launch 2: one thread per pair.
__global__ void window_count_kernel(int64_t* __restrict__ counts, Rows src, Rows tgt,
                                    WindowGeometry g, const int64_t* status, int64_t seen_host) {
  const int64_t seen = current_seen(status, seen_host);
  const WindowStep step = plan_window_step(seen, g.B, g.W, g.n0);
  const int64_t bins = int64_t(1) << (g.k + g.l + 1);
  for (int64_t q = grid_start(); q < g.I * g.J; q += grid_stride()) {
    const int64_t i = q / g.J, j = q % g.J;
    int64_t* c = counts + q * bins;
    if (step.recount) {
      for (int64_t b = 0; b < bins; ++b) c[b] = 0;
      accumulate_pair(c, src, tgt, i, j, seen + g.B - g.W, seen + g.B, +1, seen, g);
    } else {
      accumulate_pair(c, src, tgt, i, j, step.leave_first, step.leave_last, -1, seen, g);
      accumulate_pair(c, src, tgt, i, j, step.enter_first, seen + g.B, +1, seen, g);
    }
  }
}

// Launch 3: the ring write, one thread per byte; with a device counter, the
// last block to finish advances it (every block has read it by then).
__global__ void window_write_kernel(uint8_t* sring, uint8_t* tring, const uint8_t* sbits,
                                    const uint8_t* tbits, int64_t sbytes, int64_t tbytes,
                                    int64_t B, int64_t W, int64_t n0, int64_t* status,
                                    int64_t seen_host) {
  const int64_t seen = current_seen(status, seen_host);
  const WindowStep step = plan_window_step(seen, B, W, n0);
  const int64_t keep = B - step.write_from;
  const int64_t src_total = keep * sbytes;
  const int64_t total = src_total + keep * tbytes;
  for (int64_t idx = grid_start(); idx < total; idx += grid_stride()) {
    const bool is_src = idx < src_total;
    const int64_t bytes = is_src ? sbytes : tbytes;
    const int64_t e = is_src ? idx : idx - src_total;
    const int64_t r = e / bytes, g = e % bytes;
    const int64_t row = (step.write_at + r) % W;
    (is_src ? sring : tring)[row * bytes + g] = (is_src ? sbits : tbits)[(step.write_from + r) * bytes + g];
  }
  if (status == nullptr) return;
  __syncthreads();
  if (threadIdx.x == 0) {
    __threadfence();
    auto* done = reinterpret_cast<unsigned long long*>(status + kStatusBlocksDone);
    if (atomicAdd(done, 1ull) == gridDim.x - 1) {
      status[kStatusSeen] = seen + B;
      *done = 0;
    }
  }
}

BatchIn batch_in(const at::Tensor& x, std::optional<double> threshold, int64_t bytes,
                 uint8_t* out, const char* name) {
  TORCH_CHECK_TYPE(supported_dtype(x.scalar_type()), kOp, ": ", name,
                   " must be bool, an integer or a floating dtype, got ", x.scalar_type());
  return BatchIn{x.const_data_ptr(), x.stride(0), x.stride(1), x.size(1), bytes,
                 x.scalar_type(), threshold.has_value(), threshold.value_or(0.0), out};
}

// The step, with `status` receiving bad values; the counter is read from
// status when `device_seen`, else `seen` is used. `raise_now` syncs after
// packing and raises before anything is modified.
void window_step_cuda(at::Tensor& counts, at::Tensor& source_ring, at::Tensor& target_ring,
                      const at::Tensor& status, const at::Tensor& source,
                      const at::Tensor& target, int64_t seen, bool device_seen, int64_t k,
                      int64_t l, int64_t delay, std::optional<double> source_threshold,
                      std::optional<double> target_threshold, bool raise_now) {
  const WindowArgs a = check_window_args(counts, source_ring, target_ring, source, target, seen,
                                         k, l, delay, source_threshold, target_threshold, kOp);
  if (a.B == 0) return;
  check_threshold_dtype(source, source_threshold, "source", kOp);
  check_threshold_dtype(target, target_threshold, "target", kOp);
  const c10::cuda::CUDAGuard guard(source.device());
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const int64_t sbytes = (a.I + 7) / 8, tbytes = (a.J + 7) / 8;
  at::Tensor bits = at::empty({a.B * (sbytes + tbytes)}, source.options().dtype(at::kByte));
  uint8_t* sbits = bits.data_ptr<uint8_t>();
  uint8_t* tbits = sbits + a.B * sbytes;
  int64_t* st = status.data_ptr<int64_t>();

  window_pack_kernel<<<blocks_for(a.B * (sbytes + tbytes)), kThreads, 0, stream>>>(
      batch_in(source, source_threshold, sbytes, sbits, "source"),
      batch_in(target, target_threshold, tbytes, tbits, "target"), a.B, st);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
  if (raise_now) {
    const at::Tensor host = status.cpu();
    raise_recorded_bad_value(host.const_data_ptr<int64_t>(), source_threshold, target_threshold);
  }

  int64_t* seen_ptr = device_seen ? st : nullptr;
  if (a.track) {
    const WindowGeometry g{a.I, a.J, a.B, a.W, a.n0, delay, static_cast<int>(k),
                           static_cast<int>(l)};
    window_count_kernel<<<blocks_for(a.I * a.J), kThreads, 0, stream>>>(
        counts.data_ptr<int64_t>(), Rows{source_ring.const_data_ptr<uint8_t>(), sbits, sbytes},
        Rows{target_ring.const_data_ptr<uint8_t>(), tbits, tbytes}, g, seen_ptr, seen);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  const int64_t keep = a.B < a.W ? a.B : a.W;
  window_write_kernel<<<blocks_for(keep * (sbytes + tbytes)), kThreads, 0, stream>>>(
      source_ring.data_ptr<uint8_t>(), target_ring.data_ptr<uint8_t>(), sbits, tbits, sbytes,
      tbytes, a.B, a.W, a.n0, seen_ptr, seen);
  C10_CUDA_KERNEL_LAUNCH_CHECK();
}

void window_append_cuda(at::Tensor& counts, at::Tensor& source_ring, at::Tensor& target_ring,
                        const at::Tensor& source, const at::Tensor& target,
                        const c10::Scalar& seen, int64_t k, int64_t l, int64_t delay,
                        std::optional<double> source_threshold,
                        std::optional<double> target_threshold) {
  const int64_t seen_rows = window_seen(seen, "te.window_append_");
  const at::Tensor status = at::zeros({kStatusSize}, source.options().dtype(at::kLong));
  window_step_cuda(counts, source_ring, target_ring, status, source, target, seen_rows,
                   /*device_seen=*/false, k, l, delay, source_threshold, target_threshold,
                   /*raise_now=*/true);
}

void window_append_async_cuda(at::Tensor& counts, at::Tensor& source_ring,
                              at::Tensor& target_ring, at::Tensor& status,
                              const at::Tensor& source, const at::Tensor& target, int64_t k,
                              int64_t l, int64_t delay, std::optional<double> source_threshold,
                              std::optional<double> target_threshold) {
  check_window_status(status, source, "te._window_append_async_");
  window_step_cuda(counts, source_ring, target_ring, status, source, target, /*seen=*/0,
                   /*device_seen=*/true, k, l, delay, source_threshold, target_threshold,
                   /*raise_now=*/false);
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CUDA, m) {
  m.impl("window_append_", &window_append_cuda);
  m.impl("_window_append_async_", &window_append_async_cuda);
}

}  // namespace cuda
}  // namespace te
