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
  gp << "set title \"" << gnuplot_text(f.title) << "\"\nset xlabel \"" << gnuplot_text(f.xlabel)
     << "\"\nset ylabel \"" << gnuplot_text(f.ylabel) << "\"\nset grid\nset key outside right\n"
     << (f.logx ? "set logscale x 2\n" : "") << f.extra << "plot ";
  const auto series = drawn_series(f);
  for (size_t i = 0; i < series.size(); ++i)
    gp << (i ? ", " : "") << "'" << data << ".dat' index " << i << " with " << series[i]->style
       << " lw 2 title \"" << gnuplot_text(series[i]->title) << "\"";
  gp << "\n";
  return gp.str();
}

bool draw_figure(const std::string& dir, const Figure& f) {
  if (!has_data(f)) return false;
  std::string data;
  for (const Series* s : drawn_series(f)) {
    data += "# " + s->title + "\n";
    for (const auto& [x, y] : s->points) data += std::to_string(x) + " " + std::to_string(y) + "\n";
    data += "\n\n";
  }
  const std::string base = dir + "/" + f.name;
  write_file_atomically(base + ".dat", data);
  render_gnuplot(base, gnuplot_script(f, base));
  return true;
}

}  // namespace histocnn
