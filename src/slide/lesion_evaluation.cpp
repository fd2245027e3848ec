#include "slide/lesion_evaluation.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <map>
#include <numeric>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "slide/evaluation_text.h"
#include "study/gnuplot.h"

namespace histocnn {
namespace {

constexpr std::array<double, 6> kFpRates = {0.25, 0.5, 1, 2, 4, 8};

double segment_distance(double px, double py, double ax, double ay, double bx, double by) {
  const double dx = bx - ax, dy = by - ay, length2 = dx * dx + dy * dy;
  const double t =
      length2 > 0 ? std::clamp(((px - ax) * dx + (py - ay) * dy) / length2, 0.0, 1.0) : 0.0;
  return std::hypot(px - ax - t * dx, py - ay - t * dy);
}

// The distance from the point to the ring's outline.
double ring_distance(const Ring& r, double x, double y) {
  double best = INFINITY;
  for (size_t i = 0, j = r.x.size() - 1; i < r.x.size(); j = i++)
    best = std::min(best, segment_distance(x, y, r.x[j], r.y[j], r.x[i], r.y[i]));
  return best;
}

// Whether two regions overlap or their outlines come within `gap`.
bool regions_within(const Region& a, const Region& b, double gap) {
  if (a.min_x - gap > b.max_x || b.min_x - gap > a.max_x || a.min_y - gap > b.max_y ||
      b.min_y - gap > a.max_y)
    return false;
  const Ring &ra = a.rings.front(), &rb = b.rings.front();
  if (b.contains(ra.x[0], ra.y[0]) || a.contains(rb.x[0], rb.y[0])) return true;
  for (size_t i = 0; i < ra.x.size(); ++i)
    if (ring_distance(rb, ra.x[i], ra.y[i]) <= gap) return true;
  for (size_t i = 0; i < rb.x.size(); ++i)
    if (ring_distance(ra, rb.x[i], rb.y[i]) <= gap) return true;
  return false;
}

size_t root(std::vector<size_t>& parent, size_t i) {
  while (parent[i] != i) i = parent[i] = parent[parent[i]];
  return i;
}

}  // namespace

std::vector<Lesion> find_lesions(const Annotations& a, double um_per_pixel,
                                 const LesionOptions& o) {
  require(um_per_pixel > 0, "find_lesions: the slide's microns per pixel");
  const std::vector<Region>& r = a.malignant;
  std::vector<size_t> parent(r.size());
  std::iota(parent.begin(), parent.end(), size_t(0));
  const double gap = 2 * o.dilation_um / um_per_pixel;
  for (size_t i = 0; i < r.size(); ++i)
    for (size_t j = i + 1; j < r.size(); ++j)
      if (root(parent, i) != root(parent, j) && regions_within(r[i], r[j], gap))
        parent[root(parent, i)] = root(parent, j);
  std::map<size_t, Lesion> by_root;
  for (size_t i = 0; i < r.size(); ++i) {
    Lesion& l = by_root[root(parent, i)];
    if (l.regions.empty()) {
      l.min_x = r[i].min_x, l.min_y = r[i].min_y, l.max_x = r[i].max_x, l.max_y = r[i].max_y;
    }
    l.regions.push_back(i);
    l.min_x = std::min(l.min_x, r[i].min_x), l.max_x = std::max(l.max_x, r[i].max_x);
    l.min_y = std::min(l.min_y, r[i].min_y), l.max_y = std::max(l.max_y, r[i].max_y);
  }
  std::vector<Lesion> lesions;
  for (auto& [key, l] : by_root) {
    l.itc = std::max(l.max_x - l.min_x, l.max_y - l.min_y) * um_per_pixel < o.itc_um;
    lesions.push_back(std::move(l));
  }
  return lesions;
}

std::vector<Detection> detect_lesions(const std::vector<Tile>& tiles,
                                      const std::vector<Prediction>& predictions,
                                      double um_per_pixel, const LesionOptions& o) {
  require(tiles.size() == predictions.size(), "detect_lesions: one prediction per tile");
  require(um_per_pixel > 0, "detect_lesions: the slide's microns per pixel");
  std::vector<size_t> order(tiles.size());
  std::iota(order.begin(), order.end(), size_t(0));
  std::stable_sort(order.begin(), order.end(), [&](size_t a, size_t b) {
    return predictions[a].p_malignant > predictions[b].p_malignant;
  });
  std::map<std::pair<int64_t, int64_t>, size_t> at;  // (column, row) -> tile
  for (size_t i = 0; i < tiles.size(); ++i) at[{tiles[i].column, tiles[i].row}] = i;
  const double radius = o.nms_um / um_per_pixel;
  std::vector<bool> suppressed(tiles.size(), false);
  std::vector<Detection> detections;
  for (size_t i : order) {
    if (suppressed[i] || predictions[i].p_malignant < o.min_p) continue;
    const Tile& t = tiles[i];
    const double cx = double(t.x) + double(t.width) / 2, cy = double(t.y) + double(t.height) / 2;
    detections.push_back({cx, cy, predictions[i].p_malignant});
    const int64_t reach = int64_t(std::ceil(radius / double(std::max<int64_t>(1, t.width))));
    for (int64_t dc = -reach; dc <= reach; ++dc)
      for (int64_t dr = -reach; dr <= reach; ++dr) {
        const auto n = at.find({t.column + dc, t.row + dr});
        if (n == at.end()) continue;
        const Tile& u = tiles[n->second];
        if (std::hypot(double(u.x) + double(u.width) / 2 - cx,
                       double(u.y) + double(u.height) / 2 - cy) <= radius)
          suppressed[n->second] = true;
      }
  }
  return detections;
}

int lesion_hit(const std::vector<Lesion>& lesions, const Annotations& a, double x, double y,
               double tolerance) {
  const bool excluded = a.excluded_at(x, y);
  for (size_t l = 0; l < lesions.size(); ++l) {
    const Lesion& lesion = lesions[l];
    if (x < lesion.min_x - tolerance || x > lesion.max_x + tolerance ||
        y < lesion.min_y - tolerance || y > lesion.max_y + tolerance)
      continue;
    for (size_t i : lesion.regions) {
      const Region& r = a.malignant[i];
      const bool hit =
          (r.contains(x, y) && !excluded) || ring_distance(r.rings.front(), x, y) <= tolerance;
      if (hit) return lesion.itc ? -2 : int(l);
    }
  }
  return -1;
}

LesionSlide lesion_slide(const std::string& slide, const Annotations* annotations,
                         const std::vector<Tile>& tiles, const std::vector<Prediction>& predictions,
                         double um_per_pixel, const LesionOptions& o) {
  LesionSlide s;
  s.slide = slide;
  const std::vector<Lesion> lesions =
      annotations ? find_lesions(*annotations, um_per_pixel, o) : std::vector<Lesion>{};
  for (const Lesion& l : lesions) s.lesions += !l.itc;
  for (const Detection& d : detect_lesions(tiles, predictions, um_per_pixel, o)) {
    const int hit = annotations
                        ? lesion_hit(lesions, *annotations, d.x, d.y, o.dilation_um / um_per_pixel)
                        : -1;
    if (hit != -2) s.detections.push_back({d.p, hit});
  }
  return s;
}

Froc evaluate_lesions(const std::vector<LesionSlide>& slides, const LesionOptions& o) {
  Froc f;
  f.options = o;
  f.slides = int(slides.size());
  struct Pooled {
    float p;
    size_t slide;
    int lesion;
  };
  std::vector<Pooled> all;
  for (size_t s = 0; s < slides.size(); ++s) {
    f.lesions += slides[s].lesions;
    for (const auto& [p, lesion] : slides[s].detections) all.push_back({p, s, lesion});
  }
  f.detections = int(all.size());
  for (const LesionSlide& s : slides) {
    std::set<int> found;
    int false_positives = 0;
    for (const auto& [p, lesion] : s.detections)
      if (p >= 0.5f) lesion < 0 ? void(++false_positives) : void(found.insert(lesion));
    f.per_slide.push_back({{"slide", s.slide},
                           {"lesions", s.lesions},
                           {"found", found.size()},
                           {"false_positives", false_positives}});
  }
  std::stable_sort(all.begin(), all.end(),
                   [](const Pooled& a, const Pooled& b) { return a.p > b.p; });
  std::set<std::pair<size_t, int>> hit;
  int false_positives = 0;
  for (size_t i = 0; i < all.size();) {
    size_t j = i;
    for (; j < all.size() && all[j].p == all[i].p; ++j)
      all[j].lesion < 0 ? void(++false_positives) : void(hit.insert({all[j].slide, all[j].lesion}));
    f.curve.push_back({double(all[i].p), double(false_positives) / std::max(1, f.slides),
                       f.lesions ? double(hit.size()) / f.lesions : std::nan("")});
    i = j;
  }
  for (size_t k = 0; k < kFpRates.size(); ++k) {
    double best = f.lesions ? 0.0 : std::nan("");
    for (const auto& point : f.curve)
      if (point[1] <= kFpRates[k] && f.lesions) best = std::max(best, point[2]);
    f.sensitivity_at[k] = best;
  }
  f.score = f.lesions ? std::accumulate(f.sensitivity_at.begin(), f.sensitivity_at.end(), 0.0) /
                            double(kFpRates.size())
                      : std::nan("");
  return f;
}

nlohmann::json Froc::to_json() const {
  using evaluation_text::number_or_null;
  nlohmann::json at = nlohmann::json::object();
  const char* names[] = {"0.25", "0.5", "1", "2", "4", "8"};
  for (size_t k = 0; k < kFpRates.size(); ++k) at[names[k]] = number_or_null(sensitivity_at[k]);
  nlohmann::json points = nlohmann::json::array();
  for (const auto& [threshold, fp, sensitivity] : curve)
    points.push_back({threshold, fp, number_or_null(sensitivity)});
  return {{"slides", slides},
          {"lesions", lesions},
          {"detections", detections},
          {"froc_score", number_or_null(score)},
          {"sensitivity_at_fp_per_slide", at},
          {"curve", points},
          {"per_slide_at_p_0.5", per_slide},
          {"curve_columns", {"threshold", "false_positives_per_slide", "sensitivity"}},
          {"rules",
           {{"dilation_um", options.dilation_um},
            {"itc_um", options.itc_um},
            {"nms_um", options.nms_um},
            {"min_p", options.min_p},
            {"as",
             "CAMELYON16's FROC: lesions are malignant regions within 2 x dilation of "
             "each other; ITC lesions (longest side under itc_um) are ignored; a "
             "detection within dilation of a lesion hits it; sensitivity at each FP rate "
             "is the step function's, not interpolated"}}}};
}

void write_lesion_evaluation(const Froc& f, const std::string& folder) {
  // The log axis starts at 1/8 false positive per slide: the sensitivity
  // reached without any stands there.
  const double right = std::max(8.0, f.curve.empty() ? 8.0 : f.curve.back()[1]) * 1.25;
  std::string curve = "$curve << EOD\n";
  double before = 0;
  for (const auto& [threshold, fp, sensitivity] : f.curve)
    if (fp == 0 && !std::isnan(sensitivity)) before = sensitivity;
  char line[64];
  std::snprintf(line, sizeof line, "0.125 %.6f\n", before);
  curve += line;
  for (const auto& [threshold, fp, sensitivity] : f.curve)
    if (fp > 0 && !std::isnan(sensitivity)) {
      std::snprintf(line, sizeof line, "%.6f %.6f\n", fp, sensitivity);
      curve += line;
    }
  std::snprintf(line, sizeof line, "%.6f %.6f\nEOD\n$rates << EOD\n", right,
                f.curve.empty() || std::isnan(f.curve.back()[2]) ? before : f.curve.back()[2]);
  curve += line;
  for (size_t k = 0; k < kFpRates.size(); ++k)
    if (!std::isnan(f.sensitivity_at[k])) {
      std::snprintf(line, sizeof line, "%g %.6f\n", kFpRates[k], f.sensitivity_at[k]);
      curve += line;
    }
  curve += "EOD\n";
  char title[160];
  std::snprintf(title, sizeof title, "lesion-level FROC, %d lesions on %d slides: score %s",
                f.lesions, f.slides, evaluation_text::fixed_or_na(f.score, 3).c_str());
  std::snprintf(line, sizeof line, "set xrange [0.125:%g]\n", right);
  render_gnuplot(folder + "/froc",
                 curve + "set title \"" + gnuplot_text(title) + "\"\n" +
                     "set xlabel 'false positives per slide'\nset ylabel 'lesions found "
                     "(sensitivity)'\nset logscale x 2\n" +
                     line +
                     "set yrange [0:1.02]\nset grid\nset key bottom right\n"
                     "plot $curve using 1:2 with steps lw 2 title 'FROC', $rates using 1:2 "
                     "with points pt 7 ps 1.3 title 'at 1/4, 1/2, 1, 2, 4, 8 (their mean: the "
                     "score)'\n");
  write_file_atomically(folder + "/lesion-evaluation.json", f.to_json().dump(2) + "\n");
}

std::string Froc::headline() const {
  char text[320];
  if (!lesions) {
    std::snprintf(text, sizeof text,
                  "lesion level (%d slides, no lesion over the ITC size): FROC n/a; %d "
                  "detections",
                  slides, detections);
    return text;
  }
  std::snprintf(text, sizeof text,
                "lesion level (%d lesions on %d slides): FROC %.3f; sensitivity %.2f at 1/4, "
                "%.2f at 1, %.2f at 8 false positives per slide",
                lesions, slides, score, sensitivity_at[0], sensitivity_at[2], sensitivity_at[5]);
  return text;
}

}  // namespace histocnn
