// The tools around training, end to end: bench, --version and --help, the
// cross-validation script, the study (resume, rounds, GPU points without a
// GPU, Ctrl-C, orphans), core claiming and memplan.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <utility>
#include <vector>

#include "backends/backend.h"
#include "backends/cpu/cpu_backend.h"
#include "cli_fixture.h"
#include "cli_util.h"
#include "core/atomic_file.h"
#include "core/rng.h"
#include "core/threads.h"
#include "dist/communicator.h"
#include "memory/adaptors.h"
#include "nn/safetensors.h"
#include "study/study.h"
#include "test_util.h"
#include "train/calibration.h"
#include "train/checkpoint.h"

namespace histocnn {
namespace {

// A /proc file's content ("" once the process is gone).
std::string read_file_or_empty(const std::filesystem::path& path) {
  std::FILE* f = std::fopen(path.c_str(), "rb");
  if (!f) return "";
  std::string text;
  char buffer[4096];
  for (size_t n; (n = std::fread(buffer, 1, sizeof buffer, f)) > 0;) text.append(buffer, n);
  std::fclose(f);
  for (char& c : text)
    if (c == '\0') c = ' ';
  return text;
}

class CliTools : public Cli {};

// The side-by-side benchmark's engine: a point per size x batch, each with its
// epochs, measured memory high-water mark and per-step phases.
TEST_F(CliTools, BenchTimesEveryPointAndMeasuresItsMemory) {
  const std::string json = out("bench.json");
  const CommandResult r =
      run("bench --device cpu --sizes 32,40 --batches 10,25 --benign 20 --malignant 15 --warmup 0 "
          "--epochs 2 --threads 1 --allocator pool --json " +
          json);
  ASSERT_EQ(r.status, 0) << r.output;
  const auto results = nlohmann::json::parse(read_file(json));
  ASSERT_EQ(results["points"].size(), 4u);
  for (const auto& p : results["points"]) {
    ASSERT_FALSE(p.contains("error")) << p.dump();
    EXPECT_EQ(p["epoch_seconds_all"].size(), 2u);
    EXPECT_GE(p["data_wait_seconds"].get<double>(), 0);
    EXPECT_LT(p["data_wait_seconds"].get<double>(), p["epoch_seconds"].get<double>());
    EXPECT_GT(p["epoch_seconds"].get<double>(), 0);
    EXPECT_GT(p["peak_memory_bytes"].get<int64_t>(), 0);
    EXPECT_GT(p["per_step"]["forward_ms"].get<double>(), 0);
    EXPECT_TRUE(p["device_growth_bytes"].is_null()) << "cudaMemGetInfo is CUDA's";
  }
  // A larger batch needs more memory at the same size.
  EXPECT_GT(results["points"][1]["peak_memory_bytes"].get<int64_t>(),
            results["points"][0]["peak_memory_bytes"].get<int64_t>());
  const CommandResult bad = run("bench --device cpu --sizes 32 --batches 0 --json " + json);
  EXPECT_EQ(bad.status, 2) << bad.output;
  EXPECT_NE(bad.output.find("--batches"), std::string::npos) << bad.output;
}

// --model: another network than the paper's (here batch norm and global
// pooling), recorded in the results; its memory differs from the paper's.
// Batch norm trains on whole batches, so the short last one (21 examples in
// batches of 10) is dropped as training drops it, not an error.
TEST_F(CliTools, BenchTimesAnotherModelSpecAndRecordsIt) {
  const std::string spec = out("bn.spec"), json = out("bench-bn.json"),
                    paper = out("bench-paper.json");
  write_file_atomically(spec, "conv 8 kernel=3 pool=2 pad=same bn\ngap\ndense 2\n");
  const std::string grid =
      " --device cpu --sizes 32 --batches 10 --benign 11 --malignant 10 --warmup 0 --epochs 1 "
      "--threads 1 --json ";
  const CommandResult r = run("bench --model " + spec + grid + json);
  ASSERT_EQ(r.status, 0) << r.output;
  ASSERT_EQ(run("bench" + grid + paper).status, 0);
  const auto bn = nlohmann::json::parse(read_file(json));
  const auto base = nlohmann::json::parse(read_file(paper));
  EXPECT_EQ(bn["model"], spec);
  EXPECT_EQ(base["model"], "paper");
  ASSERT_FALSE(bn["points"][0].contains("error")) << bn.dump();
  EXPECT_EQ(bn["points"][0]["examples_trained"], 20);
  EXPECT_EQ(base["points"][0]["examples_trained"], 21);
  EXPECT_NE(bn["points"][0]["planned_memory_bytes"], base["points"][0]["planned_memory_bytes"]);
}

TEST_F(CliTools, VersionNamesTheBuildAndItsBackends) {
  const CommandResult r = run("--version");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* part : {"histocnn 0.", "(git ", "oneDNN", "CUDA backend:", "MPI:"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << " missing from " << r.output;
}

TEST_F(CliTools, CrossValidateScriptHelpsRefusesBadKAndTakesPathsFromWhereItRuns) {
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/scripts/cross_validate.sh";
  const CommandResult help = testing::run_raw(script + " --help");
  EXPECT_EQ(help.status, 0);
  EXPECT_NE(help.output.find("cross-validation"), std::string::npos) << help.output;
  const CommandResult k1 = testing::run_raw(script + " " + data() + " " + out("cv") + " 1");
  EXPECT_EQ(k1.status, 2);
  EXPECT_NE(k1.output.find("K must be an integer >= 2"), std::string::npos) << k1.output;
  // A relative data path, from another working folder: found (the K check
  // after it is what stops the run).
  const std::string parent = std::filesystem::path(data()).parent_path().string();
  const CommandResult relative =
      testing::run_raw("cd " + parent + " && " + script + " synthetic cv 0");
  EXPECT_NE(relative.output.find("K must be"), std::string::npos) << relative.output;
  EXPECT_EQ(relative.output.find("no Grade.csv"), std::string::npos) << relative.output;
  // A 2-fold run: the pooled held-out images with patient-bootstrap intervals.
  const CommandResult cv = testing::run_raw(
      script + " " + data() + " " + out("cv2") +
      " 2 --size 32 --crop 96 --crops-benign 40 --crops-malignant 40 --epochs 1 --threads 1");
  ASSERT_EQ(cv.status, 0) << cv.output;
  EXPECT_NE(cv.output.find("(pooled, 95% patient bootstrap)"), std::string::npos) << cv.output;
  const auto summary = nlohmann::json::parse(read_file(out("cv2") + "/cv_summary.json"));
  const auto& accuracy = summary["pooled"]["per_image"]["accuracy"];
  ASSERT_TRUE(accuracy["ci95"].is_array()) << summary.dump(1);
  EXPECT_LE(accuracy["ci95"][0].get<double>(), accuracy["value"].get<double>());
  EXPECT_GE(accuracy["ci95"][1].get<double>(), accuracy["value"].get<double>());
  EXPECT_EQ(summary["pooled"]["images"], 24);
  // The pooled calibration error of P(malignant): per image, eval's ECE over
  // cv_images.csv (columns fold,image,patient,label,crops,p_malignant,...).
  std::vector<Prediction> images;
  std::istringstream csv(read_file(out("cv2") + "/cv_images.csv"));
  std::string line;
  std::getline(csv, line);
  while (std::getline(csv, line)) {
    std::vector<std::string> cells;
    std::istringstream row(line);
    for (std::string cell; std::getline(row, cell, ',');) cells.push_back(cell);
    ASSERT_GE(cells.size(), 6u) << line;
    images.push_back({std::stof(cells[5]), cells[3] == "malignant" ? 1 : 0});
  }
  ASSERT_EQ(images.size(), 24u);
  const auto& calibration = summary["pooled"]["calibration"];
  EXPECT_NEAR(calibration["ece_per_image"].get<double>(),
              expected_calibration_error(reliability_bins(images)), 1e-6)
      << calibration;
  EXPECT_GE(calibration["ece_per_crop"].get<double>(), 0.0) << calibration;
  EXPECT_NE(cv.output.find("calibration  P(malignant) ECE "), std::string::npos) << cv.output;
}

TEST_F(CliTools, EverySubcommandHasHelp) {
  for (const char* cmd :
       {"synth", "train", "eval", "predict", "memplan", "selftest", "study", "report", "stain",
        "bench", "ceilings", "slide", "slide-info", "tiles", "mil"}) {
    const CommandResult r = run(std::string(cmd) + " --help");
    EXPECT_EQ(r.status, 0) << cmd;
    EXPECT_NE(r.output.find("Usage"), std::string::npos) << r.output;
    EXPECT_EQ(r.output.find("{false}"), std::string::npos) << r.output;
  }
  const CommandResult all = run("--help-all");
  EXPECT_EQ(all.status, 0);
  EXPECT_NE(all.output.find("--no-tta"), std::string::npos) << "every subcommand's options";
}

// `command --help` has these sections in this order, each holding its option.
void expect_help_sections(const std::string& command,
                          const std::vector<std::pair<std::string, std::string>>& section_of) {
  const CommandResult r = run(command + " --help");
  ASSERT_EQ(r.status, 0) << r.output;
  size_t previous = 0;
  for (size_t i = 0; i < section_of.size(); ++i) {
    const auto& [heading, option] = section_of[i];
    const size_t at = r.output.find("\n" + heading + "\n");
    ASSERT_NE(at, std::string::npos) << heading << "\n" << r.output;
    EXPECT_GT(at, previous) << heading << ": the sections in order";
    const size_t next = i + 1 < section_of.size()
                            ? r.output.find("\n" + section_of[i + 1].first + "\n")
                            : r.output.size();
    const size_t where = r.output.find("  " + option, at);
    EXPECT_TRUE(where != std::string::npos && where < next) << option << " under " << heading;
    previous = at;
  }
}

// The long helps come in sections (train's 70 options, bench's A/B levers,
// slide's scale and speed), each option in its own.
TEST_F(CliTools, LongHelpsAreInSections) {
  expect_help_sections("train", {{"Run:", "--resume "},
                                 {"Data:", "--labels "},
                                 {"Crops:", "--crop-seed "},
                                 {"Network:", "--model "},
                                 {"Optimisation:", "--lr "},
                                 {"Augmentation and stain:", "--hed-jitter "},
                                 {"Validation and the saved model:", "--select-by "},
                                 {"Device, memory and speed:", "--gpu-mem-pool "}});
  expect_help_sections("bench", {{"What is timed:", "--batches "},
                                 {"Memory and GPU execution:", "--cuda-graphs "},
                                 {"CPU step and loader (A/B levers):", "--direct-conv "},
                                 {"Measurements beside the epochs:", "--ceilings "}});
  expect_help_sections("slide", {{"Inputs and outputs:", "--restart "},
                                 {"Scale and tissue:", "--mpp-model "},
                                 {"Scores and evidence:", "--explain "},
                                 {"Device and speed:", "--readers "},
                                 {"Cohort evaluation:", "--slide-threshold "}});
}

TEST_F(CliTools, StudyResumesWithoutRepeatingMeasurementsAndReports) {
  const std::string dir = out("study");
  const std::string common = "study --data " + data() + " -o " + dir +
                             " --sizes 32 --threads 1 --engines histocnn --epochs 1 --warmup 0 "
                             "--crop 96 --crops-benign 40 --crops-malignant 40 --no-report";
  CommandResult first = run(common + " --batches 10");
  ASSERT_EQ(first.status, 0) << first.output;
  const std::string before = read_file(dir + "/results.jsonl");
  // A second run over a larger grid (as after a kill) runs only what is missing.
  CommandResult second = run(common + " --batches 10,20");
  ASSERT_EQ(second.status, 0) << second.output;
  EXPECT_NE(second.output.find("1 already recorded, 1 to run"), std::string::npos) << second.output;
  const std::string after = read_file(dir + "/results.jsonl");
  EXPECT_EQ(after.rfind(before, 0), 0u) << "recorded rows are kept as they were";
  EXPECT_EQ(std::count(after.begin(), after.end(), '\n'), 2);
  const std::string csv = read_file(dir + "/results.csv");
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3);
  EXPECT_NE(csv.find("histocnn/cpu/t1/s32/b20"), std::string::npos);
  CommandResult bad = run("report " + out("no-such-study"));
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("no study results found"), std::string::npos) << bad.output;
  {
    // Without gnuplot (a GPU node's image often lacks it): the tables, each
    // figure's data and script, a warning; not an error after the study.
    const std::string plain = dir + "/report-without-gnuplot";
    const CommandResult r = run_raw("env PATH=/nonexistent " + std::string(HISTOCNN_BINARY) +
                                    " report " + dir + " -o " + plain + " 2>&1");
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_NE(r.output.find("warning: gnuplot is not installed"), std::string::npos) << r.output;
    const std::string md = read_file(plain + "/report.md");
    EXPECT_NE(md.find("Figures not drawn: gnuplot is not installed"), std::string::npos) << md;
    EXPECT_NE(md.find("`gnuplot " + plain + "/fig_cpu_time.png.gp` draws it"), std::string::npos)
        << md;
    EXPECT_NE(md.find("16.19"), std::string::npos) << "the speed-up table";
    EXPECT_TRUE(std::filesystem::exists(plain + "/report.html"));
    EXPECT_TRUE(std::filesystem::exists(plain + "/fig_cpu_time.dat"));
    EXPECT_TRUE(std::filesystem::exists(plain + "/fig_cpu_time.png.gp"));
    EXPECT_FALSE(std::filesystem::exists(plain + "/fig_cpu_time.png"));
  }
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot is not installed: the report's figures are not checked";
  {
    CommandResult report = run("report " + dir);
    ASSERT_EQ(report.status, 0) << report.output;
    EXPECT_TRUE(std::filesystem::exists(dir + "/report/report.html"));
    EXPECT_TRUE(std::filesystem::exists(dir + "/report/fig_cpu_time.png"));
    EXPECT_TRUE(std::filesystem::exists(dir + "/report/fig_cpu_time.svg"));
    // One bar per layer and direction, from the training's per-layer profile.
    EXPECT_TRUE(std::filesystem::exists(dir + "/report/fig_layers.png"));
    const std::string jsonl = read_file(dir + "/results.jsonl");
    EXPECT_NE(jsonl.find("\"conv3 backward\""), std::string::npos) << jsonl.substr(0, 2000);
    const std::string md = read_file(dir + "/report/report.md");
    EXPECT_NE(md.find("16.19"), std::string::npos) << "the paper's numbers";
    // Every measurement's own numbers, as recorded, are in the report.
    const auto rows = read_results(dir + "/results.jsonl");
    ASSERT_EQ(rows.size(), 2u);
    for (const auto& row : rows) {
      char expected[128];
      std::snprintf(expected, sizeof expected, "| %d | %d | %.3f | %.0f |", row["size"].get<int>(),
                    row["batch"].get<int>(), row["epoch_seconds"].get<double>(),
                    row["images_per_second"].get<double>());
      EXPECT_NE(md.find(expected), std::string::npos) << expected << " missing from\n" << md;
    }
  }
}

TEST_F(CliTools, StudyRoundsInterleaveTheMeasurementsOfAPointAndRecordTheirMedian) {
  const std::string dir = out("study-rounds");
  const CommandResult r =
      run("study --data " + data() + " -o " + dir +
          " --sizes 32 --batches 10 --threads 1 --engines histocnn --epochs 1 --warmup 0 "
          "--rounds 3 --crop 96 --crops-benign 30 --crops-malignant 30 --no-report");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto rows = read_results(dir + "/results.jsonl");
  ASSERT_EQ(rows.size(), 1u);
  const auto& row = rows[0];
  EXPECT_EQ(row["rounds"], 3);
  const auto seconds = row["round_seconds"].get<std::vector<double>>();
  ASSERT_EQ(seconds.size(), 3u);
  std::vector<double> sorted = seconds;
  std::sort(sorted.begin(), sorted.end());
  EXPECT_EQ(row["epoch_seconds"].get<double>(), sorted[1]);  // the median round
  for (int round = 1; round <= 3; ++round) {  // each round its own process and folder
    const std::string point = dir + "/points/histocnn_cpu_t1_s32_b10.r" + std::to_string(round);
    EXPECT_TRUE(std::filesystem::exists(point + "/metrics.json")) << round;
    EXPECT_TRUE(std::filesystem::exists(point + "/model.safetensors")) << round;
    // A timing run keeps no optimizer state: 26 MB a point at 200 px.
    EXPECT_FALSE(std::filesystem::exists(point + "/checkpoint.safetensors")) << round;
  }
  // A study folder keeps its rounds.
  const CommandResult other =
      run("study --data " + data() + " -o " + dir +
          " --sizes 32 --batches 10 --threads 1 --engines histocnn --epochs 1 --warmup 0 "
          "--rounds 2 --crop 96 --crops-benign 30 --crops-malignant 30 --no-report");
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.output.find("rounds = 3, not 2"), std::string::npos) << other.output;
}

