// Figures through gnuplot: every figure is written as PNG and SVG from one
// script body, so a paper gets vector graphics and a README gets a picture.
#pragma once

#include <string>

namespace histocnn {

// Text inside a gnuplot "double-quoted" string, and a path inside a
// 'single-quoted' one.
std::string gnuplot_text(const std::string& text);
std::string gnuplot_path(const std::string& path);

// Whether a figure's first and last bytes (`head`, `tail`: up to 64 each)
// are those of a whole file of its kind: a PNG's signature and IEND chunk,
// an SVG's closing tag.
bool figure_is_whole(const std::string& head, const std::string& tail, const std::string& ext);

// Whether an executable `gnuplot` is on PATH (a file lookup, no process).
bool gnuplot_on_path();
// Whether figures will be drawn (gnuplot_on_path()); where not, says so once
// on stderr: "warning: COMMAND: gnuplot is not installed (not on PATH): WHAT; `gnuplot
// FIGURE.gp` draws each later (...)". For commands whose results do not need
// the figures and which may have run for hours before the first (a cohort of
// slides on a GPU node, whose image often has no gnuplot; an evaluation):
// they go on, and render_gnuplot writes the scripts.
bool figures_drawable(const std::string& command, const std::string& what);

// Renders `body` (gnuplot commands after the terminal and output are set) to
// <base>.png and <base>.svg. The scripts are kept beside them (<base>.png.gp),
// so a figure can be restyled by hand (`gnuplot <base>.png.gp`). Text
// renders as written (the terminals are noenhanced: "t_cpu" is not t with a
// subscript c). Without `svg`, PNG only (a figure of an image: SVG would be
// one rectangle per pixel).
// Each figure is written as atomically as every other file: gnuplot writes a
// temporary, which becomes the figure only when it is whole. Throws, naming
// the figure or script, when gnuplot fails or its output is incomplete
// (gnuplot exits 0 when a full disk cuts a figure short); the figure that
// was there stays. Without `draw`, or where gnuplot is not installed (not on
// PATH; a command says so first: figures_drawable), only the scripts are
// written, each figure drawn later by `gnuplot SCRIPT`
// (and an earlier figure of that name, which would not show their data, is
// removed). Returns whether the figures were drawn.
bool render_gnuplot(const std::string& base, const std::string& body, int width = 900,
                    int height = 560, bool svg = true, bool draw = true);

}  // namespace histocnn
