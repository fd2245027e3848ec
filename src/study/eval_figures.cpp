#include "study/eval_figures.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <sstream>

#include "core/atomic_file.h"
#include "study/gnuplot.h"

namespace histocnn {
namespace {

std::string auc_text(const Metrics& m) {
  if (std::isnan(m.auc)) return "AUC n/a (one class)";
  char buf[32];
  std::snprintf(buf, sizeof buf, "AUC %.3f", m.auc);
  return buf;
}

struct Level {
  const char* name;
  std::vector<Prediction> predictions;
  const Metrics* metrics;
  // Curves of several levels often coincide (one image per patient): each
  // level has its own dash and marker so every one stays visible.
  const char* style;
};

// Curves of one figure: each a data block of <base>.dat and a clause of the
// plot command reading it.
class Curves {
 public:
  explicit Curves(std::string data_file) : file_(std::move(data_file)) {}
  // `rows`: the block's lines; `with`: the style and title of its clause.
  void add(const std::string& name, const std::string& rows, const std::string& with) {
    data_ += "# " + name + "\n" + rows + "\n\n";
    plot_ += std::string(count_ ? ", " : "plot ") + "'" + gnuplot_path(file_) + "' index " +
             std::to_string(count_) + " with " + with;
    ++count_;
  }
  int count() const { return count_; }
  // Writes the data file; returns the plot command so far.
  const std::string& write() const {
    write_file_atomically(file_, data_);
    return plot_;
  }

