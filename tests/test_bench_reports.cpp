// What the 16-core stage of scripts/gpu-check.sh records and reports, run on
// this machine's cores: `histocnn bench --ceilings` and
// bench/cpu_scaling_report.py on the files that stage writes (a thread sweep
// with ceilings, levers in two rounds). The report runs once on the GPU
// machine's host, so it is checked here before it goes.
#include <gtest/gtest.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>
#include <vector>

#include "cli_util.h"
#include "core/atomic_file.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::CommandResult;
using testing::run;
using testing::run_raw;

const std::string kSmallBench =
    "bench --device cpu --sizes 32 --batches 20,10 --benign 10 --malignant 10 --warmup 0 "
    "--epochs 2 --profile-layers ";

TEST(BenchReports, CeilingsRecordSgemmAndMemoryBandwidth) {
  const testing::TempDir dir;
  const std::string json = dir / "ceilings.json";
  const CommandResult r = run(kSmallBench + "--threads 1 --ceilings --json " + json);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("ceilings on 1 thread: sgemm"), std::string::npos) << r.output;
  const auto results = nlohmann::json::parse(read_file(json));
  ASSERT_TRUE(results.contains("ceilings")) << results.dump();
  EXPECT_EQ(results["ceilings"]["threads"], 1);
  EXPECT_GT(results["ceilings"]["sgemm_gflops"].get<double>(), 0);
  EXPECT_GT(results["ceilings"]["triad_gbs"].get<double>(), 0);
  for (const auto& point : results["points"])
    EXPECT_GT(point["epoch_gflop"].get<double>(), 0) << point.dump();
  EXPECT_EQ(results["pixels"], "tissue") << "the study's crops unless asked otherwise";
  const std::string noise = dir / "noise.json";
  const CommandResult random =
      run("bench --device cpu --sizes 32 --batches 10 --benign 10 --malignant 10 --warmup 0 "
          "--epochs 1 --threads 1 --pixels random --json " +
          noise);
  ASSERT_EQ(random.status, 0) << random.output;
  EXPECT_EQ(nlohmann::json::parse(read_file(noise))["pixels"], "random");
  const CommandResult bad = run(kSmallBench + "--threads 1 --pixels noise --json " + noise);
  EXPECT_NE(bad.status, 0);
  EXPECT_NE(bad.output.find("--pixels"), std::string::npos) << bad.output;
}

