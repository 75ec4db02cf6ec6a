// C++ tests of the shared HOST_DEVICE math and of the ops through the
// dispatcher, against a direct plug-in estimate written here from the
// definition. Run through ctest (see CMakeLists.txt).
#include <ATen/ATen.h>
#include <ATen/core/dispatch/Dispatcher.h>

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
  test_op_through_dispatcher();
  if (failures == 0) std::printf("te_cpp_tests: all passed\n");
  return failures == 0 ? 0 : 1;
}
