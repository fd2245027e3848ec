// The later conv blocks' weight and data gradient routes, chosen together
// (backends/cuda/later_routes.h): the pair of pooled routes is credited with
// the conv-output gradient the pool backward then does not write.
#include <gtest/gtest.h>

#include <string>

#include "backends/cuda/later_routes.h"
#include "core/error.h"

namespace histocnn::cuda {
namespace {

// Ours loses each gradient's weight contest alone (0.22 against 0.20 ms) but
// the pair wins: the pool backward without the conv output's gradient takes
// 0.03 ms instead of 0.10.
LaterRouteTimes close_contest() {
  LaterRouteTimes t;
  t.cudnn_weights = 0.20f, t.pooled_weights = 0.22f;
  t.cudnn_data = 0.30f, t.pooled_data = 0.25f;
  t.pool_backward_full = 0.10f, t.pool_backward_bias = 0.03f;
  return t;
}

std::string message_of(const LaterRouteTimes& t, const std::string& weights,
                       const std::string& data) {
  try {
    choose_later_routes(t, weights, data, "conv2");
  } catch (const Error& e) {
    return e.what();
  }
  return "";
}

TEST(LaterRoutes, EachPairsTotalCountsThePoolBackwardItNeeds) {
  const LaterRouteTimes t = close_contest();
  EXPECT_FLOAT_EQ(later_routes_total(t, false, false), 0.60f);
  EXPECT_FLOAT_EQ(later_routes_total(t, false, true), 0.55f);
  EXPECT_FLOAT_EQ(later_routes_total(t, true, false), 0.62f);
  EXPECT_FLOAT_EQ(later_routes_total(t, true, true), 0.50f);
  const auto totals = later_route_totals(t);
  ASSERT_EQ(totals.size(), 4u);
  EXPECT_EQ(totals[0].first, "cudnn+cudnn");
  EXPECT_EQ(totals[1].first, "cudnn+pooled");
  EXPECT_EQ(totals[2].first, "pooled+cudnn");
  EXPECT_EQ(totals[3].first, "pooled+pooled");
  EXPECT_FLOAT_EQ(totals[3].second, 0.50f);
}

// One gradient after the other would keep cuDNN's weight gradient here
// (0.20 < 0.22), then take ours for the data (0.55 in all); together, both
// of ours (0.50).
TEST(LaterRoutes, ThePairOfPooledRoutesWinsWhereTheSavingItMakesDecides) {
  const LaterRoutes r = choose_later_routes(close_contest(), "", "", "conv2");
  EXPECT_EQ(r.weights, "pooled");
  EXPECT_EQ(r.data, "pooled");
  EXPECT_FLOAT_EQ(r.total_ms, 0.50f);
  // Without the saving, the per-gradient choice stands.
  LaterRouteTimes no_saving = close_contest();
  no_saving.pool_backward_bias = no_saving.pool_backward_full;
  const LaterRoutes plain = choose_later_routes(no_saving, "", "", "conv2");
  EXPECT_EQ(plain.weights, "cudnn");
  EXPECT_EQ(plain.data, "pooled");
}

TEST(LaterRoutes, AForcedRouteLimitsThePairsToThoseThatTakeIt) {
  const LaterRouteTimes t = close_contest();
  const LaterRoutes w = choose_later_routes(t, "cudnn", "", "conv2");
  EXPECT_EQ(w.weights, "cudnn");
  EXPECT_EQ(w.data, "pooled");
  const LaterRoutes d = choose_later_routes(t, "", "cudnn", "conv2");
  EXPECT_EQ(d.weights, "cudnn");  // 0.60 against pooled + cudnn's 0.62
  EXPECT_EQ(d.data, "cudnn");
  const LaterRoutes both = choose_later_routes(t, "pooled", "cudnn", "conv2");
  EXPECT_EQ(both.weights, "pooled");
  EXPECT_EQ(both.data, "cudnn");
  EXPECT_FLOAT_EQ(both.total_ms, 0.62f);
}

// A forced route that does not apply, or an unknown one, is the user's
// error: one line naming the gradient, the route and what would run.
TEST(LaterRoutes, AForcedRouteThatDoesNotApplyIsRefusedByName) {
  LaterRouteTimes t = close_contest();
  t.pooled_weights = -1;
  const std::string weights = message_of(t, "pooled", "");
  EXPECT_NE(weights.find("conv2's weight gradient"), std::string::npos) << weights;
  EXPECT_NE(weights.find("'pooled' does not apply"), std::string::npos) << weights;
  EXPECT_NE(weights.find("cudnn does"), std::string::npos) << weights;
  t = close_contest();
  t.cudnn_data = t.pooled_data = -1;
  const std::string data = message_of(t, "", "cudnn");
  EXPECT_NE(data.find("conv2's data gradient"), std::string::npos) << data;
  EXPECT_NE(data.find("none does"), std::string::npos) << data;
  const std::string unknown = message_of(close_contest(), "fft", "");
  EXPECT_NE(unknown.find("unknown route 'fft'"), std::string::npos) << unknown;
  EXPECT_EQ(unknown.find('\n'), std::string::npos) << unknown;
}

// cuDNN's routes need the conv output's gradient: where it did not fit on
// the scratch (the full pool backward's time < 0), only the pooled pair is
// left, slower or not.
TEST(LaterRoutes, WithoutRoomForTheConvOutputsGradientOnlyThePooledPairIsLeft) {
  LaterRouteTimes t = close_contest();
  t.pooled_weights = 5.0f;
  t.pool_backward_full = -1;
  const LaterRoutes r = choose_later_routes(t, "", "", "conv3");
  EXPECT_EQ(r.weights, "pooled");
  EXPECT_EQ(r.data, "pooled");
  EXPECT_LT(later_routes_total(t, false, true), 0.0f);
  EXPECT_EQ(later_route_totals(t).size(), 1u);
  t.pooled_data = -1;
  const std::string none = message_of(t, "", "");
  EXPECT_NE(none.find("neither gradient route applies"), std::string::npos) << none;
}

// A side without our kernel (a 3x3 pool has no pooled data gradient) keeps
// cuDNN's route untimed (0); the other side's choice is its own contest.
TEST(LaterRoutes, ASideWithCudnnAloneLeavesTheOtherSidesContest) {
  LaterRouteTimes t;
  t.cudnn_weights = 0.20f, t.pooled_weights = 0.12f;
  t.cudnn_data = 0, t.pooled_data = -1;
  const LaterRoutes r = choose_later_routes(t, "", "", "conv2");
  EXPECT_EQ(r.weights, "pooled");
  EXPECT_EQ(r.data, "cudnn");
  // Ties go to cuDNN's routes, the earlier pairs.
  t.pooled_weights = 0.20f;
  EXPECT_EQ(choose_later_routes(t, "", "", "conv2").weights, "cudnn");
}

}  // namespace
}  // namespace histocnn::cuda