TEST_F(CliTools, CeilingsAreMeasuredOnTheBoundCoresAndWrittenWhole) {
  const std::string json = out("ceilings/t1.json");
  const CommandResult r = run("ceilings --threads 1 --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ceilings on 1 thread: sgemm "), std::string::npos) << r.output;
  const auto c = nlohmann::json::parse(read_file(json));
  EXPECT_EQ(c["threads"], 1);
  EXPECT_GT(c["sgemm_gflops"].get<double>(), 0.0);
  EXPECT_GT(c["triad_gbs"].get<double>(), 0.0);
  const CommandResult too_many = run("ceilings --threads 4095");
  EXPECT_NE(too_many.status, 0);
  EXPECT_NE(too_many.output.find("--threads: 4095 requested"), std::string::npos)
      << too_many.output;
  // A --json whose folder is a file: refused before the measurement.
  const CommandResult bad = run("ceilings --threads 1 --json " + json + "/x.json");
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--json"), std::string::npos) << bad.output;
  EXPECT_EQ(bad.output.find("ceilings on"), std::string::npos) << bad.output;
}

TEST_F(CliTools, StudyCeilingsAreMeasuredOncePerThreadCountAndRecordedInEachCpuRow) {
  const std::string dir = out("study-ceilings");
  const CommandResult r =
      run("study --data " + data() + " -o " + dir +
          " --sizes 32 --batches 10,20 --threads 1 --engines histocnn --epochs 1 --warmup 0 "
          "--rounds 2 --ceilings --crop 96 --crops-benign 30 --crops-malignant 30 --no-report");
  ASSERT_EQ(r.status, 0) << r.output;
  const size_t first = r.output.find("ceilings on 1 thread: sgemm ");
  ASSERT_NE(first, std::string::npos) << r.output;
  EXPECT_EQ(r.output.find("ceilings on 1 thread", first + 1), std::string::npos) << r.output;
  const auto measured = nlohmann::json::parse(read_file(dir + "/points/ceilings_t1.json"));
  const auto rows = read_results(dir + "/results.jsonl");
  ASSERT_EQ(rows.size(), 2u);
  for (const auto& row : rows) EXPECT_EQ(row["ceilings"], measured) << row["key"];
}

