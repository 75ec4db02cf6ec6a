// The spike-sparse path of te.transfer_entropy_delays on the CPU.
//
// The dense paths cost I * J * T * delays / 64 word operations whatever the
// firing rate. Spike recordings are 0.1-3% ones, so this path walks the
// source's spikes instead: for each source observation whose history holds a
// spike, one 64-bit load of the target serves every delay of the scan at once
// (the target's bits from the first to the last delay, side by side), and only
// the delays where the target's state is not all zeros are counted. Everything
// with an all-zero source or target state follows from the marginals, exactly
// as the one-hot paths assemble it, so the counts are the dense path's integers
// and the TE is the same bit for bit.
#pragma once

#include <ATen/core/Tensor.h>
#include <c10/util/ArrayRef.h>

#include "../packed.h"
#include "../te_plan.h"
#include "delay_scan_output.h"

namespace te {
namespace cpu {

// Fraction of ones over the first `rows` rows of a side packed as plain
// series (one stream per neuron, replicate r at word r * raw_words).
double packed_density(const PackedSide& side, const SeriesPlan& raw_plan, int64_t rows);

// Whether the sparse path is expected to beat the dense one for this job:
// `density` is the ones' fraction of both sides together.
bool sparse_scan_pays(double density, const SeriesPlan& pb, int64_t unique_delays);

// The scan into `out` from sides packed as plain series with `raw_plan` (see
// delays_cpu.cpp's raw_series_plan); pb is the plan at the smallest delay.
void scan_sparse(const PackedSide& source, const PackedSide& target, c10::IntArrayRef delays,
                 const SeriesPlan& pb, const SeriesPlan& raw_plan, DelayScanOutput& out);

}  // namespace cpu
}  // namespace te
