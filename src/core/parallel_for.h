// Independent jobs spread over threads: work(i) for every i in [0, count),
// each index claimed by the next free thread (jobs of uneven length balance
// themselves). The caller's thread is one of the `workers`.
//
// Errors: an exception from work(i) is kept per index, the other jobs still
// run, and afterwards the one of the lowest index is rethrown as an Error
// with its message. So the error a user sees (which file, which fold) does
// not depend on the threads' timing.
#pragma once

#include <cstddef>
#include <functional>

namespace histocnn {

// Requires: work is safe to call concurrently for different indices.
// workers < 1 counts as 1 (everything on the caller's thread, in order).
void parallel_for(size_t count, int workers, const std::function<void(size_t)>& work);

}  // namespace histocnn