TEST(BenchReports, CpuScalingReportTablesSweepCeilingsLayersAndLevers) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  const std::vector<int> threads =
      std::thread::hardware_concurrency() >= 2 ? std::vector<int>{1, 2} : std::vector<int>{1};
  for (int t : threads) {
    const std::string json = dir / ("t" + std::to_string(t) + ".json");
    const CommandResult r =
        run(kSmallBench + "--threads " + std::to_string(t) + " --ceilings --json " + json);
    ASSERT_EQ(r.status, 0) << r.output;
  }
  for (int round : {1, 2})
    for (const std::string variant : {"now", "direct"}) {
      const std::string json = dir / (variant + ".r" + std::to_string(round) + ".json");
      const CommandResult r = run(kSmallBench + "--threads 1 " +
                                  (variant == "direct" ? "--direct-conv " : "") + "--json " + json);
      ASSERT_EQ(r.status, 0) << r.output;
    }
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/bench/cpu_scaling_report.py";
  const CommandResult report = run_raw("python3 " + script + " " + dir.path());
  ASSERT_EQ(report.status, 0) << report.output;
  for (const char* part : {"| 1 | ", "b20 speed-up (warm)", "Cold minus warm", "* 1 thread: b20",
                           "What the cores can do", "| layer, batch 10 |", "| conv1 forward |",
                           "| direct | 20 | 2 |", "| now | 10 | 2 | "})
    EXPECT_NE(report.output.find(part), std::string::npos) << part << "\n" << report.output;
  // --gpu: the paper's Fig. 6 from the side by side's histocnn fp32 rounds
  // (GPU records written by hand: this machine has no GPU). Median of 0.1,
  // 0.3, 0.2 = 0.2 s at batch 20; the other size and engine are not read.
  const std::string raw = dir / "raw";
  std::filesystem::create_directories(raw);
  const auto gpu_record = [](double b20, double b10) {
    return "{\"points\": [{\"size\": 32, \"batch\": 20, \"epoch_seconds\": " + std::to_string(b20) +
           "}, {\"size\": 32, \"batch\": 10, \"epoch_seconds\": " + std::to_string(b10) +
           "}, {\"size\": 64, \"batch\": 20, \"epoch_seconds\": 9}]}";
  };
  write_file_atomically(raw + "/histocnn-fp32.1.json", gpu_record(0.1, 0.4));
  write_file_atomically(raw + "/histocnn-fp32.2.json", gpu_record(0.3, 0.4));
  write_file_atomically(raw + "/histocnn-fp32.3.json", gpu_record(0.2, 0.4));
  write_file_atomically(raw + "/pytorch-fp32.1.json", gpu_record(100, 100));
  const CommandResult fig6 = run_raw("python3 " + script + " " + dir.path() + " --gpu " + raw);
  ASSERT_EQ(fig6.status, 0) << fig6.output;
  const auto t1 = nlohmann::json::parse(read_file(dir / "t1.json"));
  double warm_b20 = 0;
  for (const auto& point : t1["points"])
    if (point["batch"] == 20) warm_b20 = point["epoch_seconds_all"][1].get<double>();
  char expected[64];
  std::snprintf(expected, sizeof expected, "| 1 | 16.19 | %.3f | %.2f |", warm_b20, warm_b20 / 0.2);
  for (const std::string& part :
       {std::string("The paper's Fig. 6 at 32 px"), std::string(expected),
        std::string("| 16 | 4.49 |"),
        std::string("t_gpu, s (median of the rounds): b20 0.200, b10 0.400")})
    EXPECT_NE(fig6.output.find(part), std::string::npos) << part << "\n" << fig6.output;
  // gpu-check's levers stage: the levers alone, no thread sweep beside them.
  const std::string levers = dir / "levers";
  std::filesystem::create_directories(levers);
  for (const char* name : {"now.r1.json", "now.r2.json", "direct.r1.json", "direct.r2.json"})
    std::filesystem::copy_file(dir / name, levers + "/" + name);
  const CommandResult alone = run_raw("python3 " + script + " " + levers);
  ASSERT_EQ(alone.status, 0) << alone.output;
  EXPECT_NE(alone.output.find("| direct | 20 | 2 |"), std::string::npos) << alone.output;
  EXPECT_EQ(alone.output.find("Speed-up"), std::string::npos) << alone.output;
  const CommandResult alone_fig6 = run_raw("python3 " + script + " " + levers + " --gpu " + raw);
  EXPECT_NE(alone_fig6.status, 0);
  EXPECT_NE(alone_fig6.output.find("--gpu needs the thread sweep's tT.json"), std::string::npos)
      << alone_fig6.output;
  const CommandResult empty = run_raw("python3 " + script + " " + (dir / "raw/none"));
  EXPECT_NE(empty.status, 0);
  EXPECT_NE(empty.output.find("no tT.json or VARIANT.rR.json files"), std::string::npos)
      << empty.output;
  const CommandResult no_gpu =
      run_raw("python3 " + script + " " + dir.path() + " --gpu " + (dir / "nothing"));
  EXPECT_NE(no_gpu.status, 0);
  EXPECT_NE(no_gpu.output.find("no histocnn-fp32.R.json"), std::string::npos) << no_gpu.output;

  // A record of one epoch cannot give cold and warm: refused in one line.
  const CommandResult one =
      run("bench --device cpu --sizes 32 --batches 10 --benign 10 --malignant 10 --warmup 0 "
          "--epochs 1 --threads 1 --json " +
          (dir / "t3.json"));
  ASSERT_EQ(one.status, 0) << one.output;
  const CommandResult refused = run_raw("python3 " + script + " " + dir.path());
  EXPECT_NE(refused.status, 0) << refused.output;
  EXPECT_NE(refused.output.find("t3.json: 1 epoch(s); the report needs --epochs 2"),
            std::string::npos)
      << refused.output;
}

// The device tool returns at most 8 files from $OUT, none more than two
// folders down: `gpu-check.sh --pack ARCHIVE OUT` keeps OUT's text results in
// one archive — not the synthetic images, nothing of 4 MiB or more — and
// refuses an archive inside OUT (it would pack itself).
TEST(GpuCheck, PackKeepsTheTextResultsInOneArchiveOutsideOut) {
  if (run_raw("tar --version").status != 0) GTEST_SKIP() << "tar is not installed";
  const testing::TempDir dir;
  const std::string out = dir / "out", archive = dir / "returned/a.tar.gz";
  std::filesystem::create_directories(out + "/side-by-side/raw");
  std::filesystem::create_directories(out + "/synthetic");
  write_file_atomically(out + "/side-by-side/raw/histocnn-fp32.1.json", "{}");
  std::filesystem::create_directories(out + "/study");
  write_file_atomically(out + "/study/results.jsonl", "{}\n");  // what `histocnn report` reads
  write_file_atomically(out + "/synthetic/Grade.csv", "name,patient,grade\n");
  write_file_atomically(out + "/big.json", std::string(5 << 20, ' '));
  write_file_atomically(out + "/wsi.tif", "not text");
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/scripts/gpu-check.sh";
  const CommandResult r = run_raw(script + " --pack " + archive + " " + out + " no-such-stage");
  EXPECT_NE(r.output.find("unknown stage no-such-stage"), std::string::npos) << r.output;
  const CommandResult listed = run_raw("tar tzf " + archive + " | sort");
  ASSERT_EQ(listed.status, 0) << listed.output;
  EXPECT_EQ(listed.output,
            "./gpu-check.log\n./machine.txt\n./side-by-side/raw/histocnn-fp32.1.json\n"
            "./study/results.jsonl\n");
  const CommandResult inside = run_raw(script + " --pack " + out + "/a.tar.gz " + out);
  EXPECT_EQ(inside.status, 2) << inside.output;
  EXPECT_NE(inside.output.find("must be outside"), std::string::npos) << inside.output;
  EXPECT_FALSE(std::filesystem::exists(out + "/a.tar.gz"));
}

