#include "pack_cuda.h"

#include <ATen/Dispatch.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/cuda/CUDAException.h>
#include <c10/cuda/CUDAStream.h>

#include "../te_math.h"
#include "launch.cuh"

namespace te {
namespace cuda {
namespace {

// One thread per (column, time word, replicate), columns fastest: the 32
// threads of a warp read 32 neighbouring columns of one row, which is
// coalesced for time-major input.
template <typename scalar_t>
__global__ void pack_raw_kernel(const scalar_t* __restrict__ x, int64_t sr, int64_t st, int64_t sc,
                                int64_t T, int64_t C, int64_t R, int64_t raw_words,
                                bool has_threshold, double threshold, uint64_t* __restrict__ raw,
                                unsigned long long* bad_flag, double* bad_value) {
  const int64_t total = C * raw_words * R;
  for (int64_t idx = grid_start(); idx < total; idx += grid_stride()) {
    const int64_t c = idx % C;
    const int64_t wt = (idx / C) % raw_words;
    const int64_t r = idx / (C * raw_words);
    const int64_t t0 = wt * math::kWordBits;
    const int64_t nt = T - t0 < math::kWordBits ? T - t0 : math::kWordBits;
    const scalar_t* col = x + r * sr + c * sc;
    uint64_t word = 0;
    for (int64_t b = 0; b < nt; ++b) {
      bool bad = false;
      const scalar_t v = col[(t0 + b) * st];
      word |= static_cast<uint64_t>(math::to_bit(v, has_threshold, threshold, &bad)) << b;
      if (bad && atomicCAS(bad_flag, 0ull, 1ull) == 0ull) *bad_value = static_cast<double>(v);
    }
    raw[(c * R + r) * raw_words + wt] = word;
  }
}

// One thread per (column, replicate, observation word), words fastest so the
// stream writes are coalesced.
__global__ void onehot_kernel(const uint64_t* __restrict__ raw, int64_t C, int64_t R,
                              int64_t raw_words, int64_t rep_words, int64_t words,
                              int64_t obs_per_rep, int64_t n0, int nbits, bool is_target, int k,
                              int64_t delay, uint64_t* __restrict__ streams,
                              unsigned long long* counts) {
  const int64_t S = int64_t(1) << nbits;
  const int64_t total = C * R * rep_words;
  for (int64_t idx = grid_start(); idx < total; idx += grid_stride()) {
    const int64_t w = idx % rep_words;
    const int64_t r = (idx / rep_words) % R;
    const int64_t c = idx / (rep_words * R);
    const uint64_t* series = raw + (c * R + r) * raw_words;
    uint64_t lag_words[math::kWordBits];
    for (int b = 0; b < nbits; ++b) {
      const int64_t lag = is_target ? math::target_state_lag(b, k) : math::source_state_lag(b, delay);
      lag_words[b] = math::load_bits(series, raw_words, n0 - lag + w * math::kWordBits);
    }
    const uint64_t mask = math::valid_mask(w, obs_per_rep);
    for (int64_t s = 1; s < S; ++s) {
      const uint64_t word = math::onehot_word(lag_words, nbits, s) & mask;
      streams[(c * (S - 1) + s - 1) * words + r * rep_words + w] = word;
      const uint64_t n = math::popcount64(word);
      if (n) atomicAdd(counts + c * S + s, static_cast<unsigned long long>(n));
    }
  }
}

// One thread per (column, observation).
__global__ void states_kernel(const uint64_t* __restrict__ raw, int64_t C, int64_t R,
                              int64_t raw_words, int64_t obs_per_rep, int64_t n0, int nbits,
                              bool is_target, int k, int64_t delay, int32_t* __restrict__ states,
                              unsigned long long* counts) {
  const int64_t S = int64_t(1) << nbits;
  const int64_t nobs = R * obs_per_rep;
  const int64_t total = C * nobs;
  for (int64_t idx = grid_start(); idx < total; idx += grid_stride()) {
    const int64_t o = idx % nobs;
    const int64_t c = idx / nobs;
    const int64_t r = o / obs_per_rep;
    const uint64_t* series = raw + (c * R + r) * raw_words;
    const int64_t s =
        math::state_at(series, raw_words, n0 + o % obs_per_rep, nbits, is_target, k, delay);
    states[idx] = static_cast<int32_t>(s);
    atomicAdd(counts + c * S + s, 1ull);
  }
}

}  // namespace

PackedSide pack_side_cuda(const at::Tensor& x, const SeriesPlan& p, bool is_target,
                          const char* op, const char* name) {
  const at::Tensor x3 = x.dim() == 3 ? x : x.unsqueeze(0);
  const int64_t C = x3.size(2);
  const int nbits = is_target ? p.k + 1 : p.l;
  const int64_t S = int64_t(1) << nbits;
  const auto stream = c10::cuda::getCurrentCUDAStream();
  const auto long_opts = x.options().dtype(at::kLong);

  at::Tensor raw = at::empty({C * p.R * p.raw_words}, long_opts);
  uint64_t* raw_ptr = reinterpret_cast<uint64_t*>(raw.data_ptr<int64_t>());
  // Bool input is binary already (and never NaN): no value check, no sync.
  const bool check_values = x3.scalar_type() != at::kBool;
  at::Tensor bad;  // [flag, value bits as double]
  unsigned long long* bad_flag = nullptr;
  double* bad_value = nullptr;
  if (check_values) {
    bad = at::zeros({2}, long_opts);
    bad_flag = reinterpret_cast<unsigned long long*>(bad.data_ptr<int64_t>());
    bad_value = reinterpret_cast<double*>(bad.data_ptr<int64_t>() + 1);
  }
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, x3.scalar_type(), "te_pack_cuda", [&] {
    pack_raw_kernel<scalar_t><<<blocks_for(C * p.raw_words * p.R), kThreads, 0, stream>>>(
        x3.const_data_ptr<scalar_t>(), x3.stride(0), x3.stride(1), x3.stride(2), p.T, C, p.R,
        p.raw_words, p.has_threshold, p.threshold, raw_ptr, bad_flag, bad_value);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  });
  if (check_values) {
    const at::Tensor bad_host = bad.cpu();  // the op's one sync: bad input must raise
    if (bad_host.data_ptr<int64_t>()[0] != 0) {
      const double v = *reinterpret_cast<const double*>(bad_host.data_ptr<int64_t>() + 1);
      if (p.has_threshold) {
        TORCH_CHECK_VALUE(false, op, ": ", name, " contains NaN; with threshold=", p.threshold,
                          " every value must be a number");
      }
      TORCH_CHECK_VALUE(false, op, ": ", name, " contains the value ", v,
                        " but threshold is None, so only 0 and 1 are allowed; pass threshold=... "
                        "to binarise it");
    }
  }

