// Figures through gnuplot: every figure is written as PNG and SVG from one
// script body, so a paper gets vector graphics and a README gets a picture.
#pragma once

#include <string>

namespace histocnn {

// Text inside a gnuplot "double-quoted" string, and a path inside a
// 'single-quoted' one.
std::string gnuplot_text(const std::string& text);
std::string gnuplot_path(const std::string& path);

// Renders `body` (gnuplot commands after the terminal and output are set) to
// <base>.png and <base>.svg. The scripts are kept beside them (<base>.png.gp),
// so a figure can be restyled by hand. Text renders as written (the
// terminals are noenhanced: "t_cpu" is not t with a subscript c). Throws when gnuplot is missing or
// fails. Without `svg`, PNG only (a figure of an image: SVG would be one rectangle per pixel).
void render_gnuplot(const std::string& base, const std::string& body, int width = 900,
                    int height = 560, bool svg = true);

}  // namespace histocnn