// bench/gpu_side_by_side.sh end to end, with stand-ins for what this machine
// lacks: histocnn's CPU engine behind the CUDA flags (HISTOCNN=) and a
// PyTorch that writes known times (PYTHON=; round R takes base x R seconds,
// and bf16's round 2 fails). The script, its interleaved rounds, a failed
// run and the report are what the one GPU visit relies on; the numbers are
// the stand-ins', and the report says they are not GPU numbers.
const char* kHistocnnStandIn = R"sh(#!/usr/bin/env bash
echo "$*" >> "$(dirname "$0")/histocnn-calls.log"
args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --device) args+=(--device cpu); shift ;;
    --precision|--allocator) shift ;;
    --cuda-graphs|--cudnn-graph|--channels-last) ;;
    *) args+=("$1") ;;
  esac
  shift
done
exec )sh" HISTOCNN_BINARY R"sh( "${args[@]}" --benign 12 --malignant 12 --threads 1
)sh";
const char* kPythonStandIn = R"sh(#!/usr/bin/env bash
if [[ "${1:-}" == -c ]]; then echo "NVIDIA H200 (stand-in)"; exit 0; fi
if [[ "${1:-}" == */pytorch_gpu_bench.py ]]; then
  shift; exec python3 "$(dirname "$0")/torch_stand_in.py" "$@"
fi
exec python3 "$@"
)sh";
const char* kTorchStandIn = R"py(import argparse, json, re, sys
p = argparse.ArgumentParser()
for flag in ("--sizes", "--batches", "--precision", "--json"):
    p.add_argument(flag)
p.add_argument("--compile", action="store_true")
a = p.parse_args()
r = int(re.search(r"\.(\d+)\.json$", a.json).group(1))
if a.precision == "bf16" and r == 2:
    sys.exit("stand-in: bf16 round 2 fails")
base = 0.5 if a.compile else {"fp32": 4.0, "tf32": 2.0, "bf16": 1.0}[a.precision]
points = [{"size": int(s), "batch": int(b), "epoch_seconds": base * r, "peak_memory_bytes": 1e6,
           "device_growth_bytes": 3e6}
          for s in a.sizes.split(",") for b in a.batches.split(",")]
json.dump({"engine": "pytorch", "examples": 24, "points": points}, open(a.json, "w"))
)py";

// bench/gpu_side_by_side.sh into DIR/out with the stand-in engines above
// (written into DIR) and `flags`.
CommandResult side_by_side_with_stand_ins(const testing::TempDir& dir, const std::string& flags) {
  write_file_atomically(dir / "histocnn", kHistocnnStandIn);
  write_file_atomically(dir / "python", kPythonStandIn);
  write_file_atomically(dir / "torch_stand_in.py", kTorchStandIn);
  for (const char* program : {"histocnn", "python"})
    std::filesystem::permissions(dir / program, std::filesystem::perms::owner_exec,
                                 std::filesystem::perm_options::add);
  return run_raw("HISTOCNN=" + (dir / "histocnn") + " PYTHON=" + (dir / "python") + " " +
                 HISTOCNN_SOURCE_DIR + "/bench/gpu_side_by_side.sh " + (dir / "out") + " " + flags);
}

