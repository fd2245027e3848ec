#include "study/report.h"

#include <cstdio>
#include <sstream>

#include "core/atomic_file.h"
#include "study/gnuplot.h"
#include "study/markdown_html.h"
#include "study/report_figures.h"
#include "study/report_tables.h"
#include "study/study_results.h"

namespace histocnn {
namespace {

std::string header(const StudyResults& r) {
  std::ostringstream md;
  md << "# histocnn study report\n\nFrom `" << r.source << "`: " << r.ok.size() << " measurements, "
     << r.not_run.size() << " not run.\n\n";
  if (r.machine.is_object()) {
    const std::string gpu = r.machine.value("gpu", "");
    md << "Machine: CPU " << r.machine.value("cpu", "?") << " (" << r.machine.value("cores", 0)
       << " cores); GPU " << (gpu.empty() ? "none" : gpu) << ".\n\n";
  }
  return md.str();
}

// Every figure with data, drawn, as a section each; then one paragraph
// naming those without data and why (a CPU-only study has no GPU figures:
// one line says so, not a section each). Where gnuplot is missing (a GPU
// node often lacks it), each section keeps its table and names the script
// that draws its figure later: the tables are the study's results, and
// losing them at the end of a study for want of a plotting tool would waste
// its hours.
std::string figure_sections(const std::string& output, const StudyResults& results) {
  const bool draw = gnuplot_on_path();
  std::string md, missing;
  if (!draw) {
    md +=
        "*Figures not drawn: gnuplot is not installed here (Debian: gnuplot-nox). Each "
        "section names the script that draws its figure, to run from the folder `histocnn "
        "report` ran in (its paths are relative to it).*\n\n";
    std::fprintf(stderr,
                 "warning: gnuplot is not installed: the report has its tables, and each "
                 "figure's data and gnuplot script to draw it later\n");
  }
  for (const FigureFunction make : report_figures())
    for (const Figure& f : make(results)) {
      if (!draw_figure(output, f, draw)) {
        missing += (missing.empty() ? "" : "; ") + f.caption + " — " + f.why_not;
        continue;
      }
      md += "### " + f.caption + "\n\n";
      if (draw)
        md += "![" + f.caption + "](" + f.name + ".png) ([SVG](" + f.name + ".svg))\n\n";
      else
        md += "Not drawn: `gnuplot " + output + "/" + f.name + ".png.gp` draws it.\n\n";
      if (!f.table_md.empty()) md += f.table_md + "\n";
    }
  if (!missing.empty()) md += "*Not drawn, for want of data:* " + missing + ".\n\n";
  return md;
}

}  // namespace

std::string write_report(const std::string& results_path, const std::string& output) {
  const StudyResults results = load_study_results(results_path);
  make_directories(output);
  std::string md = header(results) + figure_sections(output, results);
  md += "## Measurements\n\n" + measurements_table(results);
  md += "\n## histocnn vs PyTorch (same device, threads, size, batch)\n\n" + pytorch_table(results);
  md += "\n## Speed-up t_cpu / t_gpu at " + std::to_string(results.largest_size()) +
        " px against the paper\n\n" + speedup_table(results);
  if (const std::string scaling = cpu_scaling_table(results); !scaling.empty())
    md += "\n## CPU scaling at " + std::to_string(results.largest_size()) +
          " px (histocnn): speed-up over 1 thread\n\n" + scaling;
  if (const std::string not_run = not_run_table(results); !not_run.empty())
    md += "\n## Not run\n\n" + not_run;
  const std::string md_path = output + "/report.md";
  write_file_atomically(md_path, md);
  write_file_atomically(output + "/report.html", markdown_to_html(md, "histocnn study report"));
  return md_path;
}

}  // namespace histocnn
