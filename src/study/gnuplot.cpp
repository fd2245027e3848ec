#include "study/gnuplot.h"

#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/process.h"

namespace histocnn {
namespace {

// The first and last `n` bytes of a file (fewer when it is shorter).
std::pair<std::string, std::string> ends_of(const std::string& path, size_t n) {
  std::ifstream in(path, std::ios::binary | std::ios::ate);
  const auto size = size_t(std::max<std::streamoff>(in.tellg(), 0));
  std::string head(std::min(n, size), '\0'), tail(std::min(n, size), '\0');
  in.seekg(0);
  in.read(head.data(), std::streamsize(head.size()));
  in.seekg(std::streamoff(size - tail.size()));
  in.read(tail.data(), std::streamsize(tail.size()));
  return {head, tail};
}

// One figure's script, kept beside it under the figure's name: run by hand
// (`gnuplot FIGURE.gp`) it draws FIGURE; `out`, set on gnuplot's command
// line, sends it elsewhere.
std::string write_script(const std::string& figure, const std::string& terminal,
                         const std::string& body) {
  const std::string script = figure + ".gp";
  write_file_atomically(script, "set terminal " + terminal + "\nif (!exists(\"out\")) { out = '" +
                                    gnuplot_path(figure) + "' }\nset output out\n" + body);
  return script;
}

// One figure: its script, and gnuplot writing to the writer's temporary.
void render_one(const std::string& figure, const std::string& ext, const std::string& terminal,
                const std::string& body) {
  const std::string script = write_script(figure, terminal, body);
  AtomicFileWriter output(figure);
  ProcessResult r;
  try {
    r = run_process(
        {"gnuplot", "-e", "out='" + gnuplot_path(output.temporary_path()) + "'", script},
        script + ".log", TerminalSignals::own_group);
  } catch (const Error&) {  // not installed
  }
  if (r.ok()) std::filesystem::remove(script + ".log");
  require(r.signal == 0, "gnuplot was stopped by " + std::string(strsignal(r.signal)) + " on " +
                             script + "; the figure was not replaced");
  require(r.ok(), "gnuplot failed on " + script + " (is gnuplot installed? Debian: gnuplot-nox)");
  const auto [head, tail] = ends_of(output.temporary_path(), 64);
  require(figure_is_whole(head, tail, ext),
          figure + ": gnuplot's output is incomplete (disk full?); the figure was not replaced");
  output.commit();
}

}  // namespace

bool gnuplot_on_path() {
  const char* path = std::getenv("PATH");
  std::string dirs = path ? path : "";
  for (size_t begin = 0; begin <= dirs.size();) {
    const size_t end = std::min(dirs.find(':', begin), dirs.size());
    const std::string dir = end > begin ? dirs.substr(begin, end - begin) : ".";  // "" is "."
    const std::string candidate = dir + "/gnuplot";
    std::error_code ec;
    if (std::filesystem::is_regular_file(candidate, ec) && access(candidate.c_str(), X_OK) == 0)
      return true;
    begin = end + 1;
  }
  return false;
}

bool figures_drawable(const std::string& command, const std::string& what) {
  if (gnuplot_on_path()) return true;
  std::fprintf(
      stderr,
      "warning: %s: gnuplot is not installed (not on PATH): %s; `gnuplot FIGURE.gp` draws each "
      "later (Debian: apt install gnuplot-nox)\n",
      command.c_str(), what.c_str());
  return false;
}

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

bool figure_is_whole(const std::string& head, const std::string& tail, const std::string& ext) {
  if (ext == "png") {
    // The signature, and the IEND chunk (length 0, its type, its fixed CRC) last.
    static const std::string signature("\x89PNG\r\n\x1a\n", 8);
    static const std::string iend("\0\0\0\0IEND\xae\x42\x60\x82", 12);
    return head.compare(0, signature.size(), signature) == 0 && tail.size() >= iend.size() &&
           tail.compare(tail.size() - iend.size(), iend.size(), iend) == 0;
  }
  const size_t end = tail.find_last_not_of(" \t\r\n");
  return end != std::string::npos && end + 1 >= 6 && tail.compare(end + 1 - 6, 6, "</svg>") == 0;
}

bool render_gnuplot(const std::string& base, const std::string& body, int width, int height,
                    bool svg, bool draw) {
  draw = draw && gnuplot_on_path();
  const std::string size = std::to_string(width) + "," + std::to_string(height);
  for (const std::string ext : {"png", "svg"}) {
    if (ext == "svg" && !svg) continue;
    const std::string terminal = (ext == "png" ? "pngcairo" : "svg") +
                                 std::string(" noenhanced size ") + size + " font 'sans,10'";
    if (draw) {
      render_one(base + "." + ext, ext, terminal, body);
      continue;
    }
    write_script(base + "." + ext, terminal, body);
    std::error_code ignored;  // an earlier run's figure would not show this script's data
    std::filesystem::remove(base + "." + ext, ignored);
  }
  return draw;
}

}  // namespace histocnn