TEST(GpuSideBySide, RunsRoundsAndReportsWithStandInEngines) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  const std::string out = dir / "out";
  const CommandResult r = side_by_side_with_stand_ins(
      dir,
      "--rounds 3 --sizes 32 --batches 10,20 --time-limit 100 --histocnn-flags --channels-last");
  ASSERT_EQ(r.status, 0) << r.output;
  // --histocnn-flags reached every histocnn run (3 rounds x 3 precisions, the profile).
  const std::string calls = read_file(dir / "histocnn-calls.log");
  size_t flagged = 0;
  for (size_t at = calls.find("--channels-last"); at != std::string::npos;
       at = calls.find("--channels-last", at + 1))
    ++flagged;
  EXPECT_EQ(flagged, 10u) << calls;
  EXPECT_NE(r.output.find("pytorch-bf16 round 2 failed: stand-in: bf16 round 2 fails"),
            std::string::npos)
      << r.output;

  // The medians over the rounds, and their ratios, per point and precision.
  const auto summary = nlohmann::json::parse(read_file(out + "/summary.json"));
  ASSERT_EQ(summary["points"].size(), 2u) << summary.dump();
  for (const auto& point : summary["points"]) {
    std::vector<double> ours;
    for (int round : {1, 2, 3}) {
      const auto doc = nlohmann::json::parse(
          read_file(out + "/raw/histocnn-fp32." + std::to_string(round) + ".json"));
      for (const auto& p : doc["points"])
        if (p["batch"] == point["batch"]) ours.push_back(p["epoch_seconds"].get<double>());
    }
    ASSERT_EQ(ours.size(), 3u);
    std::sort(ours.begin(), ours.end());
    EXPECT_DOUBLE_EQ(point["fp32"]["histocnn"].get<double>(), ours[1]) << point.dump();
    EXPECT_DOUBLE_EQ(point["fp32"]["pytorch"].get<double>(), 8.0) << point.dump();
    EXPECT_DOUBLE_EQ(point["fp32"]["ratio"].get<double>(), ours[1] / 8.0) << point.dump();
    EXPECT_DOUBLE_EQ(point["bf16"]["pytorch"].get<double>(), 2.0) << point.dump();  // rounds 1, 3
    // cudaMemGetInfo's growth: PyTorch's as written; the CPU stand-in has none.
    EXPECT_DOUBLE_EQ(point["device_growth_bytes"]["pytorch"].get<double>(), 3e6) << point.dump();
    EXPECT_TRUE(point["device_growth_bytes"]["histocnn"].is_null()) << point.dump();
  }
  const CommandResult md = run_raw("cat " + out + "/gpu-side-by-side-nvidia-h200-stand-in.md");
  ASSERT_EQ(md.status, 0) << md.output;
  for (const char* part :
       {"Epoch of 24 crops, seconds", "**histocnn ran on cpu, not on a GPU**", "| 32 | 10 | ",
        "| 32 | 20 | ", "Fewer rounds", "pytorch-bf16 2 of 3.",
        "| device MB histocnn / PyTorch (fp32) |", "| — / 3 |",
        "## Distance from the floor (NVIDIA H200 (stand-in): 67.0 TFLOP/s",
        "## Where histocnn's step goes (200x200, batch 50", "| conv1 forward | "})
    EXPECT_NE(md.output.find(part), std::string::npos) << part << "\n" << md.output;

  // Engines that timed different epochs cannot be compared: refused.
  write_file_atomically(out + "/raw/pytorch-tf32.4.json", R"({"examples": 1851, "points": []})");
  const CommandResult refused = run_raw("python3 " + std::string(HISTOCNN_SOURCE_DIR) +
                                        "/bench/gpu_side_by_side_report.py " + out);
  EXPECT_NE(refused.status, 0) << refused.output;
  EXPECT_NE(refused.output.find("not the same work"), std::string::npos) << refused.output;
}

// gpu-check's compile stage: torch.compile's epoch in its own column, beside
// histocnn fp32's over it (issue 18, item 7).
TEST(GpuSideBySide, TorchCompileIsAColumnBesideHistocnnFp32) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  const std::string out = dir / "out";
  const CommandResult r = side_by_side_with_stand_ins(
      dir, "--rounds 1 --sizes 32 --batches 10 --compile --time-limit 100");
  ASSERT_EQ(r.status, 0) << r.output;
  const auto summary = nlohmann::json::parse(read_file(out + "/summary.json"));
  ASSERT_EQ(summary["points"].size(), 1u) << summary.dump();
  const auto& point = summary["points"][0];
  const double ours = point["fp32"]["histocnn"].get<double>();
  EXPECT_DOUBLE_EQ(point["pytorch-compile-fp32"]["seconds"].get<double>(), 0.5) << point.dump();
  EXPECT_DOUBLE_EQ(point["pytorch-compile-fp32"]["histocnn_fp32_ratio"].get<double>(), ours / 0.5)
      << point.dump();
  const std::string md = read_file(out + "/gpu-side-by-side-nvidia-h200-stand-in.md");
  EXPECT_NE(md.find("| pytorch-compile-fp32 | histocnn fp32 / pytorch-compile-fp32 |"),
            std::string::npos)
      << md;
}