TEST_F(CliTools, GpuStudyScriptRecordsCudaPointsAsNotRunWithoutAGpu) {
  if (available_devices().size() > 1) GTEST_SKIP() << "a GPU is present: the full study would run";
  const std::string dir = out("gpu-study");
  const std::string command =
      "SKIP_BUILD=1 THREADS=1,64 ENGINES=histocnn HISTOCNN=" + std::string(HISTOCNN_BINARY) + " " +
      HISTOCNN_SOURCE_DIR + "/scripts/gpu-study.sh " + dir + " --data " + data() +
      " --sizes 32 --batches 10 --epochs 1 --warmup 0 --crop 96 "
      "--crops-benign 40 --crops-malignant 40 2>&1";
  CommandResult r;
  r.status = -1;
  FILE* pipe = popen(command.c_str(), "r");
  ASSERT_NE(pipe, nullptr);
  char buffer[4096];
  for (size_t n; (n = fread(buffer, 1, sizeof buffer, pipe)) > 0;) r.output.append(buffer, n);
  r.status = pclose(pipe);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("CUDA points will be recorded as not run"), std::string::npos)
      << r.output;
  const auto rows = read_results(dir + "/results.jsonl");
  int cuda = 0, cpu = 0;
  for (const auto& row : rows) {
    if (row["device"] == "cuda") {
      ++cuda;
      EXPECT_EQ(row["status"], "skipped") << row.dump();
      EXPECT_NE(row.value("reason", "").find("not run"), std::string::npos) << row.dump();
    } else {
      ++cpu;
      EXPECT_EQ(row["status"], "ok") << row.dump();
      EXPECT_EQ(row["threads"], 1) << "64 threads are more than this machine has: left out";
      EXPECT_TRUE(row.contains("ceilings")) << "the script measures the cores: " << row.dump();
    }
  }
  EXPECT_EQ(cuda, 5) << "direct, pool, async, plan, plan+graphs";
  EXPECT_EQ(cpu, 1);
}

