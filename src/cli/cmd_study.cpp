#include <unistd.h>

#include <climits>
#include <cstdio>
#include <filesystem>
#include <sstream>

#include "cli/commands.h"
#include "core/error.h"
#include "study/report.h"
#include "study/study.h"

namespace histocnn::cli {
namespace {

template <typename T>
std::vector<T> split_list(const std::string& text, const std::string& flag) {
  std::vector<T> out;
  std::stringstream in(text);
  for (std::string item; std::getline(in, item, ',');) {
    if constexpr (std::is_same_v<T, int>) {
      char* end = nullptr;
      const long v = std::strtol(item.c_str(), &end, 10);
      require(!item.empty() && *end == '\0' && v >= 0 && v <= 100000,
              flag + ": '" + item + "' is not a count");
      out.push_back(int(v));
    } else {
      out.push_back(item);
    }
  }
  require(!out.empty(), flag + ": empty list");
  return out;
}

std::string self_path() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  require(n > 0, "cannot locate the histocnn executable");
  return std::string(buf, size_t(n));
}

}  // namespace

Runner add_study(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "study", "the paper's grid: time over size x batch x device x allocator x engine");
  struct Args {
    StudyOptions o;
    std::string sizes = "32,64,128,180,200", batches = "10,20,50,100,150", threads = "0",
                devices = "cpu", allocators = "direct,pool,async,plan",
                engines = "histocnn,pytorch";
    bool report = true;
  };
  auto a = std::make_shared<Args>();
  cmd->add_option("--data", a->o.data,
                  "GlaS-layout folder (default: synthetic data in the output folder)");
  cmd->add_option("--output,-o", a->o.output, "study folder (results.jsonl, results.csv, report/)")
      ->required();
  cmd->add_option("--sizes", a->sizes, "image sizes")->capture_default_str();
  cmd->add_option("--batches", a->batches, "batch sizes")->capture_default_str();
  cmd->add_option("--threads", a->threads, "CPU core counts, e.g. 1,2,4,8,16 (0 = all)")
      ->capture_default_str();
  cmd->add_option("--devices", a->devices, "cpu, cuda")->capture_default_str();
  cmd->add_option("--allocators", a->allocators, "CUDA allocators")->capture_default_str();
  cmd->add_option("--engines", a->engines, "histocnn, pytorch")->capture_default_str();
  cmd->add_option("--epochs", a->o.epochs, "timed epochs per measurement (median)")
      ->capture_default_str();
  cmd->add_option("--warmup", a->o.warmup, "untimed epochs first")->capture_default_str();
  cmd->add_option("--rounds", a->o.rounds,
                  "interleaved rounds: each (size, batch)'s engines and settings run in turn, "
                  "round after round; the median is recorded")
      ->capture_default_str();
  cmd->add_flag("--ceilings", a->o.ceilings,
                "before the first CPU measurement at each thread count, measure what those cores "
                "can do (histocnn ceilings: sgemm, memory triad); the report reads the CPU "
                "scaling against it");
  cmd->add_option("--crop", a->o.crop, "crop size")->capture_default_str();
  cmd->add_option("--crops-benign", a->o.benign, "benign crops (paper: 941)")
      ->capture_default_str();
  cmd->add_option("--crops-malignant", a->o.malignant, "malignant crops (paper: 910)")
      ->capture_default_str();
  cmd->add_option("--seed", a->o.seed, "seed")->capture_default_str();
  cmd->add_option("--pytorch-script", a->o.pytorch_script, "the PyTorch engine script")
      ->default_str(
          "bench/pytorch_train.py beside histocnn's folder (a package's, a build's), "
          "else the source tree's");
  cmd->add_option("--python", a->o.python, "python with torch")->capture_default_str();
  cmd->add_flag("!--no-report", a->report, "do not write the report at the end");
  return [a] {
    a->o.sizes = split_list<int>(a->sizes, "--sizes");
    a->o.batches = split_list<int>(a->batches, "--batches");
    a->o.threads = split_list<int>(a->threads, "--threads");
    a->o.devices = split_list<std::string>(a->devices, "--devices");
    a->o.allocators = split_list<std::string>(a->allocators, "--allocators");
    a->o.engines = split_list<std::string>(a->engines, "--engines");
    a->o.binary = self_path();
    if (a->o.pytorch_script.empty())
      a->o.pytorch_script = default_pytorch_script(a->o.binary, HISTOCNN_SOURCE_DIR);
    run_study(a->o);
    if (a->report)
      std::printf("report: %s\n", write_report(a->o.output, a->o.output + "/report").c_str());
    return 0;
  };
}

Runner add_report(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "report", "figures (gnuplot PNG+SVG) and tables from a study, beside the paper and PyTorch");
  auto results = std::make_shared<std::string>();
  auto output = std::make_shared<std::string>();
  cmd->add_option("results", *results, "study folder or results.jsonl")->required();
  cmd->add_option("--output,-o", *output, "report folder (default: <study>/report)");
  return [results, output] {
    std::string out = *output;
    if (out.empty())
      out = (std::filesystem::is_directory(*results)
                 ? *results
                 : std::filesystem::path(*results).parent_path().string()) +
            "/report";
    std::printf("report: %s\n", write_report(*results, out).c_str());
    return 0;
  };
}

}  // namespace histocnn::cli
