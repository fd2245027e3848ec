#include "study/eval_figures.h"

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

}  // namespace

void write_eval_figures(const EvalReport& report, const std::string& base,
                        const std::string& title) {
  struct Level {
    const char* name;
    const std::vector<Prediction>* predictions;
    const Metrics* metrics;
  };
  std::vector<Prediction> images;
  for (const auto& v : report.images) images.push_back({float(v.p_malignant), v.label});
  const Level levels[] = {{"crop", &report.crops, &report.per_crop},
                          {"image", &images, &report.per_image},
                          {"patient", &report.patients, &report.per_patient}};
  // ROC: one data block per level that has both classes.
  std::string data;
  std::ostringstream plot;
  int block = 0;
  for (const Level& level : levels) {
    const auto curve = roc_curve(*level.predictions);
    if (curve.empty()) continue;
    data += std::string("# ") + level.name + "\n";
    for (const auto& [fpr, tpr] : curve) {
      char line[64];
      std::snprintf(line, sizeof line, "%.6f %.6f\n", fpr, tpr);
      data += line;
    }
    data += "\n\n";
    plot << (block ? ", " : "plot ") << "'" << gnuplot_path(base + ".roc.dat") << "' index "
         << block << " with lines lw 2 title \"" << level.name
         << " (n = " << level.predictions->size() << ", " << auc_text(*level.metrics) << ")\"";
    ++block;
  }
  write_file_atomically(base + ".roc.dat", data);
  std::ostringstream roc;
  roc << "set title \"" << gnuplot_text("ROC — " + title) << "\"\n"
      << "set xlabel \"false positive rate (1 - specificity)\"\n"
      << "set ylabel \"true positive rate (sensitivity)\"\n"
      << "set xrange [0:1]\nset yrange [0:1.02]\nset size square\nset grid\n"
      << "set key bottom right\n";
  if (block)
    roc << plot.str() << ", x with lines dt 2 lc rgb 'gray' title \"chance\"\n";
  else
    roc << "set label 1 \"one class only: no ROC curve\" at 0.5,0.5 center\nplot 2 notitle\n";
  render_gnuplot(base + ".roc", roc.str(), 640, 600);

  // Confusion matrices (rows: truth, columns: prediction), crop and image level.
  std::ostringstream cm;
  cm << "set multiplot layout 1,2 title \"" << gnuplot_text("Confusion at P >= 0.5 — " + title)
     << "\"\nset xrange [-0.5:1.5]\nset yrange [1.5:-0.5]\nset size ratio 1\n"
     << "set xtics (\"benign\" 0, \"malignant\" 1)\nset ytics (\"benign\" 0, \"malignant\" 1)\n"
     << "set xlabel \"predicted\"\nset ylabel \"true\"\nunset colorbox\n"
     << "set palette defined (0 'white', 1 '#3b6fb6')\n";
  for (const Level& level : {levels[0], levels[1]}) {
    const Metrics& m = *level.metrics;
    const int cells[2][2] = {{m.tn, m.fp}, {m.fn, m.tp}};
    const double peak = std::max({m.tn, m.fp, m.fn, m.tp, 1});
    cm << "set title \"" << level.name << " (n = " << m.count << ")\"\nunset label\n";
    std::string matrix;
    for (int t = 0; t < 2; ++t)
      for (int p = 0; p < 2; ++p) {
        cm << "set label \"" << cells[t][p] << "\" at " << p << "," << t
           << " center front font 'sans,14'\n";
        matrix += std::to_string(p) + " " + std::to_string(t) + " " +
                  std::to_string(cells[t][p] / peak) + "\n";
      }
    cm << "set cbrange [0:1]\nplot '-' using 1:2:3 with image notitle\n" << matrix << "e\n";
  }
  cm << "unset multiplot\n";
  render_gnuplot(base + ".confusion", cm.str(), 900, 460);
}

}  // namespace histocnn
