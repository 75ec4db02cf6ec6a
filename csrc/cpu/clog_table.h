// f(c) = c log2 c for the TE reductions of the CPU ops (transfer_entropy,
// the surrogates, the delay scan): one table policy for all of them.
#pragma once

#include <cstdint>
#include <vector>

#include "../te_math.h"

namespace te {
namespace cpu {

// Past this many entries (32 MiB) the table would cost more to build than the
// logarithms it saves.
constexpr int64_t kMaxClogTable = int64_t(1) << 22;

// Calls fn(f) with a table-backed f covering 0..max_count, or with the direct
// formula when such a table would be too large. The table is kept between calls
// (per calling thread, grown on demand): training asks for the TE of a window's
// counts every step, and rebuilding f(0..window) each time made that step's
// cost grow with the window.
template <typename Fn>
void with_clog(int64_t max_count, Fn fn) {
  if (max_count >= kMaxClogTable) {
    fn(math::DirectClog{});
    return;
  }
  thread_local std::vector<double> table;
  for (int64_t c = static_cast<int64_t>(table.size()); c <= max_count; ++c)
    table.push_back(math::clog2c(c));
  fn(math::TableClog{table.data()});
}

}  // namespace cpu
}  // namespace te
