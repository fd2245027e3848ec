// The batch loader: batches identical whatever the workers or the OpenMP
// team, workers sharing a window narrower than their number, failures in
// order, recycled buffers, and an early end. Also run under TSan
// (histocnn_concurrency_tests; scripts/test.sh).
#include <gtest/gtest.h>
#include <omp.h>

#include <algorithm>
#include <memory>
#include <string>
#include <vector>

#include "core/error.h"
#include "core/rng.h"
#include "counting_source.h"
#include "data/augment.h"
#include "data/dataset.h"
#include "data/loader.h"
#include "test_util.h"

namespace histocnn {
namespace {

// n examples of 8x8 pixels (all 7), labels alternating.
ExampleSet tiny_examples(int n) {
  return testing::uniform_examples(n, 8, 7);
}

std::vector<int> identity_order(int n) {
  std::vector<int> order(static_cast<size_t>(n));
  for (int i = 0; i < n; ++i) order[size_t(i)] = i;
  return order;
}

TEST(Loader, BatchesAreIdenticalWhateverTheWorkerCount) {
  ExampleSet set = tiny_examples(23);
  for (size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = uint8_t(i * 13);
  std::vector<int> order(23);
  for (int i = 0; i < 23; ++i) order[i] = (i * 5) % 23;
  AugmentOptions aug{true, true, 0.05f};
  auto collect = [&](int workers) {
    BatchLoader loader(set, order, 5, aug, 9, workers, 2);
    std::vector<float> all;
    std::vector<int> counts;
    for (Batch b; loader.next(b);) {
      counts.push_back(b.count);
      all.insert(all.end(), b.images.begin(), b.images.begin() + b.count * 3 * 64);
    }
    EXPECT_EQ(counts, (std::vector<int>{5, 5, 5, 5, 3}));
    return all;
  };
  EXPECT_EQ(collect(0), collect(1)) << "synchronous loading gives the same batches";
  EXPECT_EQ(collect(1), collect(4));
}

// With 0 workers the caller's OpenMP team prepares each batch: the batches
// must not depend on the team's size, and each row must be its own example's.
TEST(Loader, TeamBatchesAreIdenticalWhateverTheTeamSize) {
  ExampleSet set = tiny_examples(23);
  for (size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = uint8_t(i * 29 + 3);
  std::vector<int> order(23);
  for (int i = 0; i < 23; ++i) order[i] = (i * 7) % 23;
  AugmentOptions aug{true, true, 0.0f, 0.2f};  // the accurate preset's HED path
  auto collect = [&](int team, int workers) {
    const int before = omp_get_max_threads();
    omp_set_num_threads(team);
    BatchLoader loader(set, order, 6, aug, 11, workers, 2);
    std::vector<float> all;
    for (Batch b; loader.next(b);) {
      for (int i = 0; i < b.count; ++i) {  // row i is example_ids[i], augmented by its own seed
        std::vector<float> alone(3 * 64);
        uint64_t seed = 11 ^ (uint64_t(b.example_ids[size_t(i)]) * 0x9E3779B97F4A7C15ull);
        augment_to_chw(set.pixels_of(b.example_ids[size_t(i)]), 8, 8, aug, splitmix64(seed),
                       alone.data(), Normalization{});
        EXPECT_TRUE(std::equal(alone.begin(), alone.end(), b.images.begin() + i * 3 * 64))
            << "team " << team << ", row " << i;
      }
      all.insert(all.end(), b.images.begin(), b.images.begin() + b.count * 3 * 64);
    }
    omp_set_num_threads(before);
    EXPECT_GT(loader.wait_seconds(), 0.0) << "with 0 workers the preparation is the wait";
    return all;
  };
  const std::vector<float> one = collect(1, 0);
  EXPECT_EQ(one, collect(3, 0));
  EXPECT_EQ(one, collect(5, 0));
  EXPECT_EQ(one, collect(2, 2)) << "worker threads give the same batches";
}

TEST(Loader, WorkersBesideACpuStepNoneBesideADeviceStepOneFewerThanCores) {
  EXPECT_EQ(loader_workers_for(true, 16), 0);
  EXPECT_EQ(loader_workers_for(true, 1), 0);
  EXPECT_EQ(loader_workers_for(false, 16), 15);
  EXPECT_EQ(loader_workers_for(false, 1), 0);
}

TEST(Loader, AWorkerFailureReachesTheConsumerInOrder) {
  const ExampleSet set = tiny_examples(20);
  std::vector<int> order = identity_order(20);
  order[16] = 999;                    // batch 3 (of 5 examples each) refers to a missing example
  for (int workers : {0, 1, 3, 8}) {  // 8: more workers than the window's 1 batch
    BatchLoader loader(set, order, 5, AugmentOptions{}, 1, workers, workers > 3 ? 1 : 2);
    Batch b;
    for (int i = 0; i < 3; ++i) ASSERT_TRUE(loader.next(b)) << "batches before the failure arrive";
    try {
      loader.next(b);
      FAIL() << "expected the worker's error (workers " << workers << ")";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find("example 999"), std::string::npos) << e.what();
    }
  }
}

TEST(Loader, BatchBuffersAreRecycled) {
  const ExampleSet set = tiny_examples(200);
  const std::vector<int> order = identity_order(200);
  BatchLoader loader(set, order, 4, AugmentOptions{}, 1, 2, 2);
  int batches = 0;
  for (Batch b; loader.next(b);) ++batches;
  EXPECT_EQ(batches, 50);
  EXPECT_LE(loader.buffers_created(), 2 + 2 + 2) << "workers + depth + the caller's, recycled";
}

// More workers than the window holds batches (a GPU step's 15 workers and a
// window of 4): they share each batch's examples, and the batches are the
// same as one thread's, uneven and empty ones included (a process's share of
// a short batch can be 0 rows).
TEST(Loader, WorkersOutnumberingTheWindowShareItsBatchesAndGiveTheSameOnes) {
  ExampleSet set = tiny_examples(40);
  for (size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = uint8_t(i * 17 + 5);
  std::vector<int> order(40);
  for (int i = 0; i < 40; ++i) order[size_t(i)] = (i * 11) % 40;
  const std::vector<int> sizes = {7, 0, 13, 13, 1, 6};
  AugmentOptions aug{true, true, 0.05f};
  auto collect = [&](int workers, int depth) {
    BatchLoader loader(set, order, sizes, 13, aug, 5, workers, depth);
    std::vector<float> all;
    std::vector<int> counts, labels;
    for (Batch b; loader.next(b);) {
      counts.push_back(b.count);
      all.insert(all.end(), b.images.begin(), b.images.begin() + b.count * 3 * 64);
      labels.insert(labels.end(), b.labels.begin(), b.labels.begin() + b.count);
    }
    EXPECT_EQ(counts, sizes) << workers << " workers, window " << depth;
    EXPECT_EQ(labels.size(), 40u);
    EXPECT_LE(loader.buffers_created(), depth + 1) << "the window's batches and the caller's";
    return all;
  };
  const std::vector<float> alone = collect(0, 1);
  for (int depth : {1, 2})
    for (int workers : {2, 5, 16}) EXPECT_EQ(alone, collect(workers, depth));
}

// A pool keeps the buffers from one loader (epoch) to the next: however many
// epochs, no more are made than one loader holds at once (the window's
// `depth` batches and the caller's; how many of them a given epoch reaches
// depends on the threads' timing), and the batches are those of a loader
// without a pool. A loader left mid-epoch gives back every buffer it held.
TEST(Loader, APoolKeepsTheBuffersFromOneEpochToTheNext) {
  ExampleSet set = tiny_examples(30);
  for (size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = uint8_t(i * 7 + 1);
  const std::vector<int> order = identity_order(30);
  for (int workers : {0, 3}) {
    BatchPool pool;
    auto epoch = [&](uint64_t seed, BatchPool* p) {
      BatchLoader loader(set, order, 4, AugmentOptions{true, true, 0.0f}, seed, workers, 2,
                         Normalization{}, p);
      std::vector<float> all;
      for (Batch b; loader.next(b);)
        all.insert(all.end(), b.images.begin(), b.images.begin() + b.count * 3 * 64);
      return std::make_pair(all, loader.buffers_created());
    };
    const auto first = epoch(1, &pool);
    EXPECT_GT(first.second, 0);
    const size_t kept = pool.buffers();
    EXPECT_EQ(kept, size_t(first.second)) << "every buffer made came back";
    const int most = workers == 0 ? 1 : 2 + 1;  // depth 2 and the caller's
    int made = first.second;
    for (uint64_t seed = 2; seed <= 5; ++seed) {
      const auto later = epoch(seed, &pool);
      made += later.second;
      EXPECT_EQ(later.first, epoch(seed, nullptr).first);
    }
    EXPECT_LE(made, most) << "buffers made over five epochs, workers " << workers;
    EXPECT_EQ(pool.buffers(), size_t(made));
    const size_t kept_now = pool.buffers();
    {
      BatchLoader left(set, order, 4, AugmentOptions{}, 3, workers, 2, Normalization{}, &pool);
      Batch b;
      ASSERT_TRUE(left.next(b));
    }
    EXPECT_GE(pool.buffers() + 1, kept_now) << "all but the caller's, still held";
  }
}

// A pool with a source (a device step's input_buffers()): every batch the
// caller sees lies in one buffer of the source, the second epoch takes none,
// the batches are those of ordinary memory, and every buffer goes back to
// the source — once the pool changes source or goes.
TEST(Loader, APoolsSourceMakesEveryBatchTheCallerSees) {
  ExampleSet set = tiny_examples(30);
  for (size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = uint8_t(i * 5 + 3);
  const std::vector<int> order = identity_order(30);
  const size_t batch_bytes = size_t(4) * 3 * 64 * sizeof(float);
  for (int workers : {0, 3}) {
    auto source = std::make_shared<testing::CountingSource>();
    {
      BatchPool pool;
      pool.use_source(source);
      auto epoch = [&](uint64_t seed, BatchPool* p) {
        BatchLoader loader(set, order, 4, AugmentOptions{true, true, 0.0f}, seed, workers, 2,
                           Normalization{}, p);
        std::vector<float> all;
        for (Batch b; loader.next(b);) {
          if (p && p->source()) {
            EXPECT_TRUE(source->ranges.covers(b.images.data(), batch_bytes));
          }
          all.insert(all.end(), b.images.begin(), b.images.begin() + b.count * 3 * 64);
        }
        return all;
      };
      const auto first = epoch(1, &pool);
      EXPECT_GT(source->allocations, 0);
      EXPECT_EQ(source->live(), pool.buffers()) << "all back in the pool, workers " << workers;
      for (uint64_t seed = 2; seed <= 5; ++seed)
        EXPECT_EQ(epoch(seed, &pool), epoch(seed, nullptr));
      EXPECT_LE(source->allocations, workers == 0 ? 1 : 3) << "no more than one loader holds";
      const int made = source->allocations;
      EXPECT_EQ(pool.buffers(), size_t(made));
      pool.use_source(source);  // the same source: the buffers stay
      EXPECT_EQ(pool.buffers(), size_t(made));
      pool.use_source(nullptr);  // another source: they go back to theirs
      EXPECT_EQ(pool.buffers(), 0u);
      EXPECT_EQ(source->live(), 0u);
      EXPECT_EQ(first, epoch(1, &pool)) << "ordinary memory again, the same batches";
      EXPECT_EQ(source->allocations, made);
    }
    EXPECT_EQ(source->allocations, source->deallocations);
    EXPECT_EQ(source->mismatched, 0);
  }
}

// A pool for bytes (a step that expands images itself): every batch holds
// bytes and tables in the pool's source, whose expansion is the float
// batch of the same epoch, whatever the workers; switching the form drops the
// kept buffers; augmentation bytes cannot carry is refused up front.
TEST(Loader, APoolForBytesMakesBatchesWhoseLookupIsTheFloatBatch) {
  ExampleSet set = tiny_examples(30);
  for (size_t i = 0; i < set.pixels.size(); ++i) set.pixels[i] = uint8_t(i * 11 + 5);
  const std::vector<int> order = identity_order(30);
  const AugmentOptions augment{true, true, 0.05f};
  for (int workers : {0, 3}) {
    auto source = std::make_shared<testing::CountingSource>();
    BatchPool pool;
    pool.use_source(source, ImageForm::kBytes);
    auto epoch = [&](uint64_t seed, BatchPool* p) {
      BatchLoader loader(set, order, 4, augment, seed, workers, 2, Normalization{}, p);
      std::vector<float> all;
      for (Batch b; loader.next(b);) {
        std::vector<float> floats(size_t(b.count) * 3 * 64);
        if (p) {
          EXPECT_TRUE(b.as_bytes() && b.images.empty());
          EXPECT_TRUE(source->ranges.covers(b.pixels.data(), size_t(4) * 64 * 3));
          EXPECT_TRUE(source->ranges.covers(b.tables.data(), size_t(4) * 768 * sizeof(float)));
          expand_byte_images(b.byte_images(), b.count, b.count, 64, floats.data());
        } else {
          EXPECT_FALSE(b.as_bytes());
          floats.assign(b.images.begin(), b.images.begin() + b.count * 3 * 64);
        }
        all.insert(all.end(), floats.begin(), floats.end());
      }
      return all;
    };
    for (uint64_t seed = 1; seed <= 3; ++seed) EXPECT_EQ(epoch(seed, &pool), epoch(seed, nullptr));
    EXPECT_GT(pool.buffers(), 0u);
    pool.use_source(source, ImageForm::kFloats);  // the same source, another form
    EXPECT_EQ(pool.buffers(), 0u);
    EXPECT_EQ(source->live(), 0u);
    pool.use_source(source, ImageForm::kBytes);
    AugmentOptions hed;
    hed.hed_jitter = 0.05f;
    const std::string message = testing::error_of(
        [&] { BatchLoader(set, order, 4, hed, 1, workers, 2, Normalization{}, &pool); });
    EXPECT_NE(message.find("HED"), std::string::npos) << message;
    EXPECT_EQ(source->mismatched, 0);
  }
}

// A loader left before its last batch (an interrupted epoch) stops its
// workers, whatever they were doing, without waiting for the rest.
TEST(Loader, ALoaderLeftMidEpochStopsItsWorkers) {
  const ExampleSet set = tiny_examples(400);
  const std::vector<int> order = identity_order(400);
  for (int workers : {1, 3, 8}) {
    BatchLoader loader(set, order, 10, AugmentOptions{true, true, 0.05f}, 1, workers, 2);
    Batch b;
    ASSERT_TRUE(loader.next(b));
    EXPECT_EQ(b.count, 10);
  }
}

}  // namespace
}  // namespace histocnn
