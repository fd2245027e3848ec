// core/parallel_for.h: every index once, on the threads asked for, and the
// error a user sees independent of the threads' timing. Also run under TSan
// (histocnn_concurrency_tests).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <set>
#include <stdexcept>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"
#include "core/parallel_for.h"
#include "test_util.h"

namespace histocnn {
namespace {

TEST(ParallelFor, RunsEveryIndexOnceOnAtMostTheWorkersAsked) {
  for (int workers : {0, 1, 3, 64}) {
    std::vector<std::atomic<int>> runs(50);
    std::mutex mutex;
    std::set<std::thread::id> threads;
    parallel_for(runs.size(), workers, [&](size_t i) {
      runs[i]++;
      std::lock_guard<std::mutex> lock(mutex);
      threads.insert(std::this_thread::get_id());
    });
    for (const auto& r : runs) EXPECT_EQ(r.load(), 1) << workers << " workers";
    EXPECT_LE(threads.size(), size_t(std::max(1, workers)));
    if (workers <= 1) {
      EXPECT_EQ(threads, std::set{std::this_thread::get_id()}) << "on the caller's thread";
    }
  }
  parallel_for(0, 4, [](size_t) { FAIL() << "no jobs, no calls"; });
}

TEST(ParallelFor, TheLowestFailingIndexIsReportedAfterEveryJobRan) {
  for (int round = 0; round < 20; ++round) {
    std::atomic<int> done{0};
    const std::string error = testing::error_of([&] {
      parallel_for(40, 4, [&](size_t i) {
        ++done;
        // Later failures finish first, so timing alone would report them.
        if (i == 7) {
          std::this_thread::sleep_for(std::chrono::milliseconds(2));
          throw std::runtime_error("job 7 failed");
        }
        if (i == 31) throw std::runtime_error("job 31 failed");
      });
    });
    EXPECT_EQ(error, "job 7 failed");
    EXPECT_EQ(done.load(), 40) << "the other jobs still ran";
  }
  EXPECT_THROW(parallel_for(3, 2, [](size_t) { throw std::runtime_error(""); }), Error)
      << "an empty message is still an error";
}

}  // namespace
}  // namespace histocnn
