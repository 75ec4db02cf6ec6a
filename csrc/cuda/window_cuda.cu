// CUDA kernels of te::window_append_ and te::_window_append_async_, the
// training step of te_ext.StreamingJointCounts. Same structure as the CPU
// kernel (cpu/window_cpu.cpp), planned by the same plan_window_step:
//
//   1. pack:  binarise both batches (math::to_bit, compared in double) into
//             packed rows, bit c % 8 of byte c / 8; bad values are recorded
//             in a status tensor instead of being thrown from the device;
//   2. streams: the one-hot state streams of every neuron over the
//             observations that leave the window and those that enter, one
//             warp per 64-observation word (independent loads, two ballots);
//   3. count: one thread per (pair, bin) adds the signed AND+popcount of those
//             streams into the counts (no loop over rows: one thread per pair
//             looping over its rows' dependent loads made a step latency-bound);
//   4. write: the batch's last rows overwrite the ring's oldest.
//
// Four launches and no device-to-host copy. The deferred op also keeps the
// sample counter `seen` on the device (kernels 2-4 re-plan from it, the
// last block of kernel 4 advances it), so a CUDA graph that captured a step
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

struct WindowGeometry {
  int64_t I, J, B, W, n0, delay;
  int k, l;
  int64_t maxw;  // words of the longest segment a step can have
};

__device__ __forceinline__ int64_t current_seen(const int64_t* status, int64_t seen_host) {
  return status != nullptr ? status[kStatusSeen] : seen_host;
}

// The step's segments of samples (at most two: what leaves, with sign -1, and
// what enters, +1; or the whole new window when it lies inside the batch),
// from the same plan as the CPU kernel.
struct Segments {
  int64_t first[2], last[2], sign[2];
  int count;
};

__device__ __forceinline__ Segments step_segments(int64_t seen, const WindowGeometry& g) {
  const WindowStep step = plan_window_step(seen, g.B, g.W, g.n0);
  Segments s;
  if (step.recount) {
    s.first[0] = seen + g.B - g.W, s.last[0] = seen + g.B, s.sign[0] = 1;
    s.count = 1;
  } else {
    s.first[0] = step.leave_first, s.last[0] = step.leave_last, s.sign[0] = -1;
    s.first[1] = step.enter_first, s.last[1] = seen + g.B, s.sign[1] = 1;
    s.count = 2;
  }
  return s;
}

// Launch 2: the one-hot state streams of every neuron over each segment's
// observations (observation o is sample first + n0 + o), one warp per
// (segment, neuron, 64-observation word): each lane reads two samples per lag
// (independent loads) and two ballots assemble the word. Streams of sources
// [2][I][2^l][maxw], of targets [2][J][2^(k+1)][maxw]; words past a segment's
// end hold zeros. Launched with whole warps (kThreads is a multiple of 32), and
// the loop is warp-uniform, so every ballot sees all 32 lanes.
__global__ void window_streams_kernel(Rows src, Rows tgt, WindowGeometry g, const int64_t* status,
                                      int64_t seen_host, uint64_t* __restrict__ xs,
                                      uint64_t* __restrict__ ys) {
  const int64_t seen = current_seen(status, seen_host);
  const Segments segs = step_segments(seen, g);
  const int64_t sx = int64_t(1) << g.l, sy = int64_t(1) << (g.k + 1);
  const int64_t neurons = g.I + g.J;
  const int lane = threadIdx.x % 32;
  const int64_t warps = grid_stride() / 32;
  for (int64_t idx = grid_start() / 32; idx < 2 * neurons * g.maxw; idx += warps) {
    const int64_t w = idx % g.maxw;
    const int64_t c = (idx / g.maxw) % neurons;
    const int seg = static_cast<int>(idx / (g.maxw * neurons));
    const bool is_target = c >= g.I;
    const Rows& rows = is_target ? tgt : src;
    const int64_t col = is_target ? c - g.I : c;
    const int nbits = is_target ? g.k + 1 : g.l;
    uint64_t* out = is_target ? ys + ((seg * g.J + col) * sy) * g.maxw
                              : xs + ((seg * g.I + col) * sx) * g.maxw;
    const int64_t nobs = seg < segs.count ? segs.last[seg] - segs.first[seg] - g.n0 : 0;
    const int64_t obs_lo = w * math::kWordBits + lane, obs_hi = obs_lo + 32;
    uint64_t lag_words[kMaxStateBits];
    for (int b = 0; b < nbits; ++b) {
      const int64_t lag = is_target ? math::target_state_lag(b, g.k)
                                    : math::source_state_lag(b, g.delay);
      const int64_t base = (seg < segs.count ? segs.first[seg] : 0) + g.n0 - lag;
      const bool lo = obs_lo < nobs &&
                      window_sample_bit(rows.ring, rows.batch, rows.bytes, g.W, seen, base + obs_lo, col);
      const bool hi = obs_hi < nobs &&
                      window_sample_bit(rows.ring, rows.batch, rows.bytes, g.W, seen, base + obs_hi, col);
      lag_words[b] = static_cast<uint64_t>(__ballot_sync(0xffffffffu, lo)) |
                     (static_cast<uint64_t>(__ballot_sync(0xffffffffu, hi)) << 32);
    }
    const uint64_t valid = nobs > 0 ? math::valid_mask(w, nobs) : 0;
    for (int64_t st = lane; st < (int64_t(1) << nbits); st += 32) {
      out[st * g.maxw + w] = math::onehot_word(lag_words, nbits, st) & valid;
    }
  }
}

