#include "study/study.h"

#include <unistd.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "backends/backend.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/process.h"
#include "core/run_lock.h"
#include "core/threads.h"
#include "data/synth.h"
#include "study/machine_ceilings.h"

namespace histocnn {
namespace fs = std::filesystem;

namespace {

// Runs a measurement's process, output to `log`; its exit code. Ctrl-C (or
// a kill) of the child stops the study: nothing is recorded for the point,
// which runs again on resume.
int run_command(const std::vector<std::string>& argv, const std::string& log) {
  const ProcessResult r = run_process(argv, log);
  if (r.signal == SIGINT || r.signal == SIGTERM || r.signal == SIGKILL || r.signal == SIGHUP)
    fail("study interrupted (" + std::string(strsignal(r.signal)) +
         "); run the same command again to resume");
  return r.signal ? 128 + r.signal : r.exit_code;
}

std::string last_line(const std::string& path) {
  std::ifstream in(path);
  std::string line, last;
  while (std::getline(in, line))
    if (!line.empty() && line.find('\r') == std::string::npos) last = line;
  return last;
}

std::string first_line_of_command(const std::string& command) {
  FILE* pipe = popen((command + " 2>/dev/null").c_str(), "r");
  if (!pipe) return "";
  std::array<char, 512> buffer{};
  std::string out = fgets(buffer.data(), buffer.size(), pipe) ? buffer.data() : "";
  pclose(pipe);
  while (!out.empty() && (out.back() == '\n' || out.back() == '\r')) out.pop_back();
  return out;
}

std::string format_duration(double s) {
  char buf[32];
  if (s >= 3600)
    std::snprintf(buf, sizeof buf, "%.1fh", s / 3600);
  else if (s >= 60)
    std::snprintf(buf, sizeof buf, "%.1fm", s / 60);
  else
    std::snprintf(buf, sizeof buf, "%.0fs", s);
  return buf;
}

}  // namespace

double median(std::vector<double> v) {
  if (v.empty()) return 0;
  std::sort(v.begin(), v.end());
  return v.size() % 2 ? v[v.size() / 2] : 0.5 * (v[v.size() / 2 - 1] + v[v.size() / 2]);
}

std::string StudyPoint::key() const {
  return engine + "/" + device + (allocator.empty() ? "" : ":" + allocator) + "/t" +
         std::to_string(threads) + "/s" + std::to_string(size) + "/b" + std::to_string(batch);
}

std::vector<StudyPoint> study_grid(const StudyOptions& o) {
  std::vector<StudyPoint> grid;
  for (int size : o.sizes)
    for (int batch : o.batches)
      for (const auto& engine : o.engines)
        for (const auto& device : o.devices) {
          if (device == "cpu") {
            for (int t : o.threads) grid.push_back({engine, "cpu", "", t, size, batch});
          } else if (engine == "pytorch") {
            grid.push_back({engine, device, "caching", 0, size, batch});
          } else {
            for (const auto& a : o.allocators) grid.push_back({engine, device, a, 0, size, batch});
          }
        }
  return grid;
}

nlohmann::json describe_machine() {
  nlohmann::json m;
  m["cpu"] =
      first_line_of_command("sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1");
  m["cores"] = available_cores();
  m["gpu"] =
      first_line_of_command("nvidia-smi --query-gpu=name,driver_version --format=csv,noheader");
  m["kernel"] = first_line_of_command("uname -sr");
  return m;
}

namespace {

// The cores a point runs on: its --threads, where 0 means all of them.
int cores_of(const StudyPoint& p) {
  return p.threads == 0 ? available_cores() : p.threads;
}

void write_csv(const std::string& path, const std::vector<nlohmann::json>& rows) {
  const char* columns[] = {"key",
                           "engine",
                           "device",
                           "allocator",
                           "threads",
                           "size",
                           "batch",
                           "status",
                           "reason",
                           "epoch_seconds",
                           "images_per_second",
                           "peak_memory_bytes",
                           "device_malloc_calls",
                           "final_train_accuracy",
                           "cpu",
                           "gpu"};
  std::string out;
  for (const char* c : columns) out += std::string(c) + (c == columns[15] ? "\n" : ",");
  for (const auto& r : rows) {
    for (const char* c : columns) {
      std::string v;
      const nlohmann::json* field = nullptr;
      if (r.contains(c))
        field = &r[c];
      else if (r.contains("machine") && r["machine"].contains(c))
        field = &r["machine"][c];
      if (field && !field->is_null())
        v = field->is_string() ? field->get<std::string>() : field->dump();
      if (v.find_first_of(",\"") != std::string::npos) {
        std::string q = "\"";
        for (char ch : v) q += ch == '"' ? std::string("\"\"") : std::string(1, ch);
        v = q + "\"";
      }
      out += v + (c == columns[15] ? "\n" : ",");
    }
  }
  write_file_atomically(path, out);
}

// `histocnn train` on the study's crop dataset at one size, all images, no fold.
std::vector<std::string> train_command(const StudyOptions& o, const std::string& data, int size) {
  return {o.binary,
          "train",
          "--data",
          data,
          "--split",
          "all",
          "--folds",
          "0",
          "--size",
          std::to_string(size),
          "--crop",
          std::to_string(o.crop),
          "--crops-benign",
          std::to_string(o.benign),
          "--crops-malignant",
          std::to_string(o.malignant),
          "--seed",
          std::to_string(o.seed)};
}

nlohmann::json measure_histocnn(const StudyOptions& o, const StudyPoint& p, const std::string& data,
                                const std::string& dir) {
  nlohmann::json row;
  if (p.device == "cuda") {
    const auto devices = available_devices();
    if (std::find(devices.begin(), devices.end(), "cuda") == devices.end()) {
      row["status"] = "skipped";
      row["reason"] = cuda_backend_built() ? "not run: no CUDA device on this machine"
                                           : "not run: " + no_cuda_backend_reason();
      return row;
    }
  }
  std::vector<std::string> argv = train_command(o, data, p.size);
  argv.insert(
      argv.end(),
      {"--batch", std::to_string(p.batch), "--epochs", std::to_string(o.warmup + o.epochs),
       "--threads", std::to_string(p.threads), "--device", p.device, "--no-progress",
       "--no-checkpoint", "-o", dir,
       "--force"});  // a point run again (failed, interrupted) starts over in its own folder
  // Per-layer times for the report (a clock read per operation: negligible).
  if (p.device == "cpu") argv.push_back("--profile-layers");
  // "plan+graphs": the planned arena with the step captured as a CUDA graph.
  if (p.allocator == "plan+graphs")
    argv.insert(argv.end(), {"--allocator", "plan", "--cuda-graphs"});
  else if (!p.allocator.empty())
    argv.insert(argv.end(), {"--allocator", p.allocator});
  const std::string log = dir + ".log";
  if (run_command(argv, log) != 0) {
    row["status"] = "failed";
    row["reason"] = last_line(log);
    return row;
  }
  const auto metrics = nlohmann::json::parse(read_file(dir + "/metrics.json"));
  std::vector<double> timed;
  const auto& history = metrics["history"];
  for (size_t e = size_t(o.warmup); e < history.size(); ++e) timed.push_back(history[e]["seconds"]);
  const double s = median(timed);
  row["status"] = "ok";
  row["epoch_seconds"] = s;
  row["epoch_seconds_all"] = timed;
  row["images_per_second"] = double(metrics["train_examples"].get<int>()) / s;
  row["final_train_accuracy"] = history.back()["train_accuracy"];
  // Measured: the high-water mark of the bytes the run's resource chain handed
  // out (tensors, workspaces, parameters and optimizer state; PyTorch's
  // max_memory_allocated is the same quantity), beside what the plan said.
  const int64_t planned = metrics["memory"]["activation_bytes"].get<int64_t>() +
                          metrics["memory"]["parameter_bytes"].get<int64_t>();
  row["planned_memory_bytes"] = planned;
  const auto& allocator = metrics.value("allocator", nlohmann::json::object());
  row["peak_memory_bytes"] = allocator.value("peak_bytes_in_use", planned);
  row["peak_reserved_bytes"] = allocator.value("peak_bytes_reserved", planned);
  row["device_malloc_calls"] = metrics.contains("allocator")
                                   ? metrics["allocator"]["device_malloc_calls"]
                                   : nlohmann::json(nullptr);
  row["profile"] = metrics["profile"];
  row["threads_used"] = metrics["threads"];
  row["library"] = metrics["memory"]["detail"];
  return row;
}

nlohmann::json measure_pytorch(const StudyOptions& o, const StudyPoint& p,
                               const std::string& examples, const std::string& dir) {
  nlohmann::json row;
  const std::string json = dir + ".json", log = dir + ".log";
  // glibc keeps freed memory (else every step faults fresh pages in, which
  // on some VMs costs PyTorch more than its arithmetic: see
  // docs/results/side-by-side-2core.md); histocnn's arena needs no setting.
  std::vector<std::string> argv = {"/usr/bin/env",
                                   "MALLOC_MMAP_MAX_=0",
                                   "MALLOC_TRIM_THRESHOLD_=1099511627776",
                                   o.python,
                                   o.pytorch_script,
                                   "--examples",
                                   examples,
                                   "--batch",
                                   std::to_string(p.batch),
                                   "--epochs",
                                   std::to_string(o.warmup + o.epochs),
                                   "--warmup",
                                   std::to_string(o.warmup),
                                   "--threads",
                                   std::to_string(p.threads),
                                   "--device",
                                   p.device,
                                   "--seed",
                                   std::to_string(o.seed),
                                   "--json",
                                   json};
  const int status = run_command(argv, log);
  if (status != 0) {
    const std::string reason = last_line(log);
    row["status"] = reason.find("skip:") != std::string::npos ? "skipped" : "failed";
    row["reason"] = reason;
    return row;
  }
  row = nlohmann::json::parse(read_file(json));
  row["status"] = "ok";
  row["pytorch_malloc"] = "freed memory kept (MALLOC_MMAP_MAX_=0)";
  return row;
}

// One measurement of a point (its own process), into `dir`.
nlohmann::json measure(const StudyOptions& o, const StudyPoint& p, const std::string& data,
                       const std::string& dir, std::map<int, std::string>& exported) {
  if (p.engine == "histocnn") return measure_histocnn(o, p, data, dir);
  if (!exported.count(p.size)) {
    const std::string file = o.output + "/points/examples_" + std::to_string(p.size) + ".bin";
    if (!fs::exists(file)) {
      std::vector<std::string> argv = train_command(o, data, p.size);
      argv.insert(argv.end(), {"-o", o.output + "/points/export", "--export-examples", file});
      const int status = run_command(argv, file + ".log");
      require(status == 0, "exporting crops for PyTorch failed: " + last_line(file + ".log"));
    }
    exported[p.size] = file;
  }
  return measure_pytorch(o, p, exported[p.size], dir);
}

// The rounds of one point folded into its row: the last round's details, the
// median of the rounds' epoch times; not ok when any round was not.
nlohmann::json fold_rounds(const std::vector<nlohmann::json>& rounds) {
  nlohmann::json row = rounds.back();
  std::vector<double> seconds;
  for (const auto& r : rounds) {
    if (r.value("status", "") != "ok") return r;
    seconds.push_back(r["epoch_seconds"].get<double>());
  }
  const double s = median(seconds);
  row["images_per_second"] =
      row["images_per_second"].get<double>() * row["epoch_seconds"].get<double>() / s;
  row["epoch_seconds"] = s;
  row["round_seconds"] = seconds;
  return row;
}

void check_study_options(const StudyOptions& o) {
  require(!o.output.empty(), "--output: a study folder is required");
  require(o.epochs >= 1, "--epochs: at least 1 timed epoch");
  require(o.warmup >= 0, "--warmup: must be >= 0");
  require(o.rounds >= 1, "--rounds: at least 1");
  for (const auto& d : o.devices)
    require(d == "cpu" || d == "cuda", "--devices: unknown device '" + d + "'");
  for (const auto& e : o.engines)
    require(e == "histocnn" || e == "pytorch",
            "--engines: unknown engine '" + e + "' (histocnn, pytorch)");
  for (int t : o.threads)
    require(t >= 0 && t <= available_cores(), "--threads: " + std::to_string(t) + " exceeds the " +
                                                  std::to_string(available_cores()) +
                                                  " available cores");
}

// The dataset the study trains on: --data, or the synthetic one. A study
// folder from before the cache keeps its own copy (its rows were measured on
// it); a new one shares the cached dataset.
std::string study_data(const StudyOptions& o) {
  if (!o.data.empty()) return o.data;
  const std::string own = o.output + "/synthetic";
  if (fs::exists(own + "/Grade.csv")) return own;
  SynthOptions synth;
  synth.seed = o.seed;
  return cached_synthetic_dataset(synth, own);
}

// The options that change every measurement: a study folder holds one set
// of them (a resume with others would mix incomparable rows). Written the
// first time, compared on every resume.
void check_study_signature(const StudyOptions& o) {
  const nlohmann::json signature = {
      {"data", o.data.empty() ? "synthetic" : fs::absolute(o.data).lexically_normal().string()},
      {"epochs", o.epochs},
      {"warmup", o.warmup},
      {"rounds", o.rounds},
      {"crop", o.crop},
      {"crops_benign", o.benign},
      {"crops_malignant", o.malignant},
      {"seed", o.seed}};
  const std::string signature_path = o.output + "/study.json";
  if (!fs::exists(signature_path))
    return write_file_atomically(signature_path, signature.dump(2) + "\n");
  nlohmann::json before;
  try {
    before = nlohmann::json::parse(read_file(signature_path));
  } catch (const std::exception&) {
    fail(signature_path + ": not valid JSON");
  }
  for (const auto& [key, value] : signature.items())
    require(before.value(key, value) == value,
            o.output + ": this study was run with " + key + " = " + before[key].dump() + ", not " +
                value.dump() + "; use the same options or another --output");
}

// Groups of one (size, batch), in grid order: with rounds > 1 their points
// are measured in turn, round after round, and recorded together. With one
// round every point is its own group, recorded as soon as it is measured.
std::vector<std::vector<StudyPoint>> measurement_groups(const std::vector<StudyPoint>& todo,
                                                        int rounds) {
  std::vector<std::vector<StudyPoint>> groups;
  for (const auto& p : todo) {
    if (rounds == 1 || groups.empty() || groups.back().front().size != p.size ||
        groups.back().front().batch != p.batch)
      groups.emplace_back();
    groups.back().push_back(p);
  }
  return groups;
}

std::string point_directory(const StudyOptions& o, const StudyPoint& p, int round) {
  std::string k = p.key();
  std::replace(k.begin(), k.end(), '/', '_');
  std::replace(k.begin(), k.end(), ':', '-');
  return o.output + "/points/" + k + (o.rounds > 1 ? ".r" + std::to_string(round) : "");
}

// What `threads` cores can do (--ceilings): `histocnn ceilings` in its own
// process, so that --threads binds it as it binds a measurement (the study's
// own affinity, which its children inherit, stays whole). Null, with a
// warning, when it failed: a study is not lost to it.
nlohmann::json measure_cpu_ceilings(const StudyOptions& o, int threads) {
  const std::string file = o.output + "/points/ceilings_t" + std::to_string(threads);
  const int status = run_command(
      {o.binary, "ceilings", "--threads", std::to_string(threads), "--json", file + ".json"},
      file + ".log");
  nlohmann::json c = status == 0 ? nlohmann::json::parse(read_file(file + ".json"), nullptr, false)
                                 : nlohmann::json();
  if (!c.is_object()) {
    std::fprintf(stderr, "warning: the ceilings on %d threads were not measured (%s)\n", threads,
                 status == 0 ? "not a JSON object" : last_line(file + ".log").c_str());
    return nullptr;
  }
  std::printf("%s\n", ceilings_line(c).c_str());
  std::fflush(stdout);
  return c;
}

// A point's row: its rounds folded into medians, and what was measured where.
nlohmann::json study_row(const StudyOptions& o, const StudyPoint& p,
                         const std::vector<nlohmann::json>& rounds, const nlohmann::json& machine,
                         const std::map<int, nlohmann::json>& ceilings) {
  nlohmann::json row = fold_rounds(rounds);
  row["rounds"] = o.rounds;
  row["key"] = p.key();
  row["engine"] = p.engine;
  row["device"] = p.device;
  row["allocator"] = p.allocator;
  row["threads"] = cores_of(p);
  row["size"] = p.size;
  row["batch"] = p.batch;
  row["examples"] = o.benign + o.malignant;
  row["warmup_epochs"] = o.warmup;
  row["timed_epochs"] = o.epochs;
  row["machine"] = machine;
  if (const auto c = ceilings.find(row["threads"].get<int>());
      p.device == "cpu" && c != ceilings.end() && !c->second.is_null())
    row["ceilings"] = c->second;
  return row;
}

void print_progress(int finished, size_t total, const StudyPoint& p, const nlohmann::json& row,
                    double elapsed) {
  const double eta = elapsed / finished * double(total - size_t(finished));
  std::printf(
      "[%d/%zu] %-40s %s  (eta %s)\n", finished, total, p.key().c_str(),
      row["status"] == "ok"
          ? (std::to_string(row["epoch_seconds"].get<double>()).substr(0, 6) + " s/epoch").c_str()
          : (row["status"].get<std::string>() + ": " + row.value("reason", "")).c_str(),
      format_duration(eta).c_str());
  std::fflush(stdout);
}

}  // namespace

int run_study(const StudyOptions& o) {
  check_study_options(o);
  make_directories(o.output + "/points");
  // One study per folder: a second one (or a re-run while the first, or an
  // orphan of it, still runs) is refused instead of measuring beside it.
  const RunLock lock(o.output);
  const std::string data = study_data(o);
  check_study_signature(o);
  const std::string results = o.output + "/results.jsonl";
  if (const std::string torn = repair_torn_last_line(results); !torn.empty())
    std::fprintf(stderr,
                 "warning: %s ended in a torn line (a write cut short): moved to %s.torn; that "
                 "point runs again\n",
                 results.c_str(), results.c_str());
  std::vector<nlohmann::json> recorded = read_results(results);
  // Only successful measurements count as done: a failed or skipped point
  // (e.g. no GPU then) runs again.
  std::set<std::string> done;
  for (const auto& row : recorded)
    if (row.value("status", "") == "ok") done.insert(row.value("key", ""));
  const auto grid = study_grid(o);
  std::vector<StudyPoint> todo;
  for (const auto& p : grid)
    if (!done.count(p.key())) todo.push_back(p);
  std::printf("study: %zu measurements, %zu already recorded, %zu to run -> %s\n", grid.size(),
              grid.size() - todo.size(), todo.size(), results.c_str());
  std::fflush(stdout);
  const nlohmann::json machine = describe_machine();
  const auto start = std::chrono::steady_clock::now();
  std::map<int, std::string> exported;     // size -> examples file for PyTorch
  std::map<int, nlohmann::json> ceilings;  // CPU threads -> what they can do (--ceilings)
  int finished = 0;
  for (const auto& group : measurement_groups(todo, o.rounds)) {
    std::vector<std::vector<nlohmann::json>> rounds(group.size());
    for (int r = 1; r <= o.rounds; ++r)
      for (size_t i = 0; i < group.size(); ++i) {
        const int threads = cores_of(group[i]);
        if (o.ceilings && group[i].device == "cpu" && !ceilings.count(threads))
          ceilings[threads] = measure_cpu_ceilings(o, threads);
        rounds[i].push_back(measure(o, group[i], data, point_directory(o, group[i], r), exported));
      }
    for (size_t i = 0; i < group.size(); ++i) {
      const StudyPoint& p = group[i];
      const nlohmann::json row = study_row(o, p, rounds[i], machine, ceilings);
      append_line_atomically(results, row.dump());
      // A re-run point replaces its earlier (failed or skipped) row.
      recorded.erase(
          std::remove_if(recorded.begin(), recorded.end(),
                         [&](const nlohmann::json& r) { return r.value("key", "") == p.key(); }),
          recorded.end());
      recorded.push_back(row);
      write_csv(o.output + "/results.csv", recorded);
      print_progress(
          ++finished, todo.size(), p, row,
          std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
    }
  }
  return finished;
}

std::string default_pytorch_script(const std::string& binary, const std::string& source_dir) {
  const std::filesystem::path beside =
      (std::filesystem::path(binary).parent_path() / ".." / "bench" / "pytorch_train.py")
          .lexically_normal();
  std::error_code ec;
  if (std::filesystem::is_regular_file(beside, ec)) return beside.string();
  return (std::filesystem::path(source_dir) / "bench" / "pytorch_train.py").string();
}

}  // namespace histocnn