 private:
  std::string file_, data_, plot_;
  int count_ = 0;
};

// A ROC figure of `curves` at <base>.png/.svg: `header` (its title and any
// settings), the axes, the chance diagonal; without curves, `why_none`.
void render_roc(const Curves& curves, const std::string& base, const std::string& header,
                const std::string& why_none) {
  const std::string plot = curves.write();
  std::ostringstream roc;
  roc << "set xlabel \"false positive rate (1 - specificity)\"\n"
      << "set ylabel \"true positive rate (sensitivity)\"\n"
      << "set xrange [0:1]\nset yrange [0:1.02]\nset size square\nset grid\n"
      << "set key bottom right\n"
      << header;
  if (curves.count())
    roc << plot << ", x with lines dt 2 lc rgb 'gray' title \"chance\"\n";
  else
    roc << "set label 1 \"" << why_none << ": no ROC curve\" at 0.5,0.5 center\nplot 2 notitle\n";
  render_gnuplot(base, roc.str(), 640, 600);
}

std::vector<Level> levels_of(const EvalReport& report) {
  std::vector<Prediction> images;
  for (const auto& v : report.images) images.push_back({float(v.p_malignant), v.label});
  return {
      {"crop", report.crops, &report.per_crop, "lines lw 2 dt 1"},
      {"image", images, &report.per_image, "linespoints lw 2 dt 2 pt 7 ps 1.0 pi -1"},
      {"patient", report.patients, &report.per_patient, "linespoints lw 2 dt 3 pt 6 ps 1.6 pi -1"}};
}

void write_roc(const std::vector<Level>& levels, const std::string& base,
               const std::string& title) {
  std::vector<RocSeries> series;
  for (const Level& level : levels) series.push_back({level.name, level.predictions, level.style});
  write_roc_figure(series, base + ".roc", "ROC — " + title, "one class only");
}

// A confusion matrix to draw: [true][predicted] counts.
struct ConfusionPanel {
  const char* name;
  int count;
  std::vector<std::vector<int>> cells;
};

// One panel: each cell coloured by its share of its true class, green where
// the prediction is right (the diagonal), red where it is wrong; the count
// and the share printed in it.
std::string confusion_panel(const ConfusionPanel& panel) {
  std::ostringstream cm;
  cm << "set title \"" << panel.name << " (n = " << panel.count << ")\"\nunset label\n";
  std::string matrix;
  const size_t k = panel.cells.size();
  for (size_t t = 0; t < k; ++t) {
    int of_class = 0;
    for (int c : panel.cells[t]) of_class += c;
    for (size_t p = 0; p < k; ++p) {
      const double share = double(panel.cells[t][p]) / std::max(1, of_class);
      // Two classes: the count and the share; more: the count (the colour
      // gives the share; both would not fit).
      char label[64];
      if (k > 2)
        std::snprintf(label, sizeof label, "%d", panel.cells[t][p]);
      else
        std::snprintf(label, sizeof label, "%d\\n%.0f%%", panel.cells[t][p], 100 * share);
      cm << "set label \"" << label << "\" at " << p << "," << t << " center front font 'sans,"
         << (k > 2 ? 11 : 13) << "'\n";
      matrix += std::to_string(p) + " " + std::to_string(t) + " " +
                std::to_string(t == p ? share : -share) + "\n";
    }
  }
  cm << "plot '-' using 1:2:3 with image notitle\n" << matrix << "e\n";
  return cm.str();
}

// A class name short enough for an axis: long names lose their last word
// ("moderately-to-poorly differentiated" -> "moderately-to-poorly").
std::string axis_name(const std::string& name) {
  const size_t space = name.rfind(' ');
  return name.size() > 14 && space != std::string::npos ? name.substr(0, space) : name;
}

// The panels side by side, the class names on the axes.
void write_confusion_panels(const std::vector<ConfusionPanel>& panels,
                            const std::vector<std::string>& names, const std::string& base,
                            const std::string& heading) {
  std::string tics;
  for (size_t c = 0; c < names.size(); ++c)
    tics += (c ? ", \"" : "(\"") + gnuplot_text(axis_name(names[c])) + "\" " + std::to_string(c);
  tics += ")";
  const double edge = double(names.size()) - 0.5;
  std::ostringstream cm;
  cm << "set multiplot layout 1," << panels.size() << " title \"" << gnuplot_text(heading)
     << "\"\nset xrange [-0.5:" << edge << "]\nset yrange [" << edge << ":-0.5]\n"
     << "set size ratio 1\n"
     << "set xtics " << tics << (names.size() > 2 ? " rotate by 35 right" : "") << "\n"
     << "set ytics " << tics << "\nset xlabel \"predicted\"\nset ylabel \"true\"\n"
     << "set palette defined (-1 '#c0392b', 0 'white', 1 '#2e7d32')\nset cbrange [-1:1]\n"
     << "set cbtics ('all wrong' -1, 'none' 0, 'all right' 1)\n";
  for (const ConfusionPanel& panel : panels) {
    // The colour bar once, beside the last panel, with room for its labels.
    cm << (&panel == &panels.back() ? "set colorbox\nset rmargin 11\n" : "unset colorbox\n");
    cm << confusion_panel(panel);
  }
  cm << "unset multiplot\n";
  const bool many = names.size() > 2;
  render_gnuplot(base, cm.str(), many ? 1900 : 1300, many ? 620 : 480);
}

void write_confusion(const std::vector<Level>& levels, const std::string& base,
                     const std::string& title) {
  std::vector<ConfusionPanel> panels;
  for (const Level& level : levels) {
    const Metrics& m = *level.metrics;
    panels.push_back({level.name, m.count, {{m.tn, m.fp}, {m.fn, m.tp}}});
  }
  write_confusion_panels(panels, {"benign", "malignant"}, base + ".confusion",
                         "Confusion at P >= 0.5 — " + title +
                             " (colour: share of the true class; green right, red wrong)");
}

// K classes: the K x K matrices per crop, image and patient (the class of
// highest probability against the true one).
void write_class_confusion(const EvalReport& report, const std::string& base,
                           const std::string& title) {
  std::vector<ConfusionPanel> panels;
  for (const auto& [name, m] :
       {std::pair<const char*, const ClassMetrics*>{"crop", &report.class_per_crop},
        {"image", &report.class_per_image},
        {"patient", &report.class_per_patient}})
    panels.push_back({name, m->count, m->confusion});
  char kappa[64];
  std::snprintf(kappa, sizeof kappa, "; image kappa %.3f", report.class_per_image.quadratic_kappa);
  write_confusion_panels(
      panels, report.class_names, base + ".classes.confusion",
      "Classes — " + title + kappa + " (colour: share of the true class; green right, red wrong)");
}

// K classes: one-vs-rest ROC curves per image, one per class (an image's
// probability of the class against whether it is the class). Per image
// because that is what a grade is given to; the crop and patient AUCs are in
// the report.
void write_class_roc(const EvalReport& report, const std::string& base, const std::string& title) {
  Curves curves(base + ".classes.roc.dat");
  for (size_t k = 0; k < report.class_names.size(); ++k) {
    std::vector<Prediction> one_vs_rest;
    int positives = 0;
    for (const ImageVerdict& v : report.images) {
      one_vs_rest.push_back({float(v.class_probs[k]), v.class_label == int(k) ? 1 : 0});
      positives += v.class_label == int(k);
    }
    const auto curve = roc_curve(one_vs_rest);
    if (curve.empty()) continue;  // the class is absent, or alone
    std::string rows;
    for (const auto& [fpr, tpr] : curve) {
      char line[64];
      std::snprintf(line, sizeof line, "%.6f %.6f\n", fpr, tpr);
      rows += line;
    }
    // Colour by class index, so a class keeps its colour in every figure.
    char with[96];
    std::snprintf(with, sizeof with, "lines lw 2 lc %d dt %d title \"", int(k) + 1, int(k % 5) + 1);
    char auc[48];
    std::snprintf(auc, sizeof auc, " (%d image%s, AUC %.3f)\"", positives,
                  positives == 1 ? "" : "s", report.class_per_image.auc[k]);
    curves.add(report.class_names[k], rows, with + gnuplot_text(report.class_names[k]) + auc);
  }
  render_roc(curves, base + ".classes.roc",
             "set title \"ROC per class (each against the rest, per image)\\n" +
                 gnuplot_text(title) + "\"\nset key font \",10\"\n",
             "no class both present and absent");
}

// The reliability diagram: per crop and per image, each bin's mean
// P(malignant) against the fraction malignant, beside the diagonal of
// perfect calibration.
void write_reliability(const EvalReport& report, const std::string& base,
                       const std::string& title) {
  Curves curves(base + ".reliability.dat");
  // After the temperatures (solid), and before them (dashed) where the
  // models have one.
  const auto add = [&](const nlohmann::json& calibration, const char* level, bool before) {
    const auto& c = calibration[level];
    if (c["reliability"].empty()) return;
    std::string rows;
    for (const auto& point : c["reliability"]) {
      char line[96];
      std::snprintf(line, sizeof line, "%.6f %.6f %d\n", point[0].get<double>(),
                    point[1].get<double>(), point[2].get<int>());
      rows += line;
    }
    char with[160];
    std::snprintf(with, sizeof with, "linespoints lw 2 pt %d %stitle \"%s%s (ECE %.3f)\"",
                  curves.count() % 2 ? 7 : 5, before ? "dt 3 " : "", level + 4,
                  before ? ", before T" : "", c["ece"].get<double>());
    curves.add(std::string(level) + (before ? " before" : ""), rows, with);
  };
  for (const char* level : {"per_crop", "per_image"}) add(report.calibration, level, false);
  if (report.calibration.contains("uncalibrated"))
    for (const char* level : {"per_crop", "per_image"})
      add(report.calibration["uncalibrated"], level, true);
  const std::string plot = curves.write();
  std::ostringstream gp;
  gp << "set title \"" << gnuplot_text("Reliability — " + title) << "\"\n"
     << "set xlabel \"mean predicted P(malignant) in the bin\"\n"
     << "set ylabel \"fraction malignant in the bin\"\n"
     << "set xrange [0:1]\nset yrange [0:1]\nset size square\nset grid\nset key top left\n"
     << plot << (curves.count() ? ", " : "plot ")
     << "x with lines dt 2 lc rgb 'gray' title \"perfectly calibrated\"\n";
  render_gnuplot(base + ".reliability", gp.str(), 640, 600);
}

}  // namespace

std::vector<std::pair<double, double>> thin_roc_curve(
    const std::vector<std::pair<double, double>>& curve, double step) {
  std::vector<std::pair<double, double>> kept;
  for (size_t i = 0; i < curve.size(); ++i) {
    // The next point would move too far from the last kept: keep this one.
    const bool last = i + 1 == curve.size();
    const bool far = !kept.empty() && !last &&
                     (curve[i + 1].first - kept.back().first > step ||
                      curve[i + 1].second - kept.back().second > step);
    if (kept.empty() || last || far) kept.push_back(curve[i]);
  }
  return kept;
}

void write_roc_figure(const std::vector<RocSeries>& series, const std::string& base,
                      const std::string& title, const std::string& why_none) {
  Curves curves(base + ".dat");
  for (const RocSeries& one : series) {
    const auto curve = thin_roc_curve(roc_curve(one.predictions), 1.0 / 2000);
    if (curve.empty()) continue;
    std::string rows;
    for (const auto& [fpr, tpr] : curve) {
      char line[64];
      std::snprintf(line, sizeof line, "%.6f %.6f\n", fpr, tpr);
      rows += line;
    }
    curves.add(one.name, rows,
               one.style + " title \"" + gnuplot_text(one.name) +
                   " (n = " + std::to_string(one.predictions.size()) + ", " +
                   auc_text(compute_metrics(one.predictions)) + ")\"");
  }
  render_roc(curves, base, "set title \"" + gnuplot_text(title) + "\"\n", why_none);
}

void write_eval_figures(const EvalReport& report, const std::string& base,
                        const std::string& title) {
  const std::vector<Level> levels = levels_of(report);
  write_roc(levels, base, title);
  write_confusion(levels, base, title);
  if (report.class_names.size() > 2) {
    write_class_confusion(report, base, title);
    write_class_roc(report, base, title);
  }
  if (!report.calibration.is_null()) write_reliability(report, base, title);
}

}  // namespace histocnn
