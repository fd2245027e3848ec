#include "study/plotter.h"

#include <sstream>

#include "core/atomic_file.h"
#include "study/gnuplot.h"

namespace histocnn {

bool has_data(const Figure& f) {
  for (size_t i = 0; i < f.series.size(); ++i)
    if ((f.essential.empty() || f.essential[i]) && !f.series[i].points.empty()) return true;
  return false;
}

namespace {

std::vector<const Series*> drawn_series(const Figure& f) {
  std::vector<const Series*> out;
  for (const auto& s : f.series)
    if (!s.points.empty()) out.push_back(&s);
  return out;
}

}  // namespace

std::string gnuplot_script(const Figure& f, const std::string& data_base) {
  std::ostringstream gp;
  const std::string data = gnuplot_path(data_base);
  const std::string xlabel = f.xlabel.empty() || !f.logx ? f.xlabel : f.xlabel + " (log scale)";
  const std::string ylabel = f.ylabel.empty() || !f.logy ? f.ylabel : f.ylabel + " (log scale)";
  gp << "set title \"" << gnuplot_text(f.title) << "\"\nset xlabel \"" << gnuplot_text(xlabel)
     << "\"\nset ylabel \"" << gnuplot_text(ylabel) << "\"\nset grid\nset key outside right\n"
     << (f.logx ? "set logscale x 2\n" : "") << (f.logy ? "set logscale y\n" : "") << f.extra
     << "plot ";
  const auto series = drawn_series(f);
  bool zero_bars = false;
  for (size_t i = 0; i < series.size(); ++i) {
    gp << (i ? ", " : "") << "'" << data << ".dat' index " << i << " with " << series[i]->style
       << " lw 2 title \"" << gnuplot_text(series[i]->title) << "\"";
    if (series[i]->style.rfind("boxes", 0) == 0)
      for (const auto& point : series[i]->points) zero_bars = zero_bars || point.second == 0;
  }
  // A zero-height box is invisible: a small black square marks each zero bar.
  if (zero_bars)
    for (size_t i = 0; i < series.size(); ++i)
      if (series[i]->style.rfind("boxes", 0) == 0)
        gp << ", '" << data << ".dat' index " << i
           << " using 1:($2 == 0 ? 0 : 1/0) with points pt 5 ps 0.8 lc rgb 'black' notitle";
  gp << "\n";
  return gp.str();
}

bool draw_figure(const std::string& dir, const Figure& f, bool draw) {
  if (!has_data(f)) return false;
  std::string data;
  for (const Series* s : drawn_series(f)) {
    data += "# " + s->title + "\n";
    for (const auto& [x, y] : s->points) data += std::to_string(x) + " " + std::to_string(y) + "\n";
    data += "\n\n";
  }
  const std::string base = dir + "/" + f.name;
  write_file_atomically(base + ".dat", data);
  render_gnuplot(base, gnuplot_script(f, base), 900, 560, true, draw);
  return true;
}

}  // namespace histocnn
