#include "study/report_figures.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <tuple>

#include "study/report_tables.h"

namespace histocnn {
namespace {

const char* kNoGpu = "no GPU measurements in these results";

bool histocnn_gpu(const StudyRow& r, const std::string& allocator, int batch) {
  return r["engine"] == "histocnn" && r["device"] == "cuda" && r["allocator"] == allocator &&
         r["batch"] == batch;
}

// Epoch seconds over image size for the rows `predicate` selects.
Series over_size(const StudyResults& results, const std::string& title,
                 const std::function<bool(const StudyRow&)>& predicate) {
  Series s{title, {}};
  for (const auto& r : results.where(predicate))
    s.points.push_back({r["size"].get<double>(), r["epoch_seconds"].get<double>()});
  std::sort(s.points.begin(), s.points.end());
  return s;
}

// The image-size axis of a figure over sizes: a tic at each size measured
// (the grid's sizes are few and uneven: 32, 64, 128, 180, 200), and, with a
// single size, a range around it (gnuplot's own put the point between tics
// like 31.9 and 32.1).
std::string size_axis(const StudyResults& results) {
  if (results.sizes.empty()) return "";
  std::string tics;
  for (int size : results.sizes) tics += (tics.empty() ? "" : ", ") + std::to_string(size);
  std::string axis = "set xtics (" + tics + ")\n";
  const int lo = *results.sizes.begin(), hi = *results.sizes.rbegin();
  if (lo == hi)
    axis += "set xrange [" + std::to_string(lo / 2) + ":" + std::to_string(lo + lo / 2) + "]\n";
  else
    axis += "set offsets graph 0.03, graph 0.03, 0, 0\n";
  return axis;
}

Figure figure(std::string name, std::string caption, std::string title, std::string xlabel,
              std::string ylabel) {
  Figure f;
  f.name = std::move(name);
  f.caption = std::move(caption);
  f.title = std::move(title);
  f.xlabel = std::move(xlabel);
  f.ylabel = std::move(ylabel);
  return f;
}

// "histocnn", "PyTorch" or "histocnn and PyTorch": the engines measured on
// `device` (histocnn when none was, as the figure then says it was not drawn).
std::string engines_on(const StudyResults& results, const std::string& device) {
  bool ours = false, torch = false;
  for (const auto& r : results.ok) {
    if (r["device"] != device) continue;
    (r["engine"] == "pytorch" ? torch : ours) = true;
  }
  if (ours && torch) return "histocnn and PyTorch";
  return torch ? "PyTorch" : "histocnn";
}

}  // namespace

std::vector<Figure> gpu_time_figures(const StudyResults& results) {
  std::vector<Figure> figures;
  for (const auto& [name, allocator, what, number] :
       std::vector<std::tuple<std::string, std::string, std::string, std::string>>{
           {"fig3_gpu_direct", "direct", "cnmem = 0 (direct cudaMalloc/cudaFree)", "3"},
           {"fig4_gpu_pool", "pool", "cnmem = 1 (pool)", "4"}}) {
    Figure f = figure(name, "GPU epoch time, " + what + " (paper Fig. " + number + ")",
                      "histocnn on the GPU, allocator " + allocator + ": epoch time per batch",
                      "image size (px)", "seconds per epoch");
    f.extra = size_axis(results);
    const std::string& pool = allocator;  // a lambda may not capture a structured binding (clang)
    for (int b : results.batches)
      f.series.push_back(over_size(results, "batch " + std::to_string(b),
                                   [&](const StudyRow& r) { return histocnn_gpu(r, pool, b); }));
    f.why_not = kNoGpu;
    figures.push_back(f);
  }
  return figures;
}

std::vector<Figure> allocator_figures(const StudyResults& results) {
  std::vector<Figure> figures;
  for (int b : results.batches) {
    const std::string batch = std::to_string(b);
    Figure f = figure(
        "fig5_allocators_b" + batch, "Allocators at batch " + batch + " (paper Fig. 5)",
        engines_on(results, "cuda") + " on the GPU, batch " + batch + ": epoch time per allocator",
        "image size (px)", "seconds per epoch");
    f.extra = size_axis(results);
    for (const std::string allocator : {"direct", "pool", "async", "plan", "plan+graphs"})
      f.series.push_back(over_size(results, "histocnn " + allocator, [&](const StudyRow& r) {
        return histocnn_gpu(r, allocator, b);
      }));
    f.series.push_back(over_size(results, "PyTorch cuda", [&](const StudyRow& r) {
      return r["engine"] == "pytorch" && r["device"] == "cuda" && r["batch"] == b;
    }));
    f.why_not = kNoGpu;
    figures.push_back(f);
  }
  return figures;
}

std::vector<Figure> speedup_figures(const StudyResults& results) {
  const int big = results.largest_size();
  Figure f = figure(
      "fig6_speedup",
      "Speed-up t_cpu / t_gpu against CPU cores at " + std::to_string(big) + " px (paper Fig. 6)",
      "histocnn at " + std::to_string(big) + " px: CPU epoch time over GPU epoch time", "CPU cores",
      "t_cpu / t_gpu");
  f.logx = true;
  for (const std::string allocator : {"direct", "pool", "plan"})
    for (int b : results.batches) {
      Series s{allocator + ", batch " + std::to_string(b), {}};
      for (const auto& [cores, ratio] : cpu_over_gpu(results, allocator, big, b))
        s.points.push_back({double(cores), ratio});
      if (!s.points.empty()) f.series.push_back(s);
    }
  f.essential.assign(f.series.size(), true);
  Series paper{"paper (GTX-980 vs Core i7)", {}, "points pt 7 ps 1.5"};
  for (const auto& [cores, v] : paper_speedup()) paper.points.push_back({double(cores), v});
  f.series.push_back(paper);
  f.essential.push_back(false);
  f.why_not = "no GPU and CPU measurements at the same size and batch";
  return {f};
}

std::vector<Figure> cpu_time_figures(const StudyResults& results) {
  const int threads = results.most_threads();
  const std::string engines = engines_on(results, "cpu");
  Figure f =
      figure("fig_cpu_time", "CPU epoch time, " + std::to_string(threads) + " threads: " + engines,
             engines + " on the CPU, " + std::to_string(threads) + " threads: epoch time per batch",
             "image size (px)", "seconds per epoch");
  f.logy = true;
  f.extra = size_axis(results);
  for (const std::string engine : {"histocnn", "pytorch"})
    for (int b : results.batches)
      f.series.push_back(
          over_size(results, engine + ", batch " + std::to_string(b), [&](const StudyRow& r) {
            return r["engine"] == engine && r["device"] == "cpu" && r["threads"] == threads &&
                   r["batch"] == b;
          }));
  f.why_not = "no CPU measurements";
  return {f};
}

std::vector<Figure> cpu_scaling_figures(const StudyResults& results) {
  const int big = results.largest_size();
  Figure f = figure("fig_cpu_scaling",
                    "CPU scaling at " + std::to_string(big) + " px: speed-up over 1 thread",
                    engines_on(results, "cpu") + " on the CPU at " + std::to_string(big) +
                        " px: speed-up over 1 thread, per batch",
                    "threads", "speed-up over 1 thread");
  f.logx = true;
  for (const std::string engine : {"histocnn", "pytorch"})
    for (int b : results.batches) {
      auto rows = results.where([&](const StudyRow& r) {
        return r["engine"] == engine && r["device"] == "cpu" && r["size"] == big && r["batch"] == b;
      });
      std::sort(rows.begin(), rows.end(),
                [](const StudyRow& a, const StudyRow& c) { return a["threads"] < c["threads"]; });
      if (rows.size() < 2 || rows[0]["threads"] != 1) continue;
      Series s{engine + ", batch " + std::to_string(b), {}};
      for (const auto& r : rows)
        s.points.push_back({r["threads"].get<double>(), rows[0]["epoch_seconds"].get<double>() /
                                                            r["epoch_seconds"].get<double>()});
      f.series.push_back(s);
    }
  f.essential.assign(f.series.size(), true);
  // The cores' own sgemm (study --ceilings): how far matrix arithmetic scales here.
  if (const nlohmann::json one = cpu_ceilings(results, 1); !one.is_null()) {
    Series sgemm{"sgemm on these cores", {}, "linespoints dt 3"};
    for (int t : results.cpu_threads)
      if (const nlohmann::json c = cpu_ceilings(results, t); !c.is_null())
        sgemm.points.push_back(
            {double(t), c["sgemm_gflops"].get<double>() / one["sgemm_gflops"].get<double>()});
    if (sgemm.points.size() > 1) f.series.push_back(sgemm), f.essential.push_back(false);
  }
  Series ideal{"ideal", {}, "lines dt 2"};
  for (int t : results.cpu_threads) ideal.points.push_back({double(t), double(t)});
  f.series.push_back(ideal);
  f.essential.push_back(false);
  f.why_not = "needs measurements at 1 thread and more";
  return {f};
}

int execution_rank(const std::string& label) {
  const bool backward = label.find("backward") != std::string::npos;
  int index = 0;
  const size_t digits = label.find_first_of("0123456789");
  if (digits != std::string::npos) index = std::atoi(label.c_str() + digits);
  int block = label.rfind("conv", 0) == 0                                    ? index
              : label.rfind("gap", 0) == 0 || label.rfind("flatten", 0) == 0 ? 100
              : label.rfind("fc", 0) == 0                                    ? 200 + index
                                                                             : 0;
  if (label == "input") return 0;
  if (label == "loss") return 1000;
  if (label == "update") return 3000;
  return backward ? 2000 + (999 - block) : 1 + block;
}

namespace {

// The histocnn measurement with a profile at the largest size x batch (most
// threads among equals): the steadiest picture of a step.
const StudyRow* largest_profiled(const StudyResults& results) {
  const StudyRow* largest = nullptr;
  auto work = [](const StudyRow& r) { return r["size"].get<int>() * r["batch"].get<int>(); };
  for (const auto& r : results.ok) {
    if (r["engine"] != "histocnn" || !r.contains("profile")) continue;
    if (!largest || work(r) > work(*largest) ||
        (r["size"] == (*largest)["size"] && r["batch"] == (*largest)["batch"] &&
         r["threads"].get<int>() > (*largest)["threads"].get<int>()))
      largest = &r;
  }
  return largest;
}

std::string point_of(const StudyRow& r) {
  return " (" + setup_label(r) + ", " + std::to_string(r["size"].get<int>()) + " px, batch " +
         std::to_string(r["batch"].get<int>()) + ")";
}

Figure breakdown_figure(const StudyRow* row) {
  Figure f =
      figure("fig_breakdown", "Where the time goes per step", "", "", "milliseconds per step");
  f.why_not = "no histocnn measurement with a profile";
  if (!row) return f;
  const auto& p = (*row)["profile"];
  const double steps = std::max(1.0, p["steps"].get<double>());
  const std::vector<std::pair<std::string, std::string>> parts = {
      {"data", "data_wait_seconds"},
      {"forward", "forward_seconds"},
      {"backward", "backward_seconds"},
      {"optimizer", "update_seconds"},
      {"allocator", "allocator_seconds"}};
  for (size_t i = 0; i < parts.size(); ++i) {
    const double ms = 1000 * p[parts[i].second].get<double>() / steps;
    f.series.push_back(
        {parts[i].first + " " + fixed(ms, 2) + " ms", {{double(i), ms}}, "boxes fs solid 0.6"});
  }
  f.caption += point_of(*row);
  f.title = "Per-step time," + point_of(*row);
  f.extra =
      "set boxwidth 0.7\nset xtics ('data' 0, 'forward' 1, 'backward' 2, 'optimizer' 3, "
      "'allocator' 4)\nset yrange [0:*]\n";
  return f;
}

Figure layer_figure(const StudyRow* row) {
  Figure f = figure("fig_layers", "Per-layer time per step", "", "", "milliseconds per step");
  f.why_not = "no histocnn CPU measurement with per-layer times";
  if (!row || !(*row)["profile"].contains("layer_seconds")) return f;
  const auto& p = (*row)["profile"];
  const double steps = std::max(1.0, p["steps"].get<double>());
  std::vector<std::pair<std::string, double>> bars;
  for (const auto& [name, seconds] : p["layer_seconds"].items())
    bars.push_back({name, 1000 * seconds.get<double>() / steps});
  std::sort(bars.begin(), bars.end(), [](const auto& a, const auto& b) {
    return execution_rank(a.first) < execution_rank(b.first);
  });
  f.series = {{"forward", {}, "boxes fs solid 0.6"},
              {"backward", {}, "boxes fs solid 0.6"},
              {"loss, update, input", {}, "boxes fs solid 0.6"}};
  std::string tics = "set xtics rotate by -45 (";
  f.table_md = "| layer, direction | ms per step |\n|---|---|\n";
  for (size_t i = 0; i < bars.size(); ++i) {
    const std::string& name = bars[i].first;
    const size_t kind = name.find("forward") != std::string::npos    ? 0
                        : name.find("backward") != std::string::npos ? 1
                                                                     : 2;
    f.series[kind].points.push_back({double(i), bars[i].second});
    tics += (i ? ", '" : "'") + name + "' " + std::to_string(i);
    f.table_md += "| " + name + " | " + fixed(bars[i].second, 2) + " |\n";
  }
  f.extra = "set boxwidth 0.7\n" + tics + ")\nset yrange [0:*]\n";
  f.caption += point_of(*row);
  f.title = "Per-layer time per step," + point_of(*row);
  return f;
}

}  // namespace

std::vector<Figure> step_breakdown_figures(const StudyResults& results) {
  const StudyRow* row = largest_profiled(results);
  return {breakdown_figure(row), layer_figure(row)};
}

const std::vector<FigureFunction>& report_figures() {
  static const std::vector<FigureFunction> all = {gpu_time_figures,    allocator_figures,
                                                  speedup_figures,     cpu_time_figures,
                                                  cpu_scaling_figures, step_breakdown_figures};
  return all;
}

}  // namespace histocnn
