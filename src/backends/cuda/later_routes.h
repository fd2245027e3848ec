// The two gradient routes of a conv block after the first, chosen together
// (the CUDA step's contest, cuda_step_later_routes.cpp; plain C++, so the
// choice is tested on the host).
//
// Each gradient has two routes: cuDNN's algorithm on the conv output's
// gradient, or our kernel from the pooled gradient (pooled_wgrad_kernels.h,
// pooled_dgrad_kernels.h). The pool backward before them writes the conv
// output's gradient whenever one of cuDNN's routes reads it; only with both
// gradients from the pooled gradient does it sum the bias alone. That saving
// belongs to the pair, not to either route: choosing each gradient alone,
// one after the other, kept cuDNN's weight gradient wherever ours lost by
// less than the saving the pair would have made.
//
//   total(weights, data) = weights' kernel + data's kernel
//                          + pool backward (bias sums alone for pooled +
//                            pooled, with the conv output's gradient else)
//
// Each kernel is timed alone on scratch buffers when the step is built; the
// pair with the least total is kept.
#pragma once

#include <string>
#include <vector>

namespace histocnn::cuda {

// Milliseconds of each kernel alone; < 0: the route does not apply here
// (our kernel's plan does not, or cuDNN's algorithm or workspace is missing).
struct LaterRouteTimes {
  float cudnn_weights = -1, pooled_weights = -1;
  float cudnn_data = -1, pooled_data = -1;
  // The pool backward writing the conv output's gradient and the bias sums,
  // and writing the bias sums alone. Both 0 where they were not timed
  // (pooled + pooled does not apply: the same pool backward on every pair);
  // < 0: the pairs that need it do not apply (its output did not fit).
  float pool_backward_full = 0, pool_backward_bias = 0;
};

struct LaterRoutes {
  std::string weights, data;  // "cudnn" or "pooled"
  float total_ms = -1;
};

// One pair's total; < 0 where either route does not apply.
float later_routes_total(const LaterRouteTimes& t, bool pooled_weights, bool pooled_data);

// Every pair that applies, in the order cudnn+cudnn, cudnn+pooled,
// pooled+cudnn, pooled+pooled (named "WEIGHTS+DATA"), with its total: what
// metrics.json records.
std::vector<std::pair<std::string, float>> later_route_totals(const LaterRouteTimes& t);

// requires: forced_weights and forced_data each "", "cudnn" or "pooled"; at
//           least one pair applies.
// ensures:  the pair with the least total among those that apply and take
//           the forced routes (ties: the earlier pair above, cuDNN's first);
//           a forced route that does not apply throws one line naming
//           `what` ("conv2's weight gradient", "conv2's data gradient")
//           and the routes that do.
LaterRoutes choose_later_routes(const LaterRouteTimes& t, const std::string& forced_weights,
                                const std::string& forced_data, const std::string& block);

}  // namespace histocnn::cuda
