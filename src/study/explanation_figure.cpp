#include "study/explanation_figure.h"

#include <algorithm>
#include <cmath>
#include <sstream>

#include "core/error.h"
#include "study/colour_scale.h"
#include "study/gnuplot.h"

namespace histocnn {

Image explanation_overlay(const Image& image, const Explanation& e) {
  require(e.width == image.width && e.height == image.height &&
              e.values.size() == size_t(image.width) * image.height,
          "explanation_overlay: the map is not the image's size");
  Image out = image;
  for (int y = 0; y < image.height; ++y)
    for (int x = 0; x < image.width; ++x) {
      const float v = e.values[size_t(y) * image.width + x];
      uint8_t c[3];
      heatmap_colour(v, c);
      const double alpha = 0.6 * std::clamp(double(v), 0.0, 1.0);
      uint8_t* p = out.row(y) + 3 * x;
      for (int k = 0; k < 3; ++k) p[k] = uint8_t(std::lround((1 - alpha) * p[k] + alpha * c[k]));
    }
  return out;
}

void write_explanation_figure(const std::string& base, const Image& image, const Explanation& e,
                              const std::string& title) {
  const std::string overlay = base + ".overlay.png";
  save_image(overlay, explanation_overlay(image, e));
  std::ostringstream gp;
  gp << "set title \"" << gnuplot_text(title) << "\" noenhanced\n"
     << "set size ratio -1\nset xrange [0:" << image.width << "]\nset yrange [" << image.height
     << ":0]\nset tics out nomirror\n"
     << "set palette defined (" << heatmap_palette() << ")\nset cbrange [0:1]\n"
     << "set cblabel 'Grad-CAM, relative to its maximum'\nset colorbox\n"
     << "plot '" << gnuplot_path(overlay) << "' binary filetype=png flipy with rgbimage notitle, "
     << "'+' using (NaN):(NaN):(0.5) with points lc palette notitle\n";
  const int px_width = 900;
  const int px_height =
      std::clamp(int(px_width * double(image.height) / image.width) + 80, 300, 1400);
  render_gnuplot(base, gp.str(), px_width, px_height, false);
}

}  // namespace histocnn