TEST_F(CliTools, StudyRerunsWhatDidNotSucceedRefusesOtherOptionsAndTakesOddPaths) {
  const std::string dir = out("study dir/it's \"$odd\"");
  std::filesystem::create_directories(dir);
  const std::string quoted = "'" + std::string(dir).replace(dir.find("'"), 1, "'\\''") + "'";
  const std::string common = "study --data " + data() + " -o " + quoted +
                             " --sizes 32 --batches 10 --threads 1 --engines histocnn "
                             "--warmup 0 --crop 96 --crops-benign 40 --crops-malignant 40 "
                             "--devices cpu,cuda --allocators plan --no-report";
  CommandResult first = run(common + " --epochs 1");
  ASSERT_EQ(first.status, 0) << first.output;
  EXPECT_NE(first.output.find("0 already recorded, 2 to run"), std::string::npos) << first.output;
  if (available_devices().size() == 1) {
    // The cuda point was skipped: it is not done, so it runs again.
    CommandResult again = run(common + " --epochs 1");
    ASSERT_EQ(again.status, 0) << again.output;
    EXPECT_NE(again.output.find("1 already recorded, 1 to run"), std::string::npos) << again.output;
    const std::string csv = read_file(dir + "/results.csv");
    EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 3) << "the re-run replaced its row";
  }
  CommandResult other = run(common + " --epochs 2");
  EXPECT_NE(other.status, 0);
  EXPECT_NE(other.output.find("this study was run with epochs = 1, not 2"), std::string::npos)
      << other.output;
}

