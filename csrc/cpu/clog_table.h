// f(c) = c log2(c / n_ref) for the TE reductions of the CPU ops (transfer_entropy,
// the surrogates, the delay scans): one table policy for all of them.
//
// A table's entries are math::clog2c itself, so whether a reduction reads a table
// or evaluates f directly never changes a bit of its result: the choice below is
// about speed alone.
#pragma once

#include <algorithm>
#include <cstdint>
#include <vector>

#include "../te_math.h"

namespace te {
namespace cpu {

using math::kMaxClogTable;

// Per calling thread, the tables of the last few centres (math::clog_centre),
// each grown on demand to the largest total asked for. Training asks for the TE
// of a window's counts every step, often from feedback objects whose windows
// differ; rebuilding f(0..window) each time made that step's cost grow with the
// window.
class ClogCache {
 public:
  // f(0..nobs) centred for nobs; valid until the next call.
  const double* get(int64_t nobs) {
    const int64_t centre = math::clog_centre(nobs);
    int hit = 0;
    while (hit < kSlots && slot_[hit].centre != centre) ++hit;
    if (hit == kSlots) {
      hit = kSlots - 1;  // the least recently used
      slot_[hit].centre = centre;
      slot_[hit].table.clear();
    }
    // At most two full-size tables in all: the others give way, oldest first.
    for (int s = kSlots - 1; s >= 0 && entries() + nobs + 1 > 2 * kMaxClogTable; --s)
      if (s != hit) std::vector<double>().swap(slot_[s].table), slot_[s].centre = -1;
    std::vector<double>& t = slot_[hit].table;
    const double n_ref = static_cast<double>(centre);
    for (int64_t c = static_cast<int64_t>(t.size()); c <= nobs; ++c) t.push_back(math::clog2c(c, n_ref));
    std::rotate(slot_, slot_ + hit, slot_ + hit + 1);
    return slot_[0].table.data();
  }

 private:
  static constexpr int kSlots = 4;
  int64_t entries() const {
    int64_t n = 0;
    for (const Slot& s : slot_) n += static_cast<int64_t>(s.table.size());
    return n;
  }
  struct Slot {
    int64_t centre = -1;
    std::vector<double> table;
  };
  Slot slot_[kSlots];
};

inline ClogCache& thread_clog_cache() {
  thread_local ClogCache cache;
  return cache;
}

// Calls fn(f) with f centred for nobs and covering counts 0..nobs: a table, or
// the direct formula when such a table would be too large.
template <typename Fn>
void with_clog(int64_t nobs, Fn fn) {
  if (nobs >= kMaxClogTable) {
    fn(math::DirectClog{math::clog_reference(nobs)});
    return;
  }
  fn(math::TableClog{thread_clog_cache().get(nobs)});
}

// One f per delay of a scan, each centred for that delay's total.
struct TableClogs {
  const double* const* table;
  math::TableClog operator()(int64_t q) const { return math::TableClog{table[q]}; }
};
struct DirectClogs {
  const double* n_ref;
  math::DirectClog operator()(int64_t q) const { return math::DirectClog{n_ref[q]}; }
};

// Calls fn(fs), fs(q) the f of delay q (total nobs[q]). The totals of a scan's
// delays usually share one centre, and so one table; tables for several
// centres are built for this call only, and past kMaxClogTable entries in all
// f is evaluated directly.
template <typename Fn>
void with_clogs(const int64_t* nobs, int64_t D, Fn fn) {
  std::vector<int64_t> centres;  // distinct, each with the largest total it serves
  std::vector<int64_t> largest;
  std::vector<size_t> of(static_cast<size_t>(D));
  for (int64_t q = 0; q < D; ++q) {
    const int64_t c = math::clog_centre(nobs[q]);
    size_t s = std::find(centres.begin(), centres.end(), c) - centres.begin();
    if (s == centres.size()) {
      centres.push_back(c);
      largest.push_back(nobs[q]);
    }
    largest[s] = std::max(largest[s], nobs[q]);
    of[q] = s;
  }
  int64_t entries = 0;
  for (int64_t n : largest) entries += n + 1;
  std::vector<const double*> table(static_cast<size_t>(D));
  if (entries < kMaxClogTable && centres.size() == 1) {
    std::fill(table.begin(), table.end(), thread_clog_cache().get(largest[0]));
    fn(TableClogs{table.data()});
  } else if (entries < kMaxClogTable) {
    std::vector<std::vector<double>> own(centres.size());
    for (size_t s = 0; s < centres.size(); ++s) {
      own[s].resize(static_cast<size_t>(largest[s] + 1));
      for (int64_t c = 0; c <= largest[s]; ++c)
        own[s][c] = math::clog2c(c, static_cast<double>(centres[s]));
    }
    for (int64_t q = 0; q < D; ++q) table[q] = own[of[q]].data();
    fn(TableClogs{table.data()});
  } else {
    std::vector<double> n_ref(static_cast<size_t>(D));
    for (int64_t q = 0; q < D; ++q) n_ref[q] = static_cast<double>(centres[of[q]]);
    fn(DirectClogs{n_ref.data()});
  }
}

}  // namespace cpu
}  // namespace te
