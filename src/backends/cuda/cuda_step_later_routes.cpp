// The weight and data gradients of the conv blocks after the first: each
// side's kernels timed alone on scratch when the step is built
// (cuda_step_pooled_wgrad.cpp, cuda_step_pooled_dgrad.cpp), then the two
// routes chosen together (later_routes.h: the pair of pooled routes also
// spares the pool backward its conv-output gradient), or the ones
// StepOptions::cuda_pooled_wgrad_route / cuda_pooled_dgrad_route name.
// metrics.json records every time, each pair's total and the routes taken
// (`backward_filter_route`, `backward_data_route`).
#include <string>
#include <tuple>
#include <vector>

#include "backends/cuda/cuda_step.h"
#include "backends/cuda/cudnn_algorithms.h"
#include "backends/cuda/later_routes.h"
#include "core/error.h"

namespace histocnn::cuda {

void CudaTrainingStep::choose_later_gradients(ConvLayer& c, size_t k, bool cudnn_has_weights,
                                              nlohmann::json& record) {
  if (k == 0) return;
  const std::string block = "conv" + std::to_string(k + 1);
  const std::vector<PooledWgradPlan> weight_plans = pooled_wgrad_plans(c, k);
  const std::vector<PooledDgradPlan> data_plans = pooled_dgrad_plans(c, k);
  require(!weight_plans.empty() || options_.cuda_pooled_wgrad_route != "pooled",
          block +
              "'s weight gradient: the route 'pooled' does not apply to this network here (it "
              "needs a max pool with the bias and ReLU after it, kernel 3 or 5, and its partial "
              "sums within the workspace limit)");
  require(!data_plans.empty() || options_.cuda_pooled_dgrad_route != "pooled",
          block +
              "'s data gradient: the route 'pooled' does not apply to this network here (it needs "
              "a 2x2 max pool with the bias and ReLU after it, kernel 3 or 5, 'valid' or 'same' "
              "padding)");
  if (weight_plans.empty() && data_plans.empty()) return;
  // A side without our kernel has cuDNN's route alone: not timed (0 in
  // every pair), and the pool backward is then the same on every pair.
  LaterRouteTimes times;
  times.cudnn_weights = times.cudnn_data = 0;
  PooledWgradPlan weights;
  if (!weight_plans.empty()) {
    nlohmann::json w = nlohmann::json::object();
    std::tie(weights, times.pooled_weights) = time_pooled_wgrad(weight_plans, k, w);
    times.cudnn_weights = cudnn_has_weights ? time_cudnn_filter_choice(c, k) : -1.0f;
    if (times.cudnn_weights >= 0)
      w[std::string("cudnn_") + bwd_filter_name(int(c.bwd_filter))] = times.cudnn_weights;
    else
      w["cudnn"] = cudnn_has_weights ? "its workspace did not fit" : "no deterministic algorithm";
    record["backward_filter_ms"] = w;
  }
  DgradContest data;
  if (!data_plans.empty()) {
    nlohmann::json d = nlohmann::json::object();
    data = time_pooled_dgrad(c, k, data_plans, !weight_plans.empty(), d);
    times.pooled_data = data.pooled_ms;
    times.cudnn_data = data.cudnn_ms;
    times.pool_backward_full = data.pool_full_ms;
    times.pool_backward_bias = data.pool_bias_ms;
    record["backward_data_ms"] = d;
  }
  const LaterRoutes routes = choose_later_routes(times, options_.cuda_pooled_wgrad_route,
                                                 options_.cuda_pooled_dgrad_route, block);
  if (!weight_plans.empty() && !data_plans.empty()) {
    record["pool_backward_ms"] = {{"with_conv_output_gradient", times.pool_backward_full},
                                  {"bias_sums_alone", times.pool_backward_bias}};
    nlohmann::json totals = nlohmann::json::object();
    for (const auto& [pair, ms] : later_route_totals(times)) totals[pair] = ms;
    record["later_gradients_ms"] = totals;
  }
  if (!weight_plans.empty()) record["backward_filter_route"] = routes.weights;
  if (!data_plans.empty()) record["backward_data_route"] = routes.data;
  if (routes.weights == "pooled") {
    c.pooled_wgrad = weights;
    c.workspace.backward_filter = weights.workspace_bytes;
    record["backward_filter"] = pooled_wgrad_name(weights.outs_per_warp);
    record["backward_filter_workspace"] = weights.workspace_bytes;
  }
  if (routes.data == "pooled") {
    c.pooled_dgrad = data.fastest;
    c.workspace.backward_data = 0;
    record["backward_data"] = pooled_dgrad_name(data.fastest.tile_windows);
    record["backward_data_workspace"] = 0;
  }
}

}  // namespace histocnn::cuda