// The report splits each histocnn epoch into the GPU's busy time (the step's
// event-timed phases x the steps) and the rest, when the GPU waited for the
// host: the 2026-12-04 visit's large batches were host-bound. Records of the
// CUDA engine's shape, hand-written (no GPU here).
TEST(GpuSideBySide, EpochsSplitIntoTheGpuBusyAndTheHostWait) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  std::filesystem::create_directories(dir / "raw");
  write_file_atomically(
      dir / "raw/histocnn-fp32.1.json",
      R"j({"engine": "histocnn", "device": "cuda", "examples": 1851, "points": [{"size": 200,)j"
      R"j( "batch": 50, "epoch_seconds": 0.2, "peak_memory_bytes": 1, "data_wait_seconds": 0.05,)j"
      R"j( "per_step": {"forward_ms": 1.0, "backward_ms": 2.0, "update_ms": 0.5}}]})j");
  write_file_atomically(dir / "raw/pytorch-fp32.1.json",
                        R"j({"engine": "pytorch", "examples": 1851, "points": [{"size": 200,)j"
                        R"j( "batch": 50, "epoch_seconds": 0.25, "peak_memory_bytes": 1}]})j");
  const CommandResult r =
      run_raw("python3 " + std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_side_by_side_report.py " +
              dir.path() + " --gpu 'NVIDIA H200'");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string md = read_file(dir / "gpu-side-by-side-nvidia-h200.md");
  // 38 steps (1851 / 50, rounded up) x 3.5 ms = 0.133 s of 0.2.
  for (const char* part : {"## Where histocnn's epoch goes: the GPU busy, or waiting for the host",
                           "| 200 | 50 | fp32 | 0.200 | 0.133 | 0.67 | 0.050 |"})
    EXPECT_NE(md.find(part), std::string::npos) << part << "\n" << md;
}

// The profile's routes: what each conv layer and direction took and every
// contender's time, a variant the GPU refused shown as failed, the later
// blocks' pairs of gradient routes. Records of the CUDA step's shape,
// hand-written (no GPU here).
TEST(GpuSideBySide, TheProfileListsEachLayersRoutesAndTheirContests) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  std::filesystem::create_directories(dir / "raw");
  const std::string point =
      R"j({"size": 200, "batch": 50, "epoch_seconds": 0.2, "peak_memory_bytes": 1})j";
  write_file_atomically(dir / "raw/histocnn-fp32.1.json",
                        R"j({"engine": "histocnn", "device": "cuda", "examples": 1851,)j"
                        R"j( "points": [)j" +
                            point + "]}");
  write_file_atomically(dir / "raw/pytorch-fp32.1.json",
                        R"j({"engine": "pytorch", "examples": 1851, "points": [)j" + point + "]}");
  write_file_atomically(
      dir / "raw/histocnn-profile.1.json",
      R"j({"engine": "histocnn", "device": "cuda", "examples": 1851, "points": [{"size": 200,)j"
      R"j( "batch": 50, "epoch_seconds": 0.3, "per_step": {"forward_ms": 1, "backward_ms": 2,)j"
      R"j( "update_ms": 0.1, "allocator_ms": 0, "layer_ms": {"conv1 forward": 0.1}},)j"
      R"j( "backend": {"algorithms": [{"layer": "conv1", "forward": "HISTOCNN_FUSED_1x8",)j"
      R"j( "forward_route": "fused", "forward_ms": {"cudnn_IMPLICIT_GEMM_then_pool": 0.459,)j"
      R"j( "histocnn_fused_1x8": 0.061, "histocnn_fused_2x32": "failed: conv1 forward: kernel)j"
      R"j( launch failed: too many resources requested for launch"},)j"
      R"j( "backward_filter": "HISTOCNN_POOLED"}, {"layer": "conv2", "forward": "IMPLICIT_GEMM",)j"
      R"j( "backward_filter": "HISTOCNN_POOLED_2CH", "backward_filter_route": "pooled",)j"
      R"j( "backward_filter_ms": {"histocnn_pooled_2ch": 0.22, "cudnn_FFT": 0.2},)j"
      R"j( "backward_data": "HISTOCNN_TILE4", "backward_data_route": "pooled",)j"
      R"j( "backward_data_ms": {"histocnn_tile4": 0.25, "cudnn_FFT_TILING": 0.3},)j"
      R"j( "later_gradients_ms": {"cudnn+cudnn": 0.6, "pooled+pooled": 0.5}}]}}]})j");
  const CommandResult r =
      run_raw("python3 " + std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_side_by_side_report.py " +
              dir.path() + " --gpu 'NVIDIA H200'");
  ASSERT_EQ(r.status, 0) << r.output;
  const std::string md = read_file(dir / "gpu-side-by-side-nvidia-h200.md");
  for (const char* part :
       {"| layer | direction | took | contest |",
        "| conv1 | forward | HISTOCNN_FUSED_1x8 (fused) | cudnn_IMPLICIT_GEMM_then_pool 0.459, "
        "histocnn_fused_1x8 0.061, histocnn_fused_2x32 failed: conv1 forward: kernel launch "
        "failed: too many resources requested for launch |",
        "| conv1 | weight gradient | HISTOCNN_POOLED |  |",
        "| conv2 | weight gradient | HISTOCNN_POOLED_2CH (pooled) | histocnn_pooled_2ch 0.220, "
        "cudnn_FFT 0.200 |",
        "| conv2 | data gradient | HISTOCNN_TILE4 (pooled) | histocnn_tile4 0.250, "
        "cudnn_FFT_TILING 0.300 |",
        "| conv2 | both gradients (weight+data) | pooled+pooled | cudnn+cudnn 0.600, "
        "pooled+pooled 0.500 |"})
    EXPECT_NE(md.find(part), std::string::npos) << part << "\n" << md;
}

