// `histocnn report`: figures and tables from a study's results.jsonl, beside
// the paper's published numbers and the PyTorch line, rendered by gnuplot as
// PNG and SVG, gathered in report.md and report.html.
#pragma once

#include <string>

namespace histocnn {

// Writes <output>/report.md, report.html, fig_*.png|svg and their data files.
// `results`: a study folder or its results.jsonl. Returns the report path.
std::string write_report(const std::string& results, const std::string& output);

}  // namespace histocnn