// Launch 3: one thread per (pair, bin) adds the signed joint count of the
// segments, bin (ys << l) | xs = sum over words of popcount(source stream xs &
// target stream ys): a handful of independent loads, no loop over the rows.
__global__ void window_count_kernel(int64_t* __restrict__ counts, WindowGeometry g,
                                    const int64_t* status, int64_t seen_host,
                                    const uint64_t* __restrict__ xs,
                                    const uint64_t* __restrict__ ys) {
  const int64_t seen = current_seen(status, seen_host);
  const Segments segs = step_segments(seen, g);
  const int64_t sx = int64_t(1) << g.l, sy = int64_t(1) << (g.k + 1);
  const int64_t bins = sx * sy;
  for (int64_t idx = grid_start(); idx < g.I * g.J * bins; idx += grid_stride()) {
    const int64_t b = idx % bins, q = idx / bins;
    const int64_t i = q / g.J, j = q % g.J;
    const int64_t x = b & (sx - 1), y = b >> g.l;
    int64_t delta = 0;
    for (int seg = 0; seg < segs.count; ++seg) {
      const int64_t nobs = segs.last[seg] - segs.first[seg] - g.n0;
      if (nobs <= 0) continue;
      delta += segs.sign[seg] *
               math::and_popcount(xs + ((seg * g.I + i) * sx + x) * g.maxw,
                                  ys + ((seg * g.J + j) * sy + y) * g.maxw,
                                  math::ceil_div(nobs, math::kWordBits));
    }
    counts[idx] = segs.count == 1 ? delta : counts[idx] + delta;  // one segment: a recount
  }
}

// Launch 4: the ring write, one thread per byte; with a device counter, the
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
    // The longest segment: the whole window on a recount, else at most B + n0 samples.
    const int64_t longest = a.B >= a.W ? a.W : a.B + a.n0;
    const WindowGeometry g{a.I, a.J, a.B, a.W, a.n0, delay, static_cast<int>(k),
                           static_cast<int>(l), math::ceil_div(longest, math::kWordBits)};
    const int64_t sx = int64_t(1) << l, sy = int64_t(1) << (k + 1);
    at::Tensor streams = at::empty({2 * (a.I * sx + a.J * sy) * g.maxw},
                                   source.options().dtype(at::kLong));
    uint64_t* xs = reinterpret_cast<uint64_t*>(streams.data_ptr<int64_t>());
    uint64_t* ys = xs + 2 * a.I * sx * g.maxw;
    window_streams_kernel<<<blocks_for(32 * 2 * (a.I + a.J) * g.maxw), kThreads, 0, stream>>>(
        Rows{source_ring.const_data_ptr<uint8_t>(), sbits, sbytes},
        Rows{target_ring.const_data_ptr<uint8_t>(), tbits, tbytes}, g, seen_ptr, seen, xs, ys);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
    window_count_kernel<<<blocks_for(a.I * a.J * sx * sy), kThreads, 0, stream>>>(
        counts.data_ptr<int64_t>(), g, seen_ptr, seen, xs, ys);
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
