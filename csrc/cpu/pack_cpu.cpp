#include "pack_cpu.h"

#include <ATen/Dispatch.h>
#include <ATen/Parallel.h>
#include <ATen/ops/empty.h>
#include <ATen/ops/zeros.h>
#include <c10/util/Exception.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <type_traits>
#include <mutex>
#include <vector>

#include "../te_math.h"

namespace te {
namespace cpu {
namespace {

// Columns binarised together: one 64 x 64 bit block (64 time steps of 64
// columns) is read row by row, contiguously for time-major input, and then
// transposed so each column's 64 time steps land in one word.
constexpr int64_t kColumnBlock = 64;

// Remembers the first rejected value seen by any thread.
struct BadValue {
  std::atomic<bool> seen{false};
  std::mutex mu;
  double value = 0.0;
  void record(double v) {
    std::lock_guard<std::mutex> g(mu);
    if (!seen.load()) {
      value = v;
      seen.store(true);
    }
  }
};

// In place: afterwards bit t of a[c] is what bit c of a[t] was.
void transpose_bits64(uint64_t a[64]) {
  uint64_t m = 0x00000000FFFFFFFFULL;
  for (int j = 32; j != 0; j >>= 1, m ^= m << j) {
    for (int k = 0; k < 64; k = ((k | j) + 1) & ~j) {
      const uint64_t t = ((a[k] >> j) ^ a[k | j]) & m;
      a[k] ^= t << j;
      a[k | j] ^= t;
    }
  }
}

// Bit c = binarised row[c * sc], for c < nc.
template <typename scalar_t>
uint64_t row_bits(const scalar_t* row, int64_t sc, int64_t nc, const SeriesPlan& p, bool* bad) {
  uint64_t m = 0;
  for (int64_t c = 0; c < nc; ++c) {
    m |= static_cast<uint64_t>(math::to_bit(row[c * sc], p.has_threshold, p.threshold, bad)) << c;
  }
  return m;
}

// One-byte 0/1 values, 64 in a row: eight bytes at a time, gathered into
// eight bits by one multiply (byte b lands in bit 56 + b, then shifted down).
uint64_t row_bits_bytes01(const uint8_t* row, bool* bad) {
  uint64_t m = 0;
  for (int q = 0; q < 8; ++q) {
    uint64_t v;
    std::memcpy(&v, row + 8 * q, 8);
    *bad |= (v & 0xFEFEFEFEFEFEFEFEULL) != 0;
    m |= ((v * 0x0102040810204080ULL) >> 56) << (8 * q);
  }
  return m;
}

template <typename scalar_t>
void pack_raw(const at::Tensor& x3, const SeriesPlan& p, uint64_t* raw, BadValue& bad) {
  const scalar_t* base = x3.const_data_ptr<scalar_t>();
  const int64_t sr = x3.stride(0), st = x3.stride(1), sc = x3.stride(2);
  const int64_t C = x3.size(2);
  constexpr bool one_byte = sizeof(scalar_t) == 1 && !std::is_same_v<scalar_t, int8_t>;
  at::parallel_for(0, at::divup(C, kColumnBlock), 1, [&](int64_t blk0, int64_t blk1) {
    uint64_t block[64];
    for (int64_t blk = blk0; blk < blk1; ++blk) {
      const int64_t c0 = blk * kColumnBlock;
      const int64_t nc = std::min(kColumnBlock, C - c0);
      const bool fast_bytes = one_byte && !p.has_threshold && sc == 1 && nc == 64;
      for (int64_t r = 0; r < p.R; ++r) {
        for (int64_t wt = 0; wt < p.raw_words; ++wt) {
          const int64_t t0 = wt * math::kWordBits;
          const int64_t nt = std::min<int64_t>(math::kWordBits, p.T - t0);
          bool any_bad = false;
          for (int64_t b = 0; b < nt; ++b) {
            const scalar_t* row = base + r * sr + (t0 + b) * st + c0 * sc;
            block[b] = fast_bytes
                           ? row_bits_bytes01(reinterpret_cast<const uint8_t*>(row), &any_bad)
                           : row_bits(row, sc, nc, p, &any_bad);
          }
          std::fill(block + nt, block + 64, 0);
          if (any_bad) {
            // Rescan only this block to name the offending value.
            for (int64_t b = 0; b < nt; ++b) {
              const scalar_t* row = base + r * sr + (t0 + b) * st + c0 * sc;
              for (int64_t c = 0; c < nc; ++c) {
                bool bad_here = false;
                math::to_bit(row[c * sc], p.has_threshold, p.threshold, &bad_here);
                if (bad_here) bad.record(static_cast<double>(row[c * sc]));
              }
            }
          }
          transpose_bits64(block);
          for (int64_t c = 0; c < nc; ++c) raw[((c0 + c) * p.R + r) * p.raw_words + wt] = block[c];
        }
      }
    }
  });
}

void build_onehot(const uint64_t* raw, const SeriesPlan& p, int nbits, bool is_target,
                  int64_t C, PackedSide& out) {
  const int64_t S = int64_t(1) << nbits;
  uint64_t* streams = reinterpret_cast<uint64_t*>(out.onehot.data_ptr<int64_t>());
  int64_t* counts = out.counts.data_ptr<int64_t>();
  at::parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
    uint64_t lag_words[math::kWordBits];
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* cnt = counts + c * S;
      for (int64_t r = 0; r < p.R; ++r) {
        const uint64_t* series = raw + (c * p.R + r) * p.raw_words;
        for (int64_t w = 0; w < p.rep_words; ++w) {
          for (int b = 0; b < nbits; ++b) {
            const int64_t lag = is_target ? math::target_state_lag(b, p.k)
                                          : math::source_state_lag(b, p.delay);
            lag_words[b] = math::load_bits(series, p.raw_words, p.n0 - lag + w * math::kWordBits);
          }
          const uint64_t mask = math::valid_mask(w, p.obs_per_rep);
          for (int64_t s = 1; s < S; ++s) {
            const uint64_t word = math::onehot_word(lag_words, nbits, s) & mask;
            streams[(c * (S - 1) + s - 1) * p.words + r * p.rep_words + w] = word;
            cnt[s] += static_cast<int64_t>(math::popcount64(word));
          }
        }
      }
      int64_t nonzero = 0;
      for (int64_t s = 1; s < S; ++s) nonzero += cnt[s];
      cnt[0] = p.nobs - nonzero;
    }
  });
}

