// CPU kernel of te::window_append_ (the step is planned in window_plan.h): one
// pass binarises and bit-packs the batch, the rows that leave or enter are
// unpacked straight from the ring and the batch, and their joint counts are
// accumulated into `counts` in place. Training calls this once a step on
// small problems, where the fixed cost of the device-generic composite (some
// thirty ATen ops) would dominate.
#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <c10/util/ParallelGuard.h>
#include <torch/library.h>

#include <algorithm>
#include <cstring>
#include <vector>

#include "../te_math.h"
#include "../window_plan.h"
#include "te_ops_cpu.h"

namespace te {
namespace cpu {
namespace {

constexpr const char* kOp = "te.window_append_";

// Below this many (row, source, target) triples a step runs on the calling
// thread: at training sizes (65 rows x 144 x 10) the work is tens of
// microseconds, less than handing it to a second thread costs, and a thread
// that another process has descheduled would stall the step for milliseconds.
constexpr int64_t kSerialWork = int64_t(1) << 24;

// Where a bad input value goes: raised at once (window_append_), or recorded
// in a deferred window's status for te::_window_check (_window_append_async_).
struct BadValueSink {
  int64_t* status = nullptr;  // record here when set; raise otherwise

  void operator()(std::optional<double> threshold, const char* name, int side, double value) const {
    if (status == nullptr) raise_bad_value(threshold, name, value, kOp);
    status[kStatusFlags] |= int64_t(1) << side;
    if (status[kStatusValue + 2 * side] == 0) {
      status[kStatusValue + 2 * side] = 1;
      std::memcpy(status + kStatusValue + 2 * side + 1, &value, sizeof value);
    }
  }
};

// x [B, C] (any strides) -> packed rows out [B, bytes], bit c % 8 of byte c / 8.
template <typename scalar_t>
void pack_batch(const at::Tensor& x, std::optional<double> threshold, const char* name, int side,
                const BadValueSink& sink, int64_t bytes, uint8_t* out) {
  const scalar_t* p = x.const_data_ptr<scalar_t>();
  const int64_t B = x.size(0), C = x.size(1), sb = x.stride(0), sc = x.stride(1);
  const bool has = threshold.has_value();
  const double thr = threshold.value_or(0.0);
  std::fill(out, out + B * bytes, 0);
  for (int64_t b = 0; b < B; ++b) {
    uint8_t* row = out + b * bytes;
    for (int64_t c = 0; c < C; ++c) {
      const scalar_t v = p[b * sb + c * sc];
      bool bad = false;
      const bool bit = math::to_bit(v, has, thr, &bad);
      if (bad) sink(threshold, name, side, static_cast<double>(v));
      row[c >> 3] |= static_cast<uint8_t>(bit) << (c & 7);
    }
  }
}

// uint8 0/1 [last - first, C] of samples first .. last-1: the ring's rows
// before `seen`, the packed batch's from `seen` on.
at::Tensor unpack_segment(const uint8_t* ring, int64_t W, const uint8_t* batch, int64_t seen,
                          int64_t first, int64_t last, int64_t C, int64_t bytes) {
  at::Tensor out = at::empty({last - first, C}, at::kByte);
  uint8_t* o = out.data_ptr<uint8_t>();
  for (int64_t s = first; s < last; ++s) {
    const uint8_t* row = s < seen ? ring + (s % W) * bytes : batch + (s - seen) * bytes;
    uint8_t* dst = o + (s - first) * C;
    for (int64_t c = 0; c < C; ++c) dst[c] = (row[c >> 3] >> (c & 7)) & 1;
  }
  return out;
}

void window_step_cpu(at::Tensor& counts, at::Tensor& source_ring, at::Tensor& target_ring,
                     const at::Tensor& source, const at::Tensor& target, int64_t seen, int64_t k,
                     int64_t l, int64_t delay, std::optional<double> source_threshold,
                     std::optional<double> target_threshold, const BadValueSink& sink) {
  const WindowArgs a = check_window_args(counts, source_ring, target_ring, source, target, seen,
                                         k, l, delay, source_threshold, target_threshold, kOp);
  if (a.B == 0) return;
  check_threshold_dtype(source, source_threshold, "source", kOp);
  check_threshold_dtype(target, target_threshold, "target", kOp);
  const int64_t sbytes = (a.I + 7) / 8, tbytes = (a.J + 7) / 8;
  std::vector<uint8_t> sbits(a.B * sbytes), tbits(a.B * tbytes);
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, source.scalar_type(),
                             "te_window_pack", [&] {
    pack_batch<scalar_t>(source, source_threshold, "source", 0, sink, sbytes, sbits.data());
  });
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, target.scalar_type(),
                             "te_window_pack", [&] {
    pack_batch<scalar_t>(target, target_threshold, "target", 1, sink, tbytes, tbits.data());
  });

