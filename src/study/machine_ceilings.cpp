#include "study/machine_ceilings.h"

#include <dnnl.h>

#include <algorithm>
#include <cstdio>
#include <thread>

#include "core/error.h"
#include "core/rng.h"
#include "core/stopwatch.h"

namespace histocnn {

std::vector<double> sgemm_gflops(int n, int runs) {
  require(n >= 1 && runs >= 1, "sgemm_gflops: n and runs must be at least 1");
  std::vector<float> a(size_t(n) * n), b(size_t(n) * n), c(size_t(n) * n);
  Rng rng(1);
  for (auto& x : a) x = float(rng.uniform());
  for (auto& x : b) x = float(rng.uniform());
  std::vector<double> rates;
  for (int i = 0; i <= runs; ++i) {
    const auto t = Clock::now();
    dnnl_sgemm('N', 'N', n, n, n, 1.0f, a.data(), n, b.data(), n, 0.0f, c.data(), n);
    const double s = seconds_since(t);
    if (i > 0) rates.push_back(2.0 * n * n * double(n) / s / 1e9);
  }
  return rates;
}

double triad_gbs(int threads, size_t floats, int runs) {
  require(threads >= 1 && floats >= size_t(threads) && runs >= 1,
          "triad_gbs: threads, floats and runs must be at least 1");
  std::vector<float> a(floats), b(floats), c(floats);
  auto slices = [&](auto&& body) {
    std::vector<std::thread> pool;
    for (int t = 0; t < threads; ++t)
      pool.emplace_back([&, t] {
        body(floats * size_t(t) / size_t(threads), floats * size_t(t + 1) / size_t(threads));
      });
    for (auto& th : pool) th.join();
  };
  slices([&](size_t lo, size_t hi) {
    for (size_t i = lo; i < hi; ++i) a[i] = 0, b[i] = 1, c[i] = 2;
  });
  double best = 0;
  for (int r = 0; r <= runs; ++r) {
    const auto t = Clock::now();
    slices([&](size_t lo, size_t hi) {
      for (size_t i = lo; i < hi; ++i) a[i] = b[i] + 3.0f * c[i];
    });
    const double s = seconds_since(t);
    if (r > 0) best = std::max(best, 3.0 * double(floats) * sizeof(float) / s / 1e9);
  }
  return best;
}

nlohmann::json measure_ceilings(int threads, int sgemm_n, size_t triad_floats) {
  const std::vector<double> sgemm = sgemm_gflops(sgemm_n);
  return {{"threads", threads},
          {"sgemm_n", sgemm_n},
          {"sgemm_gflops", *std::max_element(sgemm.begin(), sgemm.end())},
          {"sgemm_gflops_all", sgemm},
          {"triad_gbs", triad_gbs(threads, triad_floats)}};
}

std::string ceilings_line(const nlohmann::json& c) {
  const int threads = c.value("threads", 0);
  char line[160];
  std::snprintf(line, sizeof line,
                "ceilings on %d thread%s: sgemm %.1f GFLOP/s, memory triad %.1f GB/s", threads,
                threads == 1 ? "" : "s", c.value("sgemm_gflops", 0.0), c.value("triad_gbs", 0.0));
  return line;
}

}  // namespace histocnn
