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

nlohmann::json cpu_ceilings(const StudyResults& results, int threads) {
  const auto rows = results.where([&](const StudyRow& r) {
    return r["engine"] == "histocnn" && r["device"] == "cpu" && r["threads"] == threads &&
           r.contains("ceilings");
  });
  return rows.empty() ? nlohmann::json() : rows.front()["ceilings"];
}

namespace {

// histocnn's CPU epoch at (size, batch, threads); 0 when not measured.
double cpu_epoch(const StudyResults& results, int size, int batch, int threads) {
  const auto rows = results.where([&](const StudyRow& r) {
    return r["engine"] == "histocnn" && r["device"] == "cpu" && r["size"] == size &&
           r["batch"] == batch && r["threads"] == threads;
  });
  return rows.empty() ? 0 : rows.front()["epoch_seconds"].get<double>();
}

// "At 16 threads the epoch kept ..% of the sgemm's speed-up" per batch, or
// "" without the ceilings at 1 and at the most threads.
std::string share_of_sgemm(const StudyResults& results, int size, int most,
                           const std::vector<int>& batches) {
  const nlohmann::json one = cpu_ceilings(results, 1), top = cpu_ceilings(results, most);
  if (most <= 1 || one.is_null() || top.is_null()) return "";
  const double sgemm = top["sgemm_gflops"].get<double>() / one["sgemm_gflops"].get<double>();
  std::string parts;
  for (int b : batches) {
    const double t1 = cpu_epoch(results, size, b, 1), tn = cpu_epoch(results, size, b, most);
    if (t1 <= 0 || tn <= 0) continue;
    parts += std::string(parts.empty() ? "" : ", ") + fixed(t1 / tn) + "x at batch " +
             std::to_string(b) + " (" + fixed(100 * t1 / tn / sgemm, 0) + " %)";
  }
  if (parts.empty()) return "";
  return "\nFrom 1 to " + std::to_string(most) + " threads these cores' own sgemm sped up " +
         fixed(sgemm) + "x, and the epoch, in brackets as a share of that: " + parts +
         ". An engine whose step is matrix arithmetic scales about as far as the sgemm does.\n";
}

}  // namespace

std::string cpu_scaling_table(const StudyResults& results) {
  const int size = results.largest_size();
  // The thread counts and batches with a histocnn CPU epoch at this size.
  std::vector<int> threads, batches;
  for (int t : results.cpu_threads)
    if (std::any_of(results.batches.begin(), results.batches.end(),
                    [&](int b) { return cpu_epoch(results, size, b, t) > 0; }))
      threads.push_back(t);
  for (int b : results.batches)
    if (std::any_of(threads.begin(), threads.end(),
                    [&](int t) { return cpu_epoch(results, size, b, t) > 0; }))
      batches.push_back(b);
  if (threads.size() < 2 || batches.empty()) return "";
  bool ceilings = false;
  for (int t : threads) ceilings = ceilings || !cpu_ceilings(results, t).is_null();
  std::ostringstream md;
  md << "| threads |";
  for (int b : batches) md << " batch " << b << " s | speed-up |";
  if (ceilings) md << " sgemm GFLOP/s | sgemm speed-up | triad GB/s |";
  md << "\n|---|";
  for (size_t i = 0; i < batches.size(); ++i) md << "---|---|";
  md << (ceilings ? "---|---|---|\n" : "\n");
  const nlohmann::json one = cpu_ceilings(results, 1);
  for (int t : threads) {
    md << "| " << t << " |";
    for (int b : batches) {
      const double s = cpu_epoch(results, size, b, t), s1 = cpu_epoch(results, size, b, 1);
      md << " " << (s > 0 ? fixed(s, 3) : "–") << " | "
         << (s > 0 && s1 > 0 ? fixed(s1 / s) + "x" : "–") << " |";
    }
    if (ceilings) {
      const nlohmann::json c = cpu_ceilings(results, t);
      const bool here = !c.is_null();
      md << " " << (here ? fixed(c["sgemm_gflops"].get<double>(), 1) : "–") << " | "
         << (here && !one.is_null()
                 ? fixed(c["sgemm_gflops"].get<double>() / one["sgemm_gflops"].get<double>()) + "x"
                 : "–")
         << " | " << (here ? fixed(c["triad_gbs"].get<double>(), 1) : "–") << " |";
    }
    md << "\n";
  }
  return md.str() + share_of_sgemm(results, size, threads.back(), batches);
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