  uint8_t* sring = source_ring.data_ptr<uint8_t>();
  uint8_t* tring = target_ring.data_ptr<uint8_t>();
  auto accumulate = [&](int64_t first, int64_t last, int64_t sign) {
    if (last - first <= a.n0) return;  // no observation in the range
    accumulate_joint_counts_cpu(
        counts, unpack_segment(sring, a.W, sbits.data(), seen, first, last, a.I, sbytes),
        unpack_segment(tring, a.W, tbits.data(), seen, first, last, a.J, tbytes), k, l, delay,
        sign, kOp);
  };
  const WindowStep step = plan_window_step(seen, a.B, a.W, a.n0);
  const int64_t rows = std::min(a.B, a.W) + 2 * a.n0 + (step.recount ? 0 : a.B);
  const c10::ParallelGuard serial(rows * a.I * a.J < kSerialWork);
  if (a.track && step.recount) {
    counts.zero_();
    accumulate(seen + a.B - a.W, seen + a.B, +1);
  } else if (a.track) {
    accumulate(step.leave_first, step.leave_last, -1);
    accumulate(step.enter_first, seen + a.B, +1);
  }
  // After the reads: the batch's last rows overwrite the oldest.
  for (int64_t r = step.write_from; r < a.B; ++r) {
    const int64_t row = (step.write_at + (r - step.write_from)) % a.W;
    std::memcpy(sring + row * sbytes, sbits.data() + r * sbytes, sbytes);
    std::memcpy(tring + row * tbytes, tbits.data() + r * tbytes, tbytes);
  }
}

void window_append_cpu(at::Tensor& counts, at::Tensor& source_ring, at::Tensor& target_ring,
                       const at::Tensor& source, const at::Tensor& target,
                       const c10::Scalar& seen, int64_t k, int64_t l, int64_t delay,
                       std::optional<double> source_threshold,
                       std::optional<double> target_threshold) {
  window_step_cpu(counts, source_ring, target_ring, source, target,
                  window_seen(seen, "te.window_append_"), k, l, delay,
                  source_threshold, target_threshold, BadValueSink{});
}

// The deferred op on the CPU: the same step, the counter and bad values in
// `status` (the CUDA kernel's protocol, so the CPU tests exercise it).
void window_append_async_cpu(at::Tensor& counts, at::Tensor& source_ring,
                             at::Tensor& target_ring, at::Tensor& status,
                             const at::Tensor& source, const at::Tensor& target, int64_t k,
                             int64_t l, int64_t delay, std::optional<double> source_threshold,
                             std::optional<double> target_threshold) {
  check_window_status(status, source, "te._window_append_async_");
  int64_t* st = status.data_ptr<int64_t>();
  window_step_cpu(counts, source_ring, target_ring, source, target, st[kStatusSeen], k, l, delay,
                  source_threshold, target_threshold, BadValueSink{st});
  st[kStatusSeen] += source.size(0);
}

}  // namespace

TORCH_LIBRARY_IMPL(te, CPU, m) {
  m.impl("window_append_", &window_append_cpu);
  m.impl("_window_append_async_", &window_append_async_cpu);
}

}  // namespace cpu
}  // namespace te
