#include "study/gnuplot.h"

#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/process.h"

namespace histocnn {

std::string gnuplot_text(const std::string& text) {
  std::string out;
  for (char c : text) {
    if (c == '\\' || c == '"') out += '\\';
    out += c;
  }
  return out;
}

std::string gnuplot_path(const std::string& path) {
  std::string out;
  for (char c : path) out += c == '\'' ? std::string("''") : std::string(1, c);
  return out;
}

void render_gnuplot(const std::string& base, const std::string& body, int width, int height,
                    bool svg) {
  const std::string size = std::to_string(width) + "," + std::to_string(height);
  for (const std::string ext : {"png", "svg"}) {
    if (ext == "svg" && !svg) continue;
    const std::string term = (ext == "png" ? "pngcairo" : "svg") +
                             std::string(" noenhanced size ") + size + " font 'sans,10'";
    const std::string script = base + "." + ext + ".gp";
    write_file_atomically(script, "set terminal " + term + "\nset output '" +
                                      gnuplot_path(base + "." + ext) + "'\n" + body);
    bool ok = false;
    try {
      ok = run_process({"gnuplot", script}, script + ".log").ok();
    } catch (const Error&) {  // not installed
    }
    if (ok) std::filesystem::remove(script + ".log");
    require(ok, "gnuplot failed on " + script + " (is gnuplot installed? Debian: gnuplot-nox)");
  }
}

}  // namespace histocnn
