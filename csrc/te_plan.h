// Argument checking and problem geometry, shared by the CPU and CUDA ops, so
// that both reject the same inputs with the same messages.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/Optional.h>

#include <cstdint>

namespace te {

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
SeriesPlan plan_series(const at::Tensor& source, const at::Tensor& target, int64_t k,
                       int64_t l, int64_t delay, std::optional<double> threshold,
                       const char* op);

// Bytes of workspace an op needs beyond its output, for the path in the plan;
// `workers` is how many threads each hold one pair's histogram at a time
// (0 where the caller accounts for per-pair histograms in its output).
int64_t workspace_bytes(const SeriesPlan& p, int64_t row_pad, int64_t workers);

// Checks that no histogram of `counts` (int64, contiguous, [..., bins]) can
// sum past int64: every count must be at most INT64_MAX / bins. `most` and
// `least` are the largest and smallest count.
void check_count_range(int64_t least, int64_t most, int64_t bins, const char* op);

// Raises ValueError before allocating if `bytes` exceed `limit`.
void check_fits(int64_t bytes, int64_t limit, const SeriesPlan& p, const char* op);

// Physical memory of this machine, the CPU ops' limit.
int64_t host_memory_bytes();

// Checks 1 <= k, 1 <= l and that 2^(k+l+1) bins stay addressable.
void check_history(int64_t k, int64_t l, const char* op);

// Checks pairs: int64 [P, 2] with 0 <= i < I, 0 <= j < J, on `device`.
void check_pairs(const at::Tensor& pairs, const SeriesPlan& p, const at::Device& device,
                 const char* op);

// Checks counts: integer [..., 2^(k+l+1)]; returns the number of bins.
int64_t check_counts(const at::Tensor& counts, int64_t k, int64_t l, const char* op);

// Checked a*b for sizes (raises ValueError naming `what` on overflow).
int64_t checked_mul(int64_t a, int64_t b, const char* what);

}  // namespace te
