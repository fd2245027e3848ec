#include "study/report.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/process.h"
#include "study/gnuplot.h"
#include "study/study.h"

namespace histocnn {
namespace fs = std::filesystem;

namespace {

// The paper's speed-up of a GTX-980 over a 16-core Core i7, against 16/8/4/2/1 cores.
const std::map<int, double> kPaperSpeedup = {
    {16, 4.49}, {8, 5.00}, {4, 7.58}, {2, 11.97}, {1, 16.19}};

using Row = nlohmann::json;

struct Series {
  std::string title;
  std::vector<std::pair<double, double>> points;  // x, y
  std::string style = "linespoints";
};

std::string label_of(const Row& r) {
  std::string s = r["engine"].get<std::string>() + " " + r["device"].get<std::string>();
  if (r["device"] == "cpu")
    s += " " + std::to_string(r["threads"].get<int>()) + "t";
  else
    s += " " + r["allocator"].get<std::string>();
  return s;
}

// Where an operation label ("conv2 backward", "fc1 forward", "loss", ...)
// falls in a step: input, forward layers in order, loss, backward layers in
// reverse, update.
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

std::string html_escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

class Plotter {
 public:
  explicit Plotter(std::string dir) : dir_(std::move(dir)) {}

  // Writes data + script, runs gnuplot for PNG and SVG. Returns false (and
  // plots nothing) when there is no data.
  bool plot(const std::string& name, const std::string& title, const std::string& xlabel,
            const std::string& ylabel, const std::vector<Series>& series, bool logx = false,
            const std::string& extra = "") {
    std::vector<const Series*> nonempty;
    for (const auto& s : series)
      if (!s.points.empty()) nonempty.push_back(&s);
    if (nonempty.empty()) return false;
    std::string data;
    for (const Series* s : nonempty) {
      data += "# " + s->title + "\n";
      for (const auto& [x, y] : s->points)
        data += std::to_string(x) + " " + std::to_string(y) + "\n";
      data += "\n\n";
    }
    write_file_atomically(dir_ + "/" + name + ".dat", data);
    std::ostringstream gp;
    const std::string base = gnuplot_path(dir_ + "/" + name);
    gp << "set title \"" << gnuplot_text(title) << "\"\nset xlabel \"" << gnuplot_text(xlabel)
       << "\"\nset ylabel \"" << gnuplot_text(ylabel) << "\"\nset grid\nset key outside right\n"
       << (logx ? "set logscale x 2\n" : "") << extra << "plot ";
    for (size_t i = 0; i < nonempty.size(); ++i)
      gp << (i ? ", " : "") << "'" << base << ".dat' index " << i << " with " << nonempty[i]->style
         << " lw 2 title \"" << gnuplot_text(nonempty[i]->title) << "\"";
    gp << "\n";
    render_gnuplot(dir_ + "/" + name, gp.str());
    return true;
  }

 private:
  std::string dir_;
};

std::string fmt(double v, int digits = 2) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "%.*f", digits, v);
  return buf;
}

}  // namespace