// gpu-check.sh's graph stage: bench/gpu_ab_report.py on records of the
// shape the CUDA step writes (hand-written here: no GPU). Medians over the
// rounds, the ratio graph / legacy, the rounds each side has, and what each
// conv layer and direction took (an engine, our kernel, or the legacy API).
std::string graph_ab_record(double seconds_128, bool failed_200) {
  const std::string took =
      R"j("backend": {"algorithms": [{"layer": "conv1", "graph": {"forward": {"engine": 7,)j"
      R"j( "workspace": 0}, "backward_filter": "HISTOCNN_DIRECT kept (faster)"}},)j"
      R"j( {"layer": "conv2", "graph": {"backward_data": "legacy API: not supported"}}]})j";
  const std::string point_200 = failed_200
                                    ? R"j({"size": 200, "batch": 50, "error": "out of memory"})j"
                                    : R"j({"size": 200, "batch": 50, "epoch_seconds": 0.5})j";
  return R"j({"points": [{"size": 128, "batch": 50, "epoch_seconds": )j" +
         std::to_string(seconds_128) + ", " + took + "}, " + point_200 + "]}";
}

TEST(GraphAb, ReportsMediansRatiosAndWhatEachLayerTook) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  write_file_atomically(dir / "legacy.r1.json", graph_ab_record(0.2, false));
  write_file_atomically(dir / "legacy.r2.json", graph_ab_record(0.4, false));
  write_file_atomically(dir / "graph.r1.json", graph_ab_record(0.1, false));
  write_file_atomically(dir / "graph.r2.json", graph_ab_record(0.2, true));
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_ab_report.py";
  const CommandResult r = run_raw("python3 " + script + " " + dir.path());
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* part :
       {"| 128 | 50 | 0.3000 | 0.1500 | 0.50 | 2/2 | conv1 forward: engine 7; conv1 "
        "backward_filter: HISTOCNN_DIRECT kept (faster); conv2 backward_data: legacy API |",
        "| 200 | 50 | 0.5000 | 0.5000 | 1.00 | 2/1 |",
        "* graph, round 2, 200 px batch 50: out of memory"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
  EXPECT_EQ(read_file(dir / "graph-vs-legacy.md"), r.output);
  const CommandResult empty = run_raw("python3 " + script + " " + (dir / "nothing"));
  EXPECT_NE(empty.status, 0);
  EXPECT_NE(empty.output.find("needs legacy.r*.json and graph.r*.json"), std::string::npos)
      << empty.output;
}

// The layout stage: the same report for named variants (first, last), the
// legacy algorithms each layer took where no graph record is.
TEST(GraphAb, NamedVariantsReportTheLegacyAlgorithmsTaken) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  const std::string took =
      R"j("backend": {"algorithms": [{"layer": "conv1", "forward": "IMPLICIT_PRECOMP_GEMM",)j"
      R"j( "backward_filter": "ALGO_1"}, {"layer": "conv2", "forward": "FFT",)j"
      R"j( "backward_data": "ALGO_1", "backward_filter": "ALGO_0"}]})j";
  auto record = [&](double seconds) {
    return R"j({"points": [{"size": 200, "batch": 150, "epoch_seconds": )j" +
           std::to_string(seconds) + ", " + took + "}]}";
  };
  write_file_atomically(dir / "first.r1.json", record(0.4));
  write_file_atomically(dir / "last.r1.json", record(0.3));
  write_file_atomically(dir / "graph.r1.json", record(9));  // another stage's: not read
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_ab_report.py";
  const CommandResult r = run_raw("python3 " + script + " " + dir.path() + " first last");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* part :
       {"# Channels last (NHWC) against channels first (NCHW)", "[--channels-last]",
        "| 200 | 150 | 0.4000 | 0.3000 | 0.75 | 1/1 | conv1 forward: IMPLICIT_PRECOMP_GEMM; conv1 "
        "backward_filter: ALGO_1; conv2 forward: FFT; conv2 backward_data: ALGO_1; conv2 "
        "backward_filter: ALGO_0 |"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
  EXPECT_EQ(read_file(dir / "last-vs-first.md"), r.output);
}

