#include "core/parallel_for.h"

#include <algorithm>
#include <atomic>
#include <exception>
#include <string>
#include <thread>
#include <vector>

#include "core/error.h"

namespace histocnn {

void parallel_for(size_t count, int workers, const std::function<void(size_t)>& work) {
  std::vector<std::string> errors(count);
  std::vector<char> failed(count, 0);  // an exception may carry an empty message
  std::atomic<size_t> next{0};
  auto run = [&] {
    for (size_t i; (i = next++) < count;) {
      try {
        work(i);
      } catch (const std::exception& error) {
        errors[i] = error.what();
        failed[i] = 1;
      }
    }
  };
  const size_t threads = std::min(count, size_t(std::max(1, workers)));
  std::vector<std::thread> pool;
  for (size_t t = 1; t < threads; ++t) pool.emplace_back(run);
  run();
  for (auto& t : pool) t.join();
  for (size_t i = 0; i < count; ++i)
    if (failed[i]) throw Error(errors[i]);
}

}  // namespace histocnn