void build_states(const uint64_t* raw, const SeriesPlan& p, int nbits, bool is_target, int64_t C,
                  PackedSide& out) {
  const int64_t S = int64_t(1) << nbits;
  int32_t* states = out.states.data_ptr<int32_t>();
  int64_t* counts = out.counts.data_ptr<int64_t>();
  at::parallel_for(0, C, 1, [&](int64_t c0, int64_t c1) {
    for (int64_t c = c0; c < c1; ++c) {
      int64_t* cnt = counts + c * S;
      for (int64_t r = 0; r < p.R; ++r) {
        const uint64_t* series = raw + (c * p.R + r) * p.raw_words;
        for (int64_t o = 0; o < p.obs_per_rep; ++o) {
          const int64_t s =
              math::state_at(series, p.raw_words, p.n0 + o, nbits, is_target, p.k, p.delay);
          states[c * p.nobs + r * p.obs_per_rep + o] = static_cast<int32_t>(s);
          ++cnt[s];
        }
      }
    }
  });
}

}  // namespace

PackedSide pack_side_cpu(const at::Tensor& x, const SeriesPlan& p, bool is_target,
                         int64_t row_pad, const char* op, const char* name) {
  const at::Tensor x3 = x.dim() == 3 ? x : x.unsqueeze(0);
  const int64_t C = x3.size(2);
  const int nbits = is_target ? p.k + 1 : p.l;
  const int64_t S = int64_t(1) << nbits;

  std::vector<uint64_t> raw(static_cast<size_t>(C * p.R * p.raw_words));
  BadValue bad;
  AT_DISPATCH_ALL_TYPES_AND3(at::kBool, at::kHalf, at::kBFloat16, x3.scalar_type(), "te_pack", [&] {
    pack_raw<scalar_t>(x3, p, raw.data(), bad);
  });
  if (bad.seen.load()) {
    if (p.has_threshold) {
      TORCH_CHECK_VALUE(false, op, ": ", name, " contains NaN; with threshold=", p.threshold,
                        " every value must be a number");
    }
    TORCH_CHECK_VALUE(false, op, ": ", name, " contains the value ", bad.value,
                      " but threshold is None, so only 0 and 1 are allowed; pass threshold=... "
                      "to binarise it");
  }

  PackedSide out;
  out.streams = S - 1;
  out.counts = at::zeros({C, S}, x.options().dtype(at::kLong));
  if (p.onehot) {
    const int64_t rows = math::round_up(C * (S - 1), row_pad);
    out.onehot = at::zeros({rows, p.words}, x.options().dtype(at::kLong));
    build_onehot(raw.data(), p, nbits, is_target, C, out);
  } else {
    out.states = at::empty({C, p.nobs}, x.options().dtype(at::kInt));
    build_states(raw.data(), p, nbits, is_target, C, out);
  }
  return out;
}

}  // namespace cpu
}  // namespace te