// The input stage: batches staged against batches in the step's page-locked
// memory; the column says how each point's batches went and what the loader
// made the step wait.
TEST(GraphAb, TheInputStageSaysHowTheBatchesReachedTheGpu) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  auto record = [&](double seconds, int dma, int staged) {
    return R"j({"points": [{"size": 200, "batch": 150, "epoch_seconds": )j" +
           std::to_string(seconds) + R"j(, "data_wait_seconds": 0.0125, "backend": {)j" +
           R"j("input_batches": {"sent_by_dma_from_the_loader": )j" + std::to_string(dma) +
           R"j(, "copied_to_staging_first": )j" + std::to_string(staged) + "}}}]}";
  };
  write_file_atomically(dir / "staged.r1.json", record(0.25, 0, 13));
  write_file_atomically(dir / "pinned.r1.json", record(0.20, 13, 0));
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_ab_report.py";
  const CommandResult r = run_raw("python3 " + script + " " + dir.path() + " staged pinned");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* part :
       {"# Batches in the step's page-locked memory against staged ones",
        "| 200 | 150 | 0.2500 | 0.2000 | 0.80 | 1/1 | 13 batches by DMA from the loader, 0 "
        "staged; loader wait 0.0125 s |"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
  EXPECT_EQ(read_file(dir / "pinned-vs-staged.md"), r.output);
}

// The input stage's bytes against floats (--float-batches): the column
// counts the batches sent as bytes where the records have the count.
TEST(GraphAb, TheInputStageCountsTheBatchesSentAsBytes) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  auto record = [&](double seconds, int as_bytes) {
    return R"j({"points": [{"size": 200, "batch": 150, "epoch_seconds": )j" +
           std::to_string(seconds) + R"j(, "data_wait_seconds": 0.002, "backend": {)j" +
           R"j("input_batches": {"sent_by_dma_from_the_loader": 13, "copied_to_staging_first": )j" +
           R"j(0, "sent_as_bytes": )j" + std::to_string(as_bytes) + "}}}]}";
  };
  write_file_atomically(dir / "floats.r1.json", record(0.24, 0));
  write_file_atomically(dir / "bytes.r1.json", record(0.18, 13));
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_ab_report.py";
  const CommandResult r = run_raw("python3 " + script + " " + dir.path() + " floats bytes");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* part :
       {"# Images sent as bytes and tables, expanded on the GPU, against floats",
        "| 200 | 150 | 0.2400 | 0.1800 | 0.75 | 1/1 | 13 batches by DMA from the loader, 0 "
        "staged, 13 as bytes; loader wait 0.0020 s |"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
  EXPECT_EQ(read_file(dir / "bytes-vs-floats.md"), r.output);
}

// The conv1 stage: conv1's own routes against --plain-conv1; the column
// names what conv1 took, and a table below gives each point's peak memory
// (the routes remove conv1's output and its gradient from the plan).
TEST(GraphAb, TheConv1StageReportsTheRoutesAndThePeakMemory) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  auto record = [&](double seconds, double peak, const char* forward, const char* filter) {
    return R"j({"points": [{"size": 200, "batch": 50, "epoch_seconds": )j" +
           std::to_string(seconds) + R"j(, "peak_memory_bytes": )j" + std::to_string(peak) +
           R"j(, "backend": {"algorithms": [{"layer": "conv1", "forward": ")j" + forward +
           R"j(", "backward_filter": ")j" + filter + R"j("}]}}]})j";
  };
  write_file_atomically(dir / "plain.r1.json",
                        record(0.18, 700e6, "IMPLICIT_GEMM", "HISTOCNN_DIRECT"));
  write_file_atomically(dir / "plain.r2.json",
                        record(0.20, 720e6, "IMPLICIT_GEMM", "HISTOCNN_DIRECT"));
  write_file_atomically(dir / "routes.r1.json",
                        record(0.15, 500e6, "HISTOCNN_CONV_POOL_2POS_32CH", "HISTOCNN_POOLED"));
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_ab_report.py";
  const CommandResult r = run_raw("python3 " + script + " " + dir.path() + " plain routes");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* part : {"# conv1's own routes", "[--plain-conv1 for plain]",
                           "| 200 | 50 | 0.1900 | 0.1500 | 0.79 | 2/1 | conv1 forward: "
                           "HISTOCNN_CONV_POOL_2POS_32CH; conv1 "
                           "backward_filter: HISTOCNN_POOLED |",
                           "| size | batch | plain | routes |", "| 200 | 50 | 710.0 | 500.0 |"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
  EXPECT_EQ(read_file(dir / "routes-vs-plain.md"), r.output);
}