TEST_F(CliTools, CtrlCStopsTheStudyAndThePointRunsOnResume) {
  const std::string dir = out("study_interrupted");
  // Forty short epochs: Ctrl-C comes as soon as the first is logged, so on a
  // fast machine as on a slow one it lands while the point trains.
  const std::string flags =
      " --sizes 64 --batches 10 --threads 1 --engines histocnn --epochs 40 --warmup 0 "
      "--crop 96 --crops-benign 30 --crops-malignant 30 --no-report";
  const std::string command = "exec " + std::string(HISTOCNN_BINARY) + " study --data " + data() +
                              " -o " + dir + flags + " >/dev/null 2>&1";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    setpgid(0, 0);  // its own group, as a terminal's foreground job
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  setpgid(pid, pid);
  // Wait until the point's training has logged its first epoch, then Ctrl-C the group.
  auto first_epoch_logged = [&] {
    std::error_code ec;
    for (const auto& entry : std::filesystem::directory_iterator(dir + "/points", ec))
      if (entry.path().extension() == ".log" &&
          read_file(entry.path().string()).find("\nepoch ") != std::string::npos)
        return true;
    return false;
  };
  for (int i = 0; i < 6000 && !first_epoch_logged(); ++i) usleep(5000);
  kill(-pid, SIGINT);
  int status = 0;
  waitpid(pid, &status, 0);
  EXPECT_FALSE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << "the study stopped";
  const auto rows = read_results(dir + "/results.jsonl");
  EXPECT_TRUE(rows.empty()) << "the interrupted point is not recorded as failed";
  CommandResult resumed = run("study --data " + data() + " -o " + dir + flags);
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_NE(resumed.output.find("0 already recorded, 1 to run"), std::string::npos)
      << resumed.output;
}

