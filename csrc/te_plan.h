// Argument checking and problem geometry, shared by the CPU and CUDA ops and
// by the fake (meta) kernels, so that all of them reject the same inputs with
// the same messages.
//
// The checks read only what a tensor says about itself (TensorInfo: sizes,
// dtype, device, contiguity), never its data: the fake kernels in
// te_ext/_fake.py pass the same description through te_ext._C and so run
// them word for word. Checks that need data (NaN, values other than 0/1, pair
// indices, count ranges) and memory checks stay in the kernels.
#pragma once

#include "memory_probe.h"

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cstdint>
#include <string>
#include <vector>

namespace te {

// What the checks may read of a tensor.
struct TensorInfo {
  c10::IntArrayRef sizes;
  at::ScalarType dtype = at::kBool;
  at::Device device = at::kCPU;
  bool contiguous = true;

  int64_t dim() const { return static_cast<int64_t>(sizes.size()); }
  int64_t size(int64_t d) const { return sizes[d < 0 ? d + dim() : d]; }
  int64_t numel() const;  // saturates at INT64_MAX
};

// The description of a defined tensor.
TensorInfo info(const at::Tensor& t);

// Everything an op needs to know about a (source, target) pair of series.
struct SeriesPlan {
  int64_t R = 1;      // replicates
  int64_t T = 0;      // time steps per replicate
  int64_t I = 0;      // source neurons
  int64_t J = 0;      // target neurons
  int k = 1, l = 1;
  int64_t delay = 1;
  int64_t n0 = 1;           // first observation of each replicate
  int64_t obs_per_rep = 0;  // T - n0
  int64_t nobs = 0;         // R * (T - n0)
  bool has_threshold = false;
  double threshold = 0.0;
  at::Device device = at::kCPU;  // of source and target

  int64_t raw_words = 0;   // words of one packed replicate of one series
  int64_t rep_words = 0;   // observation words of one replicate
  int64_t words = 0;       // observation words of a stream, all replicates, padded
  int64_t sx = 2, sy = 4;  // source / target state counts: 2^l, 2^(k+1)
  int64_t bins = 8;        // 2^(k+l+1)
  // One-hot AND+popcount streams when the state space is small; per-pair
  // histograms over per-observation states otherwise (see choose_path).
  bool onehot = true;
};

// Validates source/target/k/l/delay/threshold; `op` prefixes every message.
SeriesPlan plan_series(const TensorInfo& source, const TensorInfo& target, int64_t k, int64_t l,
                       int64_t delay, std::optional<double> threshold, const char* op);
SeriesPlan plan_series(const at::Tensor& source, const at::Tensor& target, int64_t k,
                       int64_t l, int64_t delay, std::optional<double> threshold,
                       const char* op);

// The one dtype check of a binary series `name` (source or target) of every op:
// TypeError for complex or unsupported dtypes (listing the supported ones), and
// for floating input when `threshold_name` (threshold, source_threshold, ...)
// is None.
void check_series_dtype(const TensorInfo& x, bool has_threshold, const char* name,
                        const char* threshold_name, const char* op);

// Bytes of workspace an op needs beyond its output, for the path in the plan;
// `workers` is how many threads each hold one pair's histogram at a time
// (0 where the caller accounts for per-pair histograms in its output).
int64_t workspace_bytes(const SeriesPlan& p, int64_t row_pad, int64_t workers);

// Checks that no histogram of `counts` (int64, contiguous, [..., bins]) can
// sum past int64: every count must be at most INT64_MAX / bins. `most` and
// `least` are the largest and smallest count.
void check_count_range(int64_t least, int64_t most, int64_t bins, const char* op);

// The memory check of a series op: `bytes` of workspace and output.
void check_fits(int64_t bytes, const SeriesPlan& p, const char* op);
// The same, also refusing more than `limit` bytes (e.g. physical memory).
void check_fits(int64_t bytes, int64_t limit, const SeriesPlan& p, const char* op);

// Checks 1 <= k, 1 <= l and that 2^(k+l+1) bins stay addressable; the bound
// comes first, so no arithmetic on k and l can overflow.
void check_history(int64_t k, int64_t l, const char* op);

// Checks delay >= 1 (its upper bound is the series' or window's length,
// checked by first_observation_before).
void check_delay(int64_t delay, const char* op);

// n0 = max(k, l - 1 + delay), checked to be < `length` (T, or the window,
// named `length_name`); raises ValueError with `what` ("series too short
// ...") otherwise. k and l
// must have passed check_history. Overflow-safe for any delay.
int64_t first_observation_before(int64_t length, const char* length_name, int64_t k, int64_t l,
                                 int64_t delay, const char* what, const char* op);

// Checks the metadata of pairs: int64 [P, 2] on `device`.
void check_pairs_shape(const TensorInfo& pairs, const at::Device& device, const char* op);
// check_pairs_shape, that the output (and a contiguous copy) fits in memory,
// and that 0 <= i < I, 0 <= j < J (this reads the data: one sync on CUDA).
void check_pairs(const at::Tensor& pairs, const SeriesPlan& p, const at::Device& device,
                 const char* op);

// Checks counts: integer [..., 2^(k+l+1)]; returns the number of bins.
int64_t check_counts(const TensorInfo& counts, int64_t k, int64_t l, const char* op);
// The same, and that the output (and an int64 contiguous copy) fits in memory.
int64_t check_counts(const at::Tensor& counts, int64_t k, int64_t l, const char* op);

// The shape of a per-pair output of counts [..., bins]: counts' shape without its last
// dimension.
std::vector<int64_t> pair_shape(const at::Tensor& counts);

// Checked a*b for sizes (raises ValueError naming `what` on overflow).
int64_t checked_mul(int64_t a, int64_t b, const char* what);

// a*b and a+b, or INT64_MAX where they would overflow (byte counts that the
// memory check then refuses).
int64_t mul_sat(int64_t a, int64_t b);
int64_t add_sat(int64_t a, int64_t b);

}  // namespace te
