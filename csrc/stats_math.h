// The math of the statistics ops (permutation surrogates, local TE), written
// once for the CPU and CUDA kernels, on top of te_math.h.
//
// Observations are numbered two ways:
//  * the pooled index q in [0, R * (T - n0)): replicate r = q / obs_per_rep,
//    observation o = q % obs_per_rep of that replicate, in time order; this is
//    what a surrogate permutation permutes and what local TE is indexed by;
//  * the bit position of q in a packed stream: replicate r's observations
//    start at word r * rep_words (see SeriesPlan).
#pragma once

#include <cmath>
#include <cstdint>

#include "te_math.h"

namespace te {
namespace stats {

TE_HD int64_t stream_bit_of(int64_t q, int64_t obs_per_rep, int64_t rep_words) {
  return (q / obs_per_rep) * rep_words * math::kWordBits + q % obs_per_rep;
}

// The pooled observations held by stream word w are contiguous: bits
// 0 .. *valid - 1 hold observations first, first + 1, ...; the other bits are
// padding (past a replicate's observations, or past the last replicate).
TE_HD int64_t word_observations(int64_t w, int64_t R, int64_t obs_per_rep, int64_t rep_words,
                                int* valid) {
  const int64_t r = w / rep_words;
  const int64_t o = (w % rep_words) * math::kWordBits;
  const int64_t left = r < R ? obs_per_rep - o : 0;
  *valid = static_cast<int>(left < math::kWordBits ? (left > 0 ? left : 0) : math::kWordBits);
  return r * obs_per_rep + o;
}

// Bit q' = perm[q] of a stream, read at its packed position.
TE_HD uint64_t stream_bit(const uint64_t* row, int64_t q, int64_t obs_per_rep,
                          int64_t rep_words) {
  const int64_t bit = stream_bit_of(q, obs_per_rep, rep_words);
  return (row[bit / math::kWordBits] >> (bit % math::kWordBits)) & 1;
}

// Word w of the permuted one-hot stream `row`: bit b holds the stream's bit at
// the observation perm[first + b] (see word_observations; a surrogate moves the source's
// past state of observation perm[q] to observation q).
TE_HD uint64_t permuted_stream_word(const uint64_t* row, const int64_t* perm, int64_t w,
                                    int64_t R, int64_t obs_per_rep, int64_t rep_words) {
  int valid = 0;
  const int64_t first = word_observations(w, R, obs_per_rep, rep_words, &valid);
  uint64_t out = 0;
  for (int b = 0; b < valid; ++b) out |= stream_bit(row, perm[first + b], obs_per_rep, rep_words) << b;
  return out;
}

// Local TE of one observation, in bits: log2( p(ynext | ypast, xpast) / p(ynext | ypast) )
// with plug-in probabilities, from the counts of its bin, of its (ypast, xpast),
// of its (ynext, ypast) and of its ypast. All four are >= 1 for an observed bin.
TE_HD double local_te(int64_t c_bin, int64_t c_ypast_xpast, int64_t c_ynext_ypast,
                      int64_t c_ypast) {
  return log2((static_cast<double>(c_bin) * static_cast<double>(c_ypast)) /
              (static_cast<double>(c_ypast_xpast) * static_cast<double>(c_ynext_ypast)));
}

// Sorted local TE (Kajiwara et al., PLoS Comput Biol 2021) in bits from one
// pair's joint counts (2^(k+l+1) bins, index as math::bin_index): the plug-in
// TE's sum over bins of c_bin * local_te / n, each term signed +1 when the
// target's next value equals the source's most recent past value (bit 0 of
// xpast) and -1 otherwise. Positive for a source whose spike raises the
// target's chance to spike next, negative for one that lowers it. Local TEs can
// be negative, so |result| is not bounded by TE. No observations give 0.
TE_HD double sorted_local_te_from_joint_counts(const int64_t* c, int k, int l) {
  const int64_t sx = int64_t(1) << l;
  const int64_t syp = int64_t(1) << k;
  const int64_t half = int64_t(1) << (k + l);  // bins with ynext = 0 below, 1 above
  int64_t n = 0;
  double sum = 0.0;
  for (int64_t yp = 0; yp < syp; ++yp) {
    int64_t y0, y1;
    math::ypast_marginals(c, k, l, yp, &y0, &y1);
    n += y0 + y1;
    for (int64_t xs = 0; xs < sx; ++xs) {
      const int64_t a = c[(yp << l) | xs], b = c[half | (yp << l) | xs];
      const double agree = (xs & 1) ? 1.0 : -1.0;  // the sign of the ynext = 1 term
      if (a > 0) sum -= agree * static_cast<double>(a) * local_te(a, a + b, y0, y0 + y1);
      if (b > 0) sum += agree * static_cast<double>(b) * local_te(b, a + b, y1, y0 + y1);
    }
  }
  return n > 0 ? sum / static_cast<double>(n) : 0.0;
}

// A surrogate whose TE equals the observed one in exact arithmetic (a permutation that
// only relabels the source's states gives the same counts in other bins) may differ from it
// by rounding, and by a different rounding on another device or summation order. Within
// this many bits it counts as a tie, so as reaching the observed TE: far above the 1e-15
// rounding of a TE, far below any difference that distinct integer counts make in practice.
constexpr double kTieTolerance = 1e-12;

// Running sums of one pair over its surrogates: how many reached the observed
// TE (JIDT's >= comparison, ties up to kTieTolerance included), their sum and
// their sum of squares.
TE_HD void add_surrogate(double te_surrogate, double te_observed, int64_t* at_least,
                         double* sum, double* sum_sq) {
  *at_least += te_surrogate >= te_observed - kTieTolerance ? 1 : 0;
  *sum += te_surrogate;
  *sum_sq += te_surrogate * te_surrogate;
}

}  // namespace stats
}  // namespace te