// A study killed alone (SIGKILL: no handler runs) takes its running point
// with it: no orphan trains on beside the next measurement.
TEST_F(CliTools, AStudyKilledAloneLeavesNoOrphanTraining) {
  const std::string dir = out("study_killed");
  const std::string command =
      "exec " + std::string(HISTOCNN_BINARY) + " study --data " + data() + " -o " + dir +
      " --sizes 64 --batches 10 --threads 1 --engines histocnn --epochs 200 --warmup 0 "
      "--crop 96 --crops-benign 30 --crops-malignant 30 --no-report >/dev/null 2>&1";
  const pid_t pid = fork();
  ASSERT_GE(pid, 0);
  if (pid == 0) {
    execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
    _exit(127);
  }
  auto training_children = [&] {
    int found = 0;
    for (const auto& entry : std::filesystem::directory_iterator("/proc")) {
      const std::string cmdline = read_file_or_empty(entry.path() / "cmdline");
      if (cmdline.find(dir + "/points") != std::string::npos &&
          cmdline.find("train") != std::string::npos)
        ++found;
    }
    return found;
  };
  for (int i = 0; i < 3000 && training_children() == 0; ++i) usleep(5000);
  ASSERT_GT(training_children(), 0) << "the point's training never started";
  kill(pid, SIGKILL);
  waitpid(pid, nullptr, 0);
  int left = 1;
  for (int i = 0; i < 400 && (left = training_children()) > 0; ++i) usleep(5000);
  EXPECT_EQ(left, 0) << "the training child outlived its study";
}

