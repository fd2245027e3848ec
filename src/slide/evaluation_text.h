// What the slide-level and the tile-level evaluations (slide_evaluation.h,
// tile_evaluation.h) share in their JSON and headlines: rates that are NaN
// without cases, NaN written as null, intervals as [low, high], and the AUC
// part of a headline.
#pragma once

#include <cmath>
#include <cstdio>
#include <nlohmann/json.hpp>
#include <string>

#include "train/bootstrap.h"
#include "train/metrics.h"

namespace histocnn::evaluation_text {

inline double rate(double hits, double of) {
  return of > 0 ? hits / of : std::nan("");
}
inline double sensitivity_of(const Metrics& m) {
  return rate(m.tp, m.tp + m.fn);
}
inline double specificity_of(const Metrics& m) {
  return rate(m.tn, m.tn + m.fp);
}

inline nlohmann::json number_or_null(double v) {
  return std::isnan(v) ? nlohmann::json(nullptr) : nlohmann::json(v);
}
inline nlohmann::json interval_json(const Interval& i) {
  return i.samples ? nlohmann::json::array({i.low, i.high}) : nlohmann::json(nullptr);
}

// "0.988" at `digits` decimals, or "n/a" for NaN.
inline std::string fixed_or_na(double v, int digits) {
  char text[32];
  std::snprintf(text, sizeof text, "%.*f", digits, v);
  return std::isnan(v) ? std::string("n/a") : std::string(text);
}

// "AUC 0.997 (95% CI 0.995-0.999 over 8 patients)", the interval only when
// the bootstrap gave one; "AUC n/a (<why_missing>)" for a NaN AUC.
inline std::string auc_headline(double auc, const Interval& interval, int units,
                                const std::string& unit, const std::string& why_missing) {
  if (std::isnan(auc)) return "AUC n/a (" + why_missing + ")";
  char text[96];
  std::snprintf(text, sizeof text, "AUC %.3f", auc);
  std::string line = text;
  if (interval.samples) {
    std::snprintf(text, sizeof text, " (95%% CI %.3f-%.3f over %d %ss)", interval.low,
                  interval.high, units, unit.c_str());
    line += text;
  }
  return line;
}

}  // namespace histocnn::evaluation_text
