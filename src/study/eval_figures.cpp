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
  Curves curves(base + ".roc.dat");
  for (const Level& level : levels) {
    const auto curve = roc_curve(level.predictions);
    if (curve.empty()) continue;
    std::string rows;
    for (const auto& [fpr, tpr] : curve) {
      char line[64];
      std::snprintf(line, sizeof line, "%.6f %.6f\n", fpr, tpr);
      rows += line;
    }
    curves.add(level.name, rows,
               std::string(level.style) + " title \"" + level.name +
                   " (n = " + std::to_string(level.predictions.size()) + ", " +
                   auc_text(*level.metrics) + ")\"");
  }
  const std::string plot = curves.write();
  std::ostringstream roc;
  roc << "set title \"" << gnuplot_text("ROC — " + title) << "\"\n"
      << "set xlabel \"false positive rate (1 - specificity)\"\n"
      << "set ylabel \"true positive rate (sensitivity)\"\n"
      << "set xrange [0:1]\nset yrange [0:1.02]\nset size square\nset grid\n"
      << "set key bottom right\n";
  if (curves.count())
    roc << plot << ", x with lines dt 2 lc rgb 'gray' title \"chance\"\n";
  else
    roc << "set label 1 \"one class only: no ROC curve\" at 0.5,0.5 center\nplot 2 notitle\n";
  render_gnuplot(base + ".roc", roc.str(), 640, 600);
}

// One panel: each cell coloured by its share of its true class, green where
// the prediction is right (the diagonal), red where it is wrong; the count
// and the share printed in it.
std::string confusion_panel(const char* name, const Metrics& m) {
  const int cells[2][2] = {{m.tn, m.fp}, {m.fn, m.tp}};
  std::ostringstream cm;
  cm << "set title \"" << name << " (n = " << m.count << ")\"\nunset label\n";
  std::string matrix;
  for (int t = 0; t < 2; ++t) {
    const int of_class = std::max(1, cells[t][0] + cells[t][1]);
    for (int p = 0; p < 2; ++p) {
      const double share = double(cells[t][p]) / of_class;
      char label[64];
      std::snprintf(label, sizeof label, "%d\\n%.0f%%", cells[t][p], 100 * share);
      cm << "set label \"" << label << "\" at " << p << "," << t
         << " center front font 'sans,13'\n";
      matrix += std::to_string(p) + " " + std::to_string(t) + " " +
                std::to_string(t == p ? share : -share) + "\n";
    }
  }
  cm << "plot '-' using 1:2:3 with image notitle\n" << matrix << "e\n";
  return cm.str();
}

void write_confusion(const std::vector<Level>& levels, const std::string& base,
                     const std::string& title) {
  std::ostringstream cm;
  cm << "set multiplot layout 1,3 title \""
     << gnuplot_text("Confusion at P >= 0.5 — " + title +
                     " (colour: share of the true class; green right, red wrong)")
     << "\"\nset xrange [-0.5:1.5]\nset yrange [1.5:-0.5]\nset size ratio 1\n"
     << "set xtics (\"benign\" 0, \"malignant\" 1)\nset ytics (\"benign\" 0, \"malignant\" 1)\n"
     << "set xlabel \"predicted\"\nset ylabel \"true\"\n"
     << "set palette defined (-1 '#c0392b', 0 'white', 1 '#2e7d32')\nset cbrange [-1:1]\n"
     << "set cbtics ('all wrong' -1, 'none' 0, 'all right' 1)\n";
  for (const Level& level : levels) {
    // The colour bar once, beside the last panel, with room for its labels.
    cm << (&level == &levels.back() ? "set colorbox\nset rmargin 11\n" : "unset colorbox\n");
    cm << confusion_panel(level.name, *level.metrics);
  }
  cm << "unset multiplot\n";
  render_gnuplot(base + ".confusion", cm.str(), 1300, 480);
}

// The reliability diagram: per crop and per image, each bin's mean
// P(malignant) against the fraction malignant, beside the diagonal of
// perfect calibration.
void write_reliability(const EvalReport& report, const std::string& base,
                       const std::string& title) {
  Curves curves(base + ".reliability.dat");
  for (const char* level : {"per_crop", "per_image"}) {
    const auto& c = report.calibration[level];
    if (c["reliability"].empty()) continue;
    std::string rows;
    for (const auto& point : c["reliability"]) {
      char line[96];
      std::snprintf(line, sizeof line, "%.6f %.6f %d\n", point[0].get<double>(),
                    point[1].get<double>(), point[2].get<int>());
      rows += line;
    }
    char with[128];
    std::snprintf(with, sizeof with, "linespoints lw 2 pt %d title \"%s (ECE %.3f)\"",
                  curves.count() ? 7 : 5, level + 4, c["ece"].get<double>());
    curves.add(level, rows, with);
  }
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

void write_eval_figures(const EvalReport& report, const std::string& base,
                        const std::string& title) {
  const std::vector<Level> levels = levels_of(report);
  write_roc(levels, base, title);
  write_confusion(levels, base, title);
  if (!report.calibration.is_null()) write_reliability(report, base, title);
}

}  // namespace histocnn
