// libFuzzer target: a study's results.jsonl as `histocnn study` (resume) and
// `histocnn report` read it — every row checked, then every figure function
// and table of the report run on what passed. Only histocnn::Error may come
// out.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "study/markdown_html.h"
#include "study/plotter.h"
#include "study/report_figures.h"
#include "study/report_tables.h"
#include "study/results_file.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using namespace histocnn;
  try {
    StudyResults results;
    results.source = "fuzz.jsonl";
    for (const auto& row :
         parse_results(std::string(reinterpret_cast<const char*>(data), size), results.source)) {
      if (results.machine.is_null() && row.contains("machine")) results.machine = row["machine"];
      (row.value("status", "") == "ok" ? results.ok : results.not_run).push_back(row);
    }
    for (const auto& r : results.ok) {
      results.sizes.insert(r["size"].get<int>());
      results.batches.insert(r["batch"].get<int>());
      if (r["device"] == "cpu") results.cpu_threads.insert(r["threads"].get<int>());
    }
    std::string md;
    for (const FigureFunction make : report_figures())
      for (const Figure& f : make(results)) md += gnuplot_script(f, "fuzz") + f.table_md;
    md += measurements_table(results) + pytorch_table(results) + speedup_table(results) +
          not_run_table(results);
    (void)markdown_to_html(md, "fuzz");
  } catch (const Error&) {
  }
  return 0;
}