std::string write_report(const std::string& results_in, const std::string& output) {
  const std::string results =
      fs::is_directory(results_in) ? results_in + "/results.jsonl" : results_in;
  require(fs::exists(results), results + ": no study results found");
  const auto rows = read_results(results);
  require(!rows.empty(), results + ": no measurements yet");
  make_directories(output);
  Plotter plot(output);
  std::vector<Row> ok;
  std::vector<Row> not_run;
  for (const auto& r : rows) (r.value("status", "") == "ok" ? ok : not_run).push_back(r);
  auto find = [&](auto predicate) {
    std::vector<Row> out;
    for (const auto& r : ok)
      if (predicate(r)) out.push_back(r);
    return out;
  };
  std::set<int> sizes, batches, threads;
  for (const auto& r : ok)
    sizes.insert(r["size"].get<int>()), batches.insert(r["batch"].get<int>());
  for (const auto& r : ok)
    if (r["device"] == "cpu") threads.insert(r["threads"].get<int>());
  const int max_threads = threads.empty() ? 0 : *threads.rbegin();
  const int big = sizes.empty() ? 0 : *sizes.rbegin();

  std::ostringstream md;
  md << "# histocnn study report\n\nFrom `" << results << "`: " << ok.size() << " measurements, "
     << not_run.size() << " not run.\n\n";
  if (!rows.empty() && rows[0].contains("machine")) {
    const auto& m = rows[0]["machine"];
    md << "Machine: CPU " << m.value("cpu", "?") << " (" << m.value("cores", 0) << " cores); GPU "
       << (m.value("gpu", "").empty() ? std::string("none") : m.value("gpu", "")) << ".\n\n";
  }
  auto figure = [&](const std::string& name, const std::string& caption, bool drawn,
                    const std::string& why) {
    md << "### " << caption << "\n\n";
    if (drawn)
      md << "![" << caption << "](" << name << ".png) ([SVG](" << name << ".svg))\n\n";
    else
      md << "*Not drawn: " << why << ".*\n\n";
  };

  // Figs. 3 and 4: GPU time over image size, one line per batch, pool off / on.
  for (const auto& [fig, alloc, what] :
       std::vector<std::tuple<std::string, std::string, std::string>>{
           {"fig3_gpu_direct", "direct", "cnmem = 0 (direct cudaMalloc/cudaFree)"},
           {"fig4_gpu_pool", "pool", "cnmem = 1 (pool)"}}) {
    std::vector<Series> series;
    for (int b : batches) {
      Series s{"batch " + std::to_string(b), {}};
      for (const auto& r : find([&](const Row& r) {
             return r["engine"] == "histocnn" && r["device"] == "cuda" && r["allocator"] == alloc &&
                    r["batch"] == b;
           }))
        s.points.push_back({r["size"].get<double>(), r["epoch_seconds"].get<double>()});
      series.push_back(s);
    }
    figure(
        fig, "GPU epoch time, " + what + " (paper Fig. " + (alloc == "direct" ? "3" : "4") + ")",
        plot.plot(fig, "GPU epoch time, " + what, "image size (px)", "seconds per epoch", series),
        "no GPU measurements in these results");
  }
  // Fig. 5: per batch, allocators compared across sizes (+ PyTorch).
  for (int b : batches) {
    std::vector<Series> series;
    for (const std::string alloc : {"direct", "pool", "async", "plan", "plan+graphs"}) {
      Series s{"histocnn " + alloc, {}};
      for (const auto& r : find([&](const Row& r) {
             return r["engine"] == "histocnn" && r["device"] == "cuda" && r["allocator"] == alloc &&
                    r["batch"] == b;
           }))
        s.points.push_back({r["size"].get<double>(), r["epoch_seconds"].get<double>()});
      series.push_back(s);
    }
    Series torch{"PyTorch cuda", {}};
    for (const auto& r : find([&](const Row& r) {
           return r["engine"] == "pytorch" && r["device"] == "cuda" && r["batch"] == b;
         }))
      torch.points.push_back({r["size"].get<double>(), r["epoch_seconds"].get<double>()});
    series.push_back(torch);
    const std::string name = "fig5_allocators_b" + std::to_string(b);
    figure(name, "Allocators at batch " + std::to_string(b) + " (paper Fig. 5)",
           plot.plot(name, "GPU epoch time by allocator, batch " + std::to_string(b),
                     "image size (px)", "seconds per epoch", series),
           "no GPU measurements in these results");
  }
  // Fig. 6: speed-up t_cpu / t_gpu against CPU cores at the largest size.
  {
    std::vector<Series> series;
    for (const std::string alloc : {"direct", "pool", "plan"})
      for (int b : batches) {
        const auto gpu = find([&](const Row& r) {
          return r["engine"] == "histocnn" && r["device"] == "cuda" && r["allocator"] == alloc &&
                 r["size"] == big && r["batch"] == b;
        });
        if (gpu.empty()) continue;
        Series s{alloc + ", batch " + std::to_string(b), {}};
        for (const auto& r : find([&](const Row& r) {
               return r["engine"] == "histocnn" && r["device"] == "cpu" && r["size"] == big &&
                      r["batch"] == b;
             }))
          s.points.push_back(
              {r["threads"].get<double>(),
               r["epoch_seconds"].get<double>() / gpu[0]["epoch_seconds"].get<double>()});
        std::sort(s.points.begin(), s.points.end());
        series.push_back(s);
      }
    Series paper{"paper (GTX-980 vs Core i7)", {}, "points pt 7 ps 1.5"};
    for (const auto& [cores, v] : kPaperSpeedup) paper.points.push_back({double(cores), v});
    const bool have_gpu = series.size() > 0;
    series.push_back(paper);
    figure(
        "fig6_speedup",
        "Speed-up t_cpu / t_gpu against CPU cores at " + std::to_string(big) + " px (paper Fig. 6)",
        have_gpu && plot.plot("fig6_speedup", "GPU speed-up over the CPU", "CPU cores",
                              "t_cpu / t_gpu", series, true),
        "no GPU measurements in these results");
  }
  // CPU: epoch time over image size per batch, histocnn vs PyTorch, most threads.
  {
    std::vector<Series> series;
    for (const std::string engine : {"histocnn", "pytorch"})
      for (int b : batches) {
        Series s{engine + ", batch " + std::to_string(b), {}};
        for (const auto& r : find([&](const Row& r) {
               return r["engine"] == engine && r["device"] == "cpu" &&
                      r["threads"] == max_threads && r["batch"] == b;
             }))
          s.points.push_back({r["size"].get<double>(), r["epoch_seconds"].get<double>()});
        std::sort(s.points.begin(), s.points.end());
        series.push_back(s);
      }
    figure("fig_cpu_time",
           "CPU epoch time, " + std::to_string(max_threads) + " threads: histocnn and PyTorch",
           plot.plot("fig_cpu_time", "CPU epoch time (" + std::to_string(max_threads) + " threads)",
                     "image size (px)", "seconds per epoch", series, false, "set logscale y\n"),
           "no CPU measurements");
  }
  // CPU scaling at the largest size.
  {
    std::vector<Series> series;
    for (const std::string engine : {"histocnn", "pytorch"})
      for (int b : batches) {
        auto pts = find([&](const Row& r) {
          return r["engine"] == engine && r["device"] == "cpu" && r["size"] == big &&
                 r["batch"] == b;
        });
        std::sort(pts.begin(), pts.end(),
                  [](const Row& a, const Row& c) { return a["threads"] < c["threads"]; });
        if (pts.size() < 2 || pts[0]["threads"] != 1) continue;
        Series s{engine + ", batch " + std::to_string(b), {}};
        for (const auto& r : pts)
          s.points.push_back({r["threads"].get<double>(), pts[0]["epoch_seconds"].get<double>() /
                                                              r["epoch_seconds"].get<double>()});
        series.push_back(s);
      }
    Series ideal{"ideal", {}, "lines dt 2"};
    for (int t : threads) ideal.points.push_back({double(t), double(t)});
    const bool any = !series.empty();
    series.push_back(ideal);
    figure("fig_cpu_scaling",
           "CPU scaling at " + std::to_string(big) + " px: speed-up over 1 thread",
           any && plot.plot("fig_cpu_scaling", "CPU scaling", "threads", "speed-up over 1 thread",
                            series, true),
           "needs measurements at 1 thread and more");
  }
  // Where the time goes per step, for the largest configuration.
  {
    const Row* largest = nullptr;
    for (const auto& r : ok)
      if (r["engine"] == "histocnn" && r.contains("profile") &&
          (!largest ||
           r["size"].get<int>() * r["batch"].get<int>() >
               (*largest)["size"].get<int>() * (*largest)["batch"].get<int>() ||
           (r["size"] == (*largest)["size"] && r["batch"] == (*largest)["batch"] &&
            r["threads"].get<int>() > (*largest)["threads"].get<int>())))
        largest = &r;
    bool drawn = false;
    std::string caption = "Where the time goes per step";
    if (largest) {
      const auto& p = (*largest)["profile"];
      const double steps = std::max(1.0, p["steps"].get<double>());
      const std::vector<std::pair<std::string, double>> parts = {
          {"data wait", p["data_wait_seconds"].get<double>() / steps},
          {"forward", p["forward_seconds"].get<double>() / steps},
          {"backward", p["backward_seconds"].get<double>() / steps},
          {"optimizer", p["update_seconds"].get<double>() / steps},
          {"allocator", p["allocator_seconds"].get<double>() / steps}};
      std::vector<Series> series;
      for (size_t i = 0; i < parts.size(); ++i)
        series.push_back({parts[i].first + " " + fmt(1000 * parts[i].second, 2) + " ms",
                          {{double(i), 1000 * parts[i].second}},
                          "boxes fs solid 0.6"});
      caption += " (" + label_of(*largest) + ", " + std::to_string((*largest)["size"].get<int>()) +
                 " px, batch " + std::to_string((*largest)["batch"].get<int>()) + ")";
      drawn =
          plot.plot("fig_breakdown", "Per-step time", "", "milliseconds per step", series, false,
                    "set boxwidth 0.7\nset xtics ('data' 0, 'forward' 1, 'backward' 2, 'optimizer' "
                    "3, 'allocator' 4)\nset yrange [0:*]\n");
    }
    figure("fig_breakdown", caption, drawn, "no histocnn measurement with a profile");

    // One bar per layer and direction, in execution order, for the same point.
    bool layers_drawn = false;
    std::string layers_caption = "Per-layer time per step";
    if (largest && (*largest)["profile"].contains("layer_seconds")) {
      const auto& p = (*largest)["profile"];
      const double steps = std::max(1.0, p["steps"].get<double>());
      std::vector<std::pair<std::string, double>> bars;
      for (const auto& [name, seconds] : p["layer_seconds"].items())
        bars.push_back({name, 1000 * seconds.get<double>() / steps});
      std::sort(bars.begin(), bars.end(), [](const auto& a, const auto& b) {
        return execution_rank(a.first) < execution_rank(b.first);
      });
      Series forward{"forward", {}, "boxes fs solid 0.6"},
          backward{"backward", {}, "boxes fs solid 0.6"},
          other{"loss, update, input", {}, "boxes fs solid 0.6"};
      std::string tics = "set xtics rotate by -45 (";
      for (size_t i = 0; i < bars.size(); ++i) {
        const std::string& name = bars[i].first;
        Series& s = name.find("forward") != std::string::npos    ? forward
                    : name.find("backward") != std::string::npos ? backward
                                                                 : other;
        s.points.push_back({double(i), bars[i].second});
        tics += (i ? ", '" : "'") + name + "' " + std::to_string(i);
      }
      tics += ")\n";
      layers_caption += " (" + label_of(*largest) + ", " +
                        std::to_string((*largest)["size"].get<int>()) + " px, batch " +
                        std::to_string((*largest)["batch"].get<int>()) + ")";
      layers_drawn = plot.plot("fig_layers", "Per-layer time per step", "", "milliseconds per step",
                               {forward, backward, other}, false,
                               "set boxwidth 0.7\n" + tics + "set yrange [0:*]\n");
      md << "\n| layer, direction | ms per step |\n|---|---|\n";
      for (const auto& [name, ms] : bars) md << "| " << name << " | " << fmt(ms, 2) << " |\n";
    }
    figure("fig_layers", layers_caption, layers_drawn,
           "no histocnn CPU measurement with per-layer times");
  }

  // Tables: every measurement, and the speed-up table beside the paper.
  md << "## Measurements\n\n| engine | device | threads | allocator | size | batch | s/epoch | "
        "img/s | peak MB | train acc |\n"
        "|---|---|---|---|---|---|---|---|---|---|\n";
  for (const auto& r : ok)
    md << "| " << r["engine"].get<std::string>() << " | " << r["device"].get<std::string>() << " | "
       << r["threads"] << " | " << r.value("allocator", "") << " | " << r["size"] << " | "
       << r["batch"] << " | " << fmt(r["epoch_seconds"].get<double>(), 3) << " | "
       << fmt(r["images_per_second"].get<double>(), 0) << " | "
       << (r.contains("peak_memory_bytes") && !r["peak_memory_bytes"].is_null()
               ? fmt(r["peak_memory_bytes"].get<double>() / 1e6, 0)
               : "")
       << " | "
       << (r.contains("final_train_accuracy") ? fmt(r["final_train_accuracy"].get<double>(), 3)
                                              : "")
       << " |\n";
  // histocnn vs PyTorch, same point.
  md << "\n## histocnn vs PyTorch (same device, threads, size, batch)\n\n| device | threads | size "
        "| batch | histocnn s | PyTorch s | ratio |\n|---|---|---|---|---|---|---|\n";
  for (const auto& r : ok) {
    if (r["engine"] != "pytorch") continue;
    for (const auto& h : find([&](const Row& h) {
           return h["engine"] == "histocnn" && h["device"] == r["device"] &&
                  h["threads"] == r["threads"] && h["size"] == r["size"] &&
                  h["batch"] == r["batch"] &&
                  (r["device"] == "cpu" || h["allocator"] == "plan" || h["allocator"] == "pool");
         }))
      md << "| " << r["device"].get<std::string>()
         << (h["device"] == "cuda" ? " " + h["allocator"].get<std::string>() : "") << " | "
         << r["threads"] << " | " << r["size"] << " | " << r["batch"] << " | "
         << fmt(h["epoch_seconds"].get<double>(), 3) << " | "
         << fmt(r["epoch_seconds"].get<double>(), 3) << " | "
         << fmt(r["epoch_seconds"].get<double>() / h["epoch_seconds"].get<double>(), 1) << "x |\n";
  }
  md << "\n## Speed-up t_cpu / t_gpu at " << big
     << " px against the paper\n\n| CPU cores | paper (GTX-980) |";
  for (int b : batches) md << " batch " << b << " (pool) |";
  md << "\n|---|---|";
  for (size_t i = 0; i < batches.size(); ++i) md << "---|";
  md << "\n";
  for (const auto& [cores, paper] : kPaperSpeedup) {
    md << "| " << cores << " | " << fmt(paper) << " |";
    for (int b : batches) {
      const auto cpu = find([&](const Row& r) {
        return r["engine"] == "histocnn" && r["device"] == "cpu" && r["threads"] == cores &&
               r["size"] == big && r["batch"] == b;
      });
      const auto gpu = find([&](const Row& r) {
        return r["engine"] == "histocnn" && r["device"] == "cuda" && r["allocator"] == "pool" &&
               r["size"] == big && r["batch"] == b;
      });
      md << " "
         << (cpu.empty() || gpu.empty() ? std::string("–")
                                        : fmt(cpu[0]["epoch_seconds"].get<double>() /
                                              gpu[0]["epoch_seconds"].get<double>()))
         << " |";
    }
    md << "\n";
  }
  if (!not_run.empty()) {
    md << "\n## Not run\n\n| measurement | status | reason |\n|---|---|---|\n";
    for (const auto& r : not_run)
      md << "| " << r.value("key", "") << " | " << r.value("status", "") << " | "
         << r.value("reason", "") << " |\n";
  }
  const std::string md_path = output + "/report.md";
  write_file_atomically(md_path, md.str());
  // HTML: the same content, minimally converted (headings, images, tables as <pre>).
  std::ostringstream html;
  html << "<!doctype html><meta charset=utf-8><title>histocnn study report</title>"
          "<style>body{font-family:sans-serif;max-width:1000px;margin:auto}img{max-width:100%}"
          "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}</style>\n";
  std::istringstream lines(md.str());
  bool in_table = false;
  for (std::string line; std::getline(lines, line);) {
    const bool table_line = line.rfind("|", 0) == 0;
    if (table_line && line.find("---") != std::string::npos) continue;
    if (table_line && !in_table) html << "<table>\n", in_table = true;
    if (!table_line && in_table) html << "</table>\n", in_table = false;
    if (table_line) {
      html << "<tr>";
      std::stringstream cells(line.substr(1));
      for (std::string cell; std::getline(cells, cell, '|');)
        html << "<td>" << html_escape(cell) << "</td>";
      html << "</tr>\n";
    } else if (line.rfind("### ", 0) == 0) {
      html << "<h3>" << html_escape(line.substr(4)) << "</h3>\n";
    } else if (line.rfind("## ", 0) == 0) {
      html << "<h2>" << html_escape(line.substr(3)) << "</h2>\n";
    } else if (line.rfind("# ", 0) == 0) {
      html << "<h1>" << html_escape(line.substr(2)) << "</h1>\n";
    } else if (line.rfind("![", 0) == 0) {
      const auto open = line.find("]("), close = line.find(')', open);
      html << "<p><img src=\"" << html_escape(line.substr(open + 2, close - open - 2))
           << "\" alt=\"" << html_escape(line.substr(2, open - 2)) << "\"></p>\n";
    } else if (!line.empty()) {
      html << "<p>" << html_escape(line) << "</p>\n";
    }
  }
  if (in_table) html << "</table>\n";
  write_file_atomically(output + "/report.html", html.str());
  return md_path;
}

}  // namespace histocnn
