// The read-ahead ring (core/read_ahead.h) that slide scoring and predict
// share: batches consumed in order whatever order readers finish in, never
// more than readers + 1 prepared ahead, a reader's error raised in order
// after the batches before it, and a stop honoured between batches. Also run
// under ThreadSanitizer (histocnn_concurrency_tests).
#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <vector>

#include "core/read_ahead.h"

namespace histocnn {
namespace {

struct Numbers {
  int64_t id = -1;
  std::vector<int64_t> values;
};

TEST(ReadAhead, BatchesArriveInOrderAndNeverMoreThanReadersPlusOneAhead) {
  const int readers = 3;
  std::atomic<int64_t> filled{0}, consumed{0};
  std::atomic<int64_t> most_ahead{0};
  auto fill = [&](int64_t id, Numbers& b) {
    // Later batches finish first now and then: order must come from the ring.
    if (id % 4 == 0) std::this_thread::sleep_for(std::chrono::milliseconds(2));
    b.id = id;
    b.values.assign(size_t(id % 7 + 1), id * 10);
    const int64_t ahead = ++filled - consumed.load();
    int64_t seen = most_ahead.load();
    while (ahead > seen && !most_ahead.compare_exchange_weak(seen, ahead)) {
    }
  };
  std::vector<int64_t> order;
  auto consume = [&](int64_t id, const Numbers& b) {
    EXPECT_EQ(b.id, id);
    EXPECT_EQ(b.values.size(), size_t(id % 7 + 1));
    EXPECT_EQ(b.values.front(), id * 10);
    order.push_back(id);
    ++consumed;
  };
  const ReadAheadTimes times = read_ahead<Numbers>(readers, 200, fill, consume);
  ASSERT_EQ(order.size(), 200u);
  for (size_t i = 0; i < order.size(); ++i) EXPECT_EQ(order[i], int64_t(i));
  EXPECT_EQ(times.consumed, 200);
  EXPECT_LE(most_ahead.load(), readers + 1);
  EXPECT_GT(times.read_s, 0.0);
}

TEST(ReadAhead, AReadersErrorIsRaisedAfterTheBatchesBeforeIt) {
  std::vector<int64_t> order;
  auto fill = [](int64_t id, Numbers& b) {
    if (id == 5) throw std::runtime_error("slide.svs: a corrupt tile");
    b.id = id;
  };
  auto consume = [&](int64_t id, const Numbers&) { order.push_back(id); };
  try {
    read_ahead<Numbers>(2, 20, fill, consume);
    FAIL() << "the reader's error was lost";
  } catch (const std::runtime_error& e) {
    EXPECT_STREQ(e.what(), "slide.svs: a corrupt tile");
  }
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2, 3, 4}));
}

TEST(ReadAhead, AConsumersErrorJoinsTheReaders) {
  std::atomic<int> fills{0};
  auto fill = [&](int64_t, Numbers&) { ++fills; };
  auto consume = [](int64_t id, const Numbers&) {
    if (id == 3) throw std::runtime_error("device failed");
  };
  EXPECT_THROW(read_ahead<Numbers>(4, 1000, fill, consume), std::runtime_error);
  // The three batches consumed, then at most a ring (readers + 1) ahead:
  // no reader runs on after the error.
  EXPECT_LE(fills.load(), 3 + (4 + 1));
}

TEST(ReadAhead, AStopEndsItBetweenBatches) {
  std::atomic<bool> stop{false};
  std::vector<int64_t> order;
  auto fill = [](int64_t id, Numbers& b) { b.id = id; };
  auto consume = [&](int64_t id, const Numbers&) {
    order.push_back(id);
    if (id == 2) stop = true;
  };
  const ReadAheadTimes times = read_ahead<Numbers>(2, 100, fill, consume, &stop);
  EXPECT_EQ(order, (std::vector<int64_t>{0, 1, 2}));
  EXPECT_EQ(times.consumed, 3);
}

TEST(ReadAhead, NoBatchesIsNoWork) {
  int calls = 0;
  auto fill = [&](int64_t, Numbers&) { ++calls; };
  auto consume = [&](int64_t, const Numbers&) { ++calls; };
  EXPECT_EQ(read_ahead<Numbers>(2, 0, fill, consume).consumed, 0);
  EXPECT_EQ(calls, 0);
  EXPECT_THROW(read_ahead<Numbers>(-1, 3, fill, consume), std::exception);
}

// No readers: each batch filled and consumed on the calling thread, in turn,
// with the same order, errors and stop.
TEST(ReadAhead, WithoutReadersTheCallerFillsEachBatchInTurn) {
  const std::thread::id caller = std::this_thread::get_id();
  std::vector<int64_t> events;  // +id filled, -id - 1 consumed
  auto fill = [&](int64_t id, Numbers& b) {
    EXPECT_EQ(std::this_thread::get_id(), caller);
    if (id == 4) throw std::runtime_error("image 4 is corrupt");
    b.id = id;
    events.push_back(id);
  };
  auto consume = [&](int64_t id, const Numbers& b) {
    EXPECT_EQ(b.id, id);
    events.push_back(-id - 1);
  };
  EXPECT_THROW(read_ahead<Numbers>(0, 10, fill, consume), std::runtime_error);
  EXPECT_EQ(events, (std::vector<int64_t>{0, -1, 1, -2, 2, -3, 3, -4}));
  std::atomic<bool> stop{true};
  EXPECT_EQ(read_ahead<Numbers>(0, 10, fill, consume, &stop).consumed, 0);
}

}  // namespace
}  // namespace histocnn
