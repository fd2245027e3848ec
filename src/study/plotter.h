// A figure as data: its series and how to draw them, made by a figure
// function (study/report_figures.h) without touching the disk; draw_figure
// writes the data file and the gnuplot script and renders PNG and SVG.
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace histocnn {

struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;  // x, y
  std::string style = "linespoints";              // gnuplot's "with" clause
};

struct Figure {
  std::string name;     // file base name: <name>.png, .svg, .dat
  std::string caption;  // the report's heading for it
  std::string title, xlabel, ylabel;
  std::vector<Series> series;
  bool logx = false, logy = false;  // base-2 x, base-10 y; the axis label says so
  std::string extra;                // gnuplot commands before `plot` (ranges, tics, box widths)
  // Drawn only when some series is marked essential and has points (a
  // reference line alone, like the paper's or "ideal", is not a figure).
  std::vector<bool> essential;  // per series; empty = every series
  std::string why_not;          // shown instead when not drawn
  std::string table_md;         // Markdown shown under the figure (may be empty)
};

// True when the figure has data to draw (see Figure::essential).
bool has_data(const Figure& figure);

// The gnuplot script body for `figure`, reading <data_base>.dat. A
// logarithmic axis says so in its label; bars ("boxes") of height zero get a
// visible mark on the axis.
std::string gnuplot_script(const Figure& figure, const std::string& data_base);

// Writes <dir>/<name>.dat and renders <name>.png and .svg; false (nothing
// written) when the figure has no data. Without `draw` (no gnuplot here),
// the data file and the scripts that draw the figure later.
bool draw_figure(const std::string& dir, const Figure& figure, bool draw = true);

}  // namespace histocnn