// The wgrad, dgrad and kernels stages: the later blocks' weight or data
// gradients by their routes (or all our kernels' routes) against cuDNN's
// (--cudnn-later-wgrad, --cudnn-later-dgrad, all three flags); the column
// names what conv2 took.
TEST(GraphAb, TheLaterGradientStagesNameTheirLeverAndTheLaterBlocksChoices) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  struct Stage {
    const char *a, *direction, *cudnn, *ours;
    std::vector<std::string> parts;
  };
  const std::vector<Stage> stages = {
      {"cudnn",
       "backward_filter",
       "FFT",
       "HISTOCNN_POOLED_BY_CHANNEL_2OUT",
       {"# The later conv blocks' weight gradients from the pooled gradient",
        "[--cudnn-later-wgrad for cudnn]",
        "| 200 | 50 | 0.1000 | 0.0800 | 0.80 | 1/1 | conv2 backward_filter: "
        "HISTOCNN_POOLED_BY_CHANNEL_2OUT |"}},
      {"cudnndata",
       "backward_data",
       "FFT_TILING",
       "HISTOCNN_POOLED_DGRAD_4x4",
       {"# The later conv blocks' data gradients from the pooled gradient",
        "[--cudnn-later-dgrad for cudnndata]",
        "| 200 | 50 | 0.1000 | 0.0800 | 0.80 | 1/1 | conv2 backward_data: "
        "HISTOCNN_POOLED_DGRAD_4x4 |"}},
      {"cudnnconvs",
       "backward_data",
       "FFT_TILING",
       "HISTOCNN_POOLED_DGRAD_2x2",
       {"# All our convolution kernels' routes (each timed against cuDNN) against cuDNN's "
        "convolutions in every block",
        "[--plain-conv1 --cudnn-later-wgrad --cudnn-later-dgrad for cudnnconvs]"}}};
  for (const Stage& stage : stages) {
    const testing::TempDir dir;
    auto record = [&](double seconds, const char* taken) {
      return R"j({"points": [{"size": 200, "batch": 50, "epoch_seconds": )j" +
             std::to_string(seconds) + R"j(, "backend": {"algorithms": [{"layer": "conv2", ")j" +
             stage.direction + R"j(": ")j" + taken + R"j("}]}}]})j";
    };
    write_file_atomically(dir / (std::string(stage.a) + ".r1.json"), record(0.10, stage.cudnn));
    write_file_atomically(dir / "routes.r1.json", record(0.08, stage.ours));
    const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_ab_report.py";
    const CommandResult r =
        run_raw("python3 " + script + " " + dir.path() + " " + stage.a + " routes");
    ASSERT_EQ(r.status, 0) << r.output;
    for (const std::string& part : stage.parts)
      EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
  }
}

// A point that failed in every run (gpu-check's accurate-network stage on
// 2026-12-04, before bench dropped batch norm's short batch) is a row that
// says so and a line per failure, not an empty table.
TEST(GraphAb, PointsThatFailedEverywhereAreReportedWithTheirErrors) {
  if (run_raw("python3 --version").status != 0) GTEST_SKIP() << "python3 is not installed";
  const testing::TempDir dir;
  const std::string failed =
      R"j({"points": [{"size": 64, "batch": 50, "error": "batch norm trains on full batches"}]})j";
  write_file_atomically(dir / "first.r1.json", failed);
  write_file_atomically(dir / "last.r1.json", failed);
  const std::string script = std::string(HISTOCNN_SOURCE_DIR) + "/bench/gpu_ab_report.py";
  const CommandResult r = run_raw("python3 " + script + " " + dir.path() + " first last");
  ASSERT_EQ(r.status, 0) << r.output;
  for (const char* part : {"| 64 | 50 | failed | failed | — | 0/0 |",
                           "* first, round 1, 64 px batch 50: batch norm trains on full batches",
                           "* last, round 1, 64 px batch 50: batch norm trains on full batches"})
    EXPECT_NE(r.output.find(part), std::string::npos) << part << "\n" << r.output;
}

}  // namespace
}  // namespace histocnn