// Two `--threads 1` runs at once land on two different cores.
TEST_F(CliTools, ConcurrentSingleThreadRunsTakeDifferentCores) {
  if (available_cores() < 2) GTEST_SKIP() << "needs two cores";
  auto start = [&](const std::string& name) {
    const std::string command = "exec " + std::string(HISTOCNN_BINARY) +
                                " bench --device cpu --sizes 64 --batches 10 --threads 1 "
                                "--warmup 0 --epochs 50 --benign 200 --malignant 200 --json " +
                                out(name) + " >" + out(name) + ".log 2>&1";
    const pid_t pid = fork();
    if (pid == 0) {
      execl("/bin/sh", "sh", "-c", command.c_str(), static_cast<char*>(nullptr));
      _exit(127);
    }
    return pid;
  };
  // The CPUs a process may run on, once it has bound itself (a single CPU).
  auto cpus_of = [](pid_t pid) {
    for (int i = 0; i < 2000; ++i) {
      const std::string status = read_file_or_empty("/proc/" + std::to_string(pid) + "/status");
      const auto at = status.find("Cpus_allowed_list:");
      if (at != std::string::npos) {
        std::string list = status.substr(at + 18, status.find('\n', at) - at - 18);
        list.erase(0, list.find_first_not_of(" \t"));
        if (list.find_first_of(",-") == std::string::npos) return list;
      }
      usleep(5000);
    }
    return std::string("?");
  };
  const pid_t a = start("affinity_a.json");
  const std::string cpu_a = cpus_of(a);
  const pid_t b = start("affinity_b.json");
  const std::string cpu_b = cpus_of(b);
  kill(a, SIGKILL);
  kill(b, SIGKILL);
  waitpid(a, nullptr, 0);
  waitpid(b, nullptr, 0);
  EXPECT_NE(cpu_a, "?");
  EXPECT_NE(cpu_b, "?");
  // Other tests running beside this one (ctest -j) may hold the free cores:
  // then sharing, with its warning, is the right answer and proves nothing.
  for (const char* name : {"affinity_a.json.log", "affinity_b.json.log"})
    if (read_file_or_empty(out(name)).find("sharing the rest") != std::string::npos)
      GTEST_SKIP() << "another histocnn run held the other cores";
  EXPECT_NE(cpu_a, cpu_b) << "both runs were pinned to CPU " << cpu_a;
}

TEST_F(CliTools, SelftestPassesOnTheCpuAndSaysSoWithoutAGpu) {
  const CommandResult cpu = run("selftest --device cpu --size 32 --batch 4 --steps 2");
  EXPECT_EQ(cpu.status, 0) << cpu.output;
  EXPECT_NE(cpu.output.find("conv1.weight gradient"), std::string::npos) << cpu.output;
  EXPECT_NE(cpu.output.find("train/pool"), std::string::npos) << cpu.output;
  EXPECT_NE(cpu.output.find("PASS:"), std::string::npos) << cpu.output;
  // A grade network with the ordinal loss, against the reference.
  const CommandResult smoothed =
      run("selftest --device cpu --size 32 --batch 4 --steps 2 --classes 5 --label-smoothing 0.2 "
          "--smooth-to neighbours");
  EXPECT_EQ(smoothed.status, 0) << smoothed.output;
  if (available_devices().size() == 1) {
    const CommandResult gpu = run("selftest --device cuda");
    EXPECT_EQ(gpu.status, 1) << gpu.output;
    EXPECT_TRUE(gpu.output.find("histocnn: no CUDA device") == 0 ||
                gpu.output.find("no CUDA backend") != std::string::npos)
        << gpu.output;
    EXPECT_EQ(std::count(gpu.output.begin(), gpu.output.end(), '\n'), 1) << "one line";
  }
  // Without --device: every device this machine can use, each named.
  const CommandResult every = run("selftest --size 32 --batch 4 --steps 2");
  EXPECT_EQ(every.status, 0) << every.output;
  for (const auto& device : available_devices())
    EXPECT_NE(every.output.find("device " + device + ":\n"), std::string::npos) << every.output;
  if (available_devices().size() == 1) {
    EXPECT_NE(every.output.find("not checked: "), std::string::npos) << every.output;
  }
}

}  // namespace
}  // namespace histocnn
