// The joint choice of later_routes.h.
#include "backends/cuda/later_routes.h"

#include "core/error.h"

namespace histocnn::cuda {
namespace {

const char* route_name(bool pooled) {
  return pooled ? "pooled" : "cudnn";
}

// A route forced by name must apply: the one-line refusal otherwise.
void require_applies(const std::string& forced, float cudnn_ms, float pooled_ms,
                     const std::string& what) {
  if (forced.empty()) return;
  require(forced == "cudnn" || forced == "pooled",
          what + ": unknown route '" + forced + "' (cudnn or pooled)");
  const float ms = forced == "pooled" ? pooled_ms : cudnn_ms;
  const char* other = forced == "pooled" ? "cudnn" : "pooled";
  const float other_ms = forced == "pooled" ? cudnn_ms : pooled_ms;
  require(ms >= 0, what + ": the route '" + forced + "' does not apply to this network here (" +
                       (other_ms >= 0 ? other : "none") + " does)");
}

}  // namespace

float later_routes_total(const LaterRouteTimes& t, bool pooled_weights, bool pooled_data) {
  const float weights = pooled_weights ? t.pooled_weights : t.cudnn_weights;
  const float data = pooled_data ? t.pooled_data : t.cudnn_data;
  if (weights < 0 || data < 0) return -1;
  const float pool = pooled_weights && pooled_data ? t.pool_backward_bias : t.pool_backward_full;
  if (pool < 0) return -1;
  return weights + data + pool;
}

std::vector<std::pair<std::string, float>> later_route_totals(const LaterRouteTimes& t) {
  std::vector<std::pair<std::string, float>> totals;
  for (bool pooled_weights : {false, true})
    for (bool pooled_data : {false, true}) {
      const float ms = later_routes_total(t, pooled_weights, pooled_data);
      if (ms >= 0)
        totals.emplace_back(std::string(route_name(pooled_weights)) + "+" + route_name(pooled_data),
                            ms);
    }
  return totals;
}

LaterRoutes choose_later_routes(const LaterRouteTimes& t, const std::string& forced_weights,
                                const std::string& forced_data, const std::string& block) {
  require_applies(forced_weights, t.cudnn_weights, t.pooled_weights, block + "'s weight gradient");
  require_applies(forced_data, t.cudnn_data, t.pooled_data, block + "'s data gradient");
  LaterRoutes best;
  for (bool pooled_weights : {false, true})
    for (bool pooled_data : {false, true}) {
      if (!forced_weights.empty() && forced_weights != route_name(pooled_weights)) continue;
      if (!forced_data.empty() && forced_data != route_name(pooled_data)) continue;
      const float ms = later_routes_total(t, pooled_weights, pooled_data);
      if (ms < 0 || (best.total_ms >= 0 && ms >= best.total_ms)) continue;
      best = {route_name(pooled_weights), route_name(pooled_data), ms};
    }
  require(best.total_ms >= 0, block + ": neither gradient route applies to this network here");
  return best;
}

}  // namespace histocnn::cuda
