// C++ tests of the shared HOST_DEVICE math and of the ops through the
// dispatcher, against a direct plug-in estimate written here from the
// definition. Run through ctest (see CMakeLists.txt).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

#include "te_math.h"

namespace {

int failures = 0;

#define EXPECT(cond)                                                   \
  do {                                                                 \
    if (!(cond)) {                                                     \
      std::fprintf(stderr, "%s:%d: FAILED %s\n", __FILE__, __LINE__, #cond); \
      ++failures;                                                      \
    }                                                                  \
  } while (0)

// Plug-in TE straight from sum p(b) log2 p(yn|yp,xp) / p(yn|yp).
double direct_te(const std::vector<int64_t>& c, int k, int l) {
  const int64_t sx = 1 << l, syp = 1 << k;
  double n = 0;
  for (auto v : c) n += static_cast<double>(v);
  double te = 0;
  for (int64_t yn = 0; yn < 2; ++yn)
    for (int64_t yp = 0; yp < syp; ++yp)
      for (int64_t xp = 0; xp < sx; ++xp) {
        const double cb = static_cast<double>(c[te::math::bin_index(yn, yp, xp, k, l)]);
        if (cb == 0) continue;
        double c_ypxp = 0, c_ynyp = 0, c_yp = 0;
        for (int64_t y = 0; y < 2; ++y) c_ypxp += c[te::math::bin_index(y, yp, xp, k, l)];
        for (int64_t x = 0; x < sx; ++x) {
          c_ynyp += c[te::math::bin_index(yn, yp, x, k, l)];
          for (int64_t y = 0; y < 2; ++y) c_yp += c[te::math::bin_index(y, yp, x, k, l)];
        }
        te += cb / n * std::log2((cb / c_ypxp) / (c_ynyp / c_yp));
      }
  return te;
}

void test_bits() {
  const uint64_t w[2] = {0xF0F0F0F0F0F0F0F0ULL, 0x1ULL};
  EXPECT(te::math::load_bits(w, 2, 0) == w[0]);
  EXPECT(te::math::load_bits(w, 2, 4) == ((w[0] >> 4) | (w[1] << 60)));
  EXPECT(te::math::load_bits(w, 2, 64) == 1);
  EXPECT(te::math::load_bits(w, 2, 100) == 0);
  EXPECT(te::math::valid_mask(0, 3) == 0x7);
  EXPECT(te::math::valid_mask(1, 64) == 0);
  EXPECT(te::math::valid_mask(0, 200) == ~uint64_t(0));
  EXPECT(te::math::bin_index(1, 2, 1, 2, 1) == ((1 << 3) | (2 << 1) | 1));
  EXPECT(te::math::first_observation(1, 3, 2) == 4);
  const uint64_t lags[2] = {0b1100, 0b1010};
  EXPECT(te::math::onehot_word(lags, 2, 3) == 0b1000);  // both bits set
  EXPECT(te::math::onehot_word(lags, 2, 1) == 0b0100);  // bit 0 set, bit 1 clear
}

void test_te_from_counts_matches_direct() {
  std::mt19937_64 rng(7);
  for (int k = 1; k <= 3; ++k)
    for (int l = 1; l <= 3; ++l) {
      std::vector<int64_t> c(int64_t(1) << (k + l + 1));
      for (auto& v : c) v = static_cast<int64_t>(rng() % 50);
      c[0] = 0;  // a zero-count bin
      const double got = te::math::te_from_joint_counts_direct(c.data(), k, l);
      EXPECT(std::fabs(got - std::max(0.0, direct_te(c, k, l))) < 1e-12);
    }
  std::vector<int64_t> zeros(8, 0);
  EXPECT(te::math::te_from_joint_counts_direct(zeros.data(), 1, 1) == 0.0);
}

void test_transpose8x8() {
  std::mt19937_64 rng(5);
  for (int it = 0; it < 2000; ++it) {
    const uint64_t x = rng();
    const uint64_t t = te::math::transpose8x8(x);
    for (int r = 0; r < 8; ++r)
      for (int m = 0; m < 8; ++m) EXPECT(((x >> (8 * r + m)) & 1) == ((t >> (8 * m + r)) & 1));
  }
}

void test_nibble_to_bytes() {
  for (uint32_t v = 0; v < 16; ++v) {
    uint32_t want = 0;
    for (int b = 0; b < 4; ++b) want |= ((v >> b) & 1u) << (8 * b);
    EXPECT(te::math::nibble_to_bytes(v) == want);
    EXPECT(te::math::nibble_to_bytes(v | 0xFFF0u) == want);  // higher bits are ignored
  }
}

// The GPU's fixed-order all-pairs reduction, run here on a cross-count matrix laid out
// as the GPU's (rows: sources' one-hot streams, columns: targets'), against the plug-in
// TE of each pair's joint counts counted directly from the series.
template <int K, int L, typename Cross>
void check_fixed_order(std::mt19937_64& rng) {
  const int64_t I = 3, J = 4, T = 180, sx = 1 << L, sy = 1 << (K + 1);
  const int64_t n0 = std::max<int64_t>(K, L);  // delay 1
  const int64_t nobs = T - n0;
  std::vector<std::vector<int>> x(I, std::vector<int>(T)), y(J, std::vector<int>(T));
  for (int64_t i = 0; i < I; ++i)
    for (auto& v : x[i]) v = i == 0 ? 0 : static_cast<int>(rng() % (i + 1) == 0);  // 0: constant
  for (int64_t j = 0; j < J; ++j)
    for (int64_t t = 0; t < T; ++t) y[j][t] = t > 0 && j % 2 ? x[1][t - 1] ^ (rng() % 7 == 0) : rng() % 2;
  auto xstate = [&](int64_t i, int64_t n) {
    int64_t s = 0;
    for (int m = 0; m < L; ++m) s |= int64_t(x[i][n - 1 - m]) << m;
    return s;
  };
  auto ystate = [&](int64_t j, int64_t n) {
    int64_t s = int64_t(y[j][n]) << K;
    for (int m = 0; m < K; ++m) s |= int64_t(y[j][n - 1 - m]) << m;
    return s;
  };
  const int64_t ld = J * (sy - 1);
  std::vector<Cross> cross(I * (sx - 1) * ld, 0);
  std::vector<int64_t> xcount(I * sx, 0), ycount(J * sy, 0);
  std::vector<std::vector<int64_t>> joint(I * J, std::vector<int64_t>(sx * sy, 0));
  for (int64_t n = n0; n < T; ++n) {
    for (int64_t i = 0; i < I; ++i) ++xcount[i * sx + xstate(i, n)];
    for (int64_t j = 0; j < J; ++j) ++ycount[j * sy + ystate(j, n)];
    for (int64_t i = 0; i < I; ++i)
      for (int64_t j = 0; j < J; ++j) {
        const int64_t xs = xstate(i, n), ys = ystate(j, n);
        ++joint[i * J + j][(ys << L) | xs];
        if (xs > 0 && ys > 0) ++cross[(i * (sx - 1) + xs - 1) * ld + j * (sy - 1) + ys - 1];
      }
  }
  std::vector<double> table(nobs + 1);
  const double n_ref = te::math::clog_reference(nobs);
  for (int64_t c = 0; c <= nobs; ++c) table[c] = te::math::clog2c(c, n_ref);
  for (int64_t j = 0; j < J; ++j) {
    const double target = te::math::target_sum_from_marginals(ycount.data() + j * sy, K,
                                                              te::math::TableClog{table.data()});
    for (int64_t i = 0; i < I; ++i) {
      const double got = te::math::te_of_pair_fixed_order<K, L>(
          cross.data(), ld, i, j, xcount.data(), ycount.data(), nobs, table.data(), target);
      const std::vector<int64_t>& c = joint[i * J + j];
      EXPECT(got == te::math::te_from_joint_counts_direct(c.data(), K, L));
      EXPECT(std::fabs(got - std::max(0.0, direct_te(c, K, L))) < 1e-12);
      if (i == 0) EXPECT(got == 0.0);  // a constant source carries nothing, exactly
    }
  }
}

void test_fixed_order_pair_te() {
  std::mt19937_64 rng(11);
  check_fixed_order<1, 1, int32_t>(rng);
  check_fixed_order<1, 2, int32_t>(rng);
  check_fixed_order<2, 1, int64_t>(rng);
  check_fixed_order<2, 2, int64_t>(rng);
  check_fixed_order<2, 2, int32_t>(rng);
}

void test_op_through_dispatcher() {
  auto op = c10::Dispatcher::singleton()
                .findSchemaOrThrow("te::joint_counts", "")
                .typed<at::Tensor(const at::Tensor&, const at::Tensor&, int64_t, int64_t, int64_t,
                                  std::optional<double>)>();
  const at::Tensor x = at::tensor({0, 1, 1, 0, 1, 0, 0, 1, 1, 1}, at::kLong).unsqueeze(1);
  at::Tensor y = at::zeros_like(x);
  y.narrow(0, 1, 9).copy_(x.narrow(0, 0, 9));  // y[n] = x[n-1]
  const at::Tensor c = op.call(x, y, 1, 1, 1, std::nullopt);
  EXPECT(c.sizes() == at::IntArrayRef({1, 1, 8}));
  // Count by hand: observations n = 1..9, bin = y[n]<<2 | y[n-1]<<1 | x[n-1].
  std::vector<int64_t> expect(8, 0);
  const auto xa = x.accessor<int64_t, 2>();
  const auto ya = y.accessor<int64_t, 2>();
  for (int n = 1; n < 10; ++n) ++expect[(ya[n][0] << 2) | (ya[n - 1][0] << 1) | xa[n - 1][0]];
  for (int b = 0; b < 8; ++b) EXPECT(c[0][0][b].item<int64_t>() == expect[b]);
}

}  // namespace

int main() {
  test_bits();
  test_te_from_counts_matches_direct();
  test_nibble_to_bytes();
  test_transpose8x8();
  test_fixed_order_pair_te();
  test_op_through_dispatcher();
  if (failures == 0) std::printf("te_cpp_tests: all passed\n");
  return failures == 0 ? 0 : 1;
}