  PackedSide out;
  out.streams = S - 1;
  out.counts = at::zeros({C, S}, long_opts);
  auto* counts = reinterpret_cast<unsigned long long*>(out.counts.data_ptr<int64_t>());
  if (p.onehot) {
    const int64_t rows = math::round_up(C * (S - 1), kRowPad);
    out.onehot = at::zeros({rows, p.words}, long_opts);
    onehot_kernel<<<blocks_for(C * p.R * p.rep_words), kThreads, 0, stream>>>(
        raw_ptr, C, p.R, p.raw_words, p.rep_words, p.words, p.obs_per_rep, p.n0, nbits,
        is_target, p.k, p.delay, reinterpret_cast<uint64_t*>(out.onehot.data_ptr<int64_t>()),
        counts);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  } else {
    out.states = at::empty({C, p.nobs}, x.options().dtype(at::kInt));
    states_kernel<<<blocks_for(C * p.nobs), kThreads, 0, stream>>>(
        raw_ptr, C, p.R, p.raw_words, p.obs_per_rep, p.n0, nbits, is_target, p.k, p.delay,
        out.states.data_ptr<int32_t>(), counts);
    C10_CUDA_KERNEL_LAUNCH_CHECK();
  }
  // State 0 is the remainder; stream-ordered tensor ops, no sync.
  out.counts.select(1, 0).copy_(out.counts.narrow(1, 1, S - 1).sum(1).neg().add_(p.nobs));
  return out;
}

}  // namespace cuda
}  // namespace te
