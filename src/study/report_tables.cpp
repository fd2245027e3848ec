#include "study/report_tables.h"

#include <algorithm>
#include <cstdio>
#include <sstream>

namespace histocnn {
std::string fixed(double value, int digits) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, value);
  return buf;
}

const std::map<int, double>& paper_speedup() {
  static const std::map<int, double> paper = {
      {16, 4.49}, {8, 5.00}, {4, 7.58}, {2, 11.97}, {1, 16.19}};
  return paper;
}

std::vector<std::pair<int, double>> cpu_over_gpu(const StudyResults& results,
                                                 const std::string& allocator, int size,
                                                 int batch) {
  const auto gpu = results.where([&](const StudyRow& r) {
    return r["engine"] == "histocnn" && r["device"] == "cuda" && r["allocator"] == allocator &&
           r["size"] == size && r["batch"] == batch;
  });
  std::vector<std::pair<int, double>> out;
  if (gpu.empty()) return out;
  for (const auto& r : results.where([&](const StudyRow& r) {
         return r["engine"] == "histocnn" && r["device"] == "cpu" && r["size"] == size &&
                r["batch"] == batch;
       }))
    out.push_back({r["threads"].get<int>(),
                   r["epoch_seconds"].get<double>() / gpu[0]["epoch_seconds"].get<double>()});
  std::sort(out.begin(), out.end());
  return out;
}

std::string measurements_table(const StudyResults& results) {
  std::ostringstream md;
  md << "| engine | device | threads | allocator | size | batch | s/epoch | img/s | peak MB | "
        "train acc |\n|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : results.ok) {
    const bool peak = r.contains("peak_memory_bytes") && !r["peak_memory_bytes"].is_null();
    md << "| " << r["engine"].get<std::string>() << " | " << r["device"].get<std::string>() << " | "
       << r["threads"] << " | " << r.value("allocator", "") << " | " << r["size"] << " | "
       << r["batch"] << " | " << fixed(r["epoch_seconds"].get<double>(), 3) << " | "
       << fixed(r["images_per_second"].get<double>(), 0) << " | "
       << (peak ? fixed(r["peak_memory_bytes"].get<double>() / 1e6, 0) : "") << " | "
       << (r.contains("final_train_accuracy") ? fixed(r["final_train_accuracy"].get<double>(), 3)
                                              : "")
       << " |\n";
  }
  return md.str();
}

std::string pytorch_table(const StudyResults& results) {
  const bool torch = std::any_of(results.ok.begin(), results.ok.end(),
                                 [](const StudyRow& r) { return r["engine"] == "pytorch"; });
  if (!torch) return "PyTorch was not measured in this study (`--engines histocnn,pytorch`).\n";
  std::ostringstream md;
  md << "| device | threads | size | batch | histocnn s | PyTorch s | ratio |\n"
        "|---|---|---|---|---|---|---|\n";
  for (const auto& r : results.ok) {
    if (r["engine"] != "pytorch") continue;
    for (const auto& h : results.where([&](const StudyRow& h) {
           return h["engine"] == "histocnn" && h["device"] == r["device"] &&
                  h["threads"] == r["threads"] && h["size"] == r["size"] &&
                  h["batch"] == r["batch"] &&
                  (r["device"] == "cpu" || h["allocator"] == "plan" || h["allocator"] == "pool");
         }))
      md << "| " << r["device"].get<std::string>()
         << (h["device"] == "cuda" ? " " + h["allocator"].get<std::string>() : "") << " | "
         << r["threads"] << " | " << r["size"] << " | " << r["batch"] << " | "
         << fixed(h["epoch_seconds"].get<double>(), 3) << " | "
         << fixed(r["epoch_seconds"].get<double>(), 3) << " | "
         << fixed(r["epoch_seconds"].get<double>() / h["epoch_seconds"].get<double>(), 1)
         << "x |\n";
  }
  return md.str();
}

std::string speedup_table(const StudyResults& results) {
  std::ostringstream md;
  const bool gpu = std::any_of(results.ok.begin(), results.ok.end(),
                               [](const StudyRow& r) { return r["device"] == "cuda"; });
  if (!gpu) md << "No GPU measurements in this study: the paper's column alone.\n\n";
  md << "| CPU cores | paper (GTX-980) |";
  for (int b : results.batches) md << " batch " << b << " (pool) |";
  md << "\n|---|---|";
  for (size_t i = 0; i < results.batches.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& [cores, paper] : paper_speedup()) {
    md << "| " << cores << " | " << fixed(paper) << " |";
    for (int b : results.batches) {
      std::string cell = "–";
      for (const auto& [threads, ratio] : cpu_over_gpu(results, "pool", results.largest_size(), b))
        if (threads == cores) cell = fixed(ratio);
      md << " " << cell << " |";
    }
    md << "\n";
  }
  return md.str();
}

std::string not_run_table(const StudyResults& results) {
  if (results.not_run.empty()) return "";
  std::ostringstream md;
  md << "| measurement | status | reason |\n|---|---|---|\n";
  for (const auto& r : results.not_run)
    md << "| " << r.value("key", "") << " | " << r.value("status", "") << " | "
       << r.value("reason", "") << " |\n";
  return md.str();
}

}  // namespace histocnn
