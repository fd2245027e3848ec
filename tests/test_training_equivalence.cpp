// The training loop's behaviour, pinned: a handful of runs (paper and
// accurate presets, resume, an ensemble, two data-parallel processes, CPU
// bf16) give the same model tensors, model metadata and metrics.json (minus
// timings and paths) as when tests/data/training-equivalence.json was
// recorded. A refactoring of the loop must leave every byte of every tensor
// alone; a change that means to alter training re-records the file:
//
//   HISTOCNN_RECORD_EQUIVALENCE=1 build/histocnn_tests --gtest_filter='Equivalence.*'
//
// Every fp32 run is capped at AVX2 kernels (ONEDNN_MAX_CPU_ISA) on one
// thread, so the bytes do not depend on which x86 CPU runs the test; the bf16
// run needs the CPU's own bf16 kernels and is compared only where the kernels
// are those it was recorded with.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <nlohmann/json.hpp>

#include "backends/cpu/cpu_backend.h"
#include "cli_fixture.h"
#include "core/atomic_file.h"
#include "dist/communicator.h"
#include "nn/safetensors.h"
#include "test_util.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;

const std::string kGolden =
    std::string(HISTOCNN_SOURCE_DIR) + "/tests/data/training-equivalence.json";

uint64_t fnv1a(const void* data, size_t bytes) {
  uint64_t h = 1469598103934665603ull;
  for (size_t i = 0; i < bytes; ++i)
    h = (h ^ static_cast<const uint8_t*>(data)[i]) * 1099511628211ull;
  return h;
}

std::string hex(uint64_t value) {
  char text[17];
  std::snprintf(text, sizeof text, "%016llx", static_cast<unsigned long long>(value));
  return text;
}

// What varies from run to run without changing what was computed: wall
// times, throughput, this machine's paths and the build's version.
void drop_volatile(nlohmann::json& j) {
  if (j.is_array()) {
    for (auto& item : j) drop_volatile(item);
    return;
  }
  if (!j.is_object()) return;
  for (const char* key : {"seconds", "images_per_second", "data_wait_seconds", "data_seconds",
                          "profile", "model", "output", "data", "version", "git"})
    j.erase(key);
  for (auto& [key, value] : j.items()) drop_volatile(value);
}

// A safetensors file as tensor name -> digest of its bytes, and its metadata
// (JSON values parsed, volatile fields dropped).
nlohmann::json fingerprint_model(const std::string& path) {
  const SafetensorsFile file = read_safetensors(path);
  nlohmann::json tensors = nlohmann::json::object(), metadata = nlohmann::json::object();
  for (const auto& [name, t] : file.tensors)
    tensors[name] = t.is_int() ? hex(fnv1a(t.ints.data(), t.ints.size() * 8))
                               : hex(fnv1a(t.values.data(), t.values.size() * 4));
  for (const auto& [key, text] : file.metadata) {
    nlohmann::json value = nlohmann::json::parse(text, nullptr, false);
    if (value.is_discarded() || !value.is_structured()) value = text;
    drop_volatile(value);
    metadata[key] = value;
  }
  return {{"tensors", tensors}, {"metadata", metadata}};
}

// Every model file and metrics.json a run left in its folder (and the
// ensemble members' folders), by relative path.
nlohmann::json fingerprint_run(const std::string& folder) {
  nlohmann::json result = nlohmann::json::object();
  for (const auto& entry : fs::recursive_directory_iterator(folder)) {
    const std::string name = fs::relative(entry.path(), folder).string();
    if (entry.path().extension() == ".safetensors") result[name] = fingerprint_model(entry.path());
    if (entry.path().filename() == "metrics.json") {
      nlohmann::json metrics = nlohmann::json::parse(read_file(entry.path()));
      drop_volatile(metrics);
      result[name] = metrics;
    }
  }
  return result;
}

// The first place two fingerprints differ, as a JSON pointer ("" when equal).
std::string first_difference(const nlohmann::json& want, const nlohmann::json& got,
                             const std::string& at = "") {
  if (want.type() != got.type() || !want.is_structured()) return want == got ? "" : at;
  if (want.size() != got.size() && want.is_array()) return at + " (length)";
  for (const auto& [key, value] : want.items()) {
    const bool has = want.is_array() ? std::stoul(key) < got.size() : got.contains(key);
    if (!has) return at + "/" + key + " (missing)";
    const std::string d =
        first_difference(value, want.is_array() ? got[std::stoul(key)] : got[key], at + "/" + key);
    if (!d.empty()) return d;
  }
  if (got.is_object())
    for (const auto& [key, value] : got.items())
      if (!want.contains(key)) return at + "/" + key + " (unexpected)";
  return "";
}

// The suite's dataset and short training are the command-line suites' own.
class Equivalence : public Cli {
 protected:
  static std::string fp32(const std::string& args) {
    return "ONEDNN_MAX_CPU_ISA=AVX2 " + std::string(HISTOCNN_BINARY) + " " + args;
  }
  static std::string mpirun(const std::string& args) {
    return "ONEDNN_MAX_CPU_ISA=AVX2 timeout 300 mpirun -np 2 --oversubscribe "
           "--allow-run-as-root -x ONEDNN_MAX_CPU_ISA " +
           std::string(HISTOCNN_BINARY) + " " + args;
  }

  // Runs the command lines in order (all writing to out(name)), then compares
  // the folder with the recorded fingerprint, or records it.
  static void check(const std::string& name, const std::vector<std::string>& commands) {
    for (const auto& command : commands) {
      const CommandResult r = testing::run_raw(command);
      ASSERT_EQ(r.status, 0) << command << "\n" << r.output;
    }
    const nlohmann::json got = fingerprint_run(out(name));
    nlohmann::json golden =
        fs::exists(kGolden) ? nlohmann::json::parse(read_file(kGolden)) : nlohmann::json::object();
    if (std::getenv("HISTOCNN_RECORD_EQUIVALENCE")) {
      golden[name] = got;
      write_file_atomically(kGolden, golden.dump(1) + "\n");
      GTEST_SKIP() << "recorded " << name << " in " << kGolden;
    }
    ASSERT_TRUE(golden.contains(name)) << name << " is not recorded in " << kGolden;
    const nlohmann::json::json_pointer isa("/metrics.json/backend/isa");
    if (name == "bf16" && golden[name].value(isa, "") != got.value(isa, ""))
      GTEST_SKIP() << "bf16 recorded with " << golden[name].value(isa, "")
                   << " kernels, this CPU uses " << got.value(isa, "");
    const std::string where = first_difference(golden[name], got);
    EXPECT_EQ(where, "") << name << ": the run differs from the recorded one at " << where;
  }
};

TEST_F(Equivalence, PaperPresetWithBestEpochSelection) {
  check("paper", {fp32(train_args() +
                       " --epochs 3 --flips --rotations --select-by image_auc "
                       "--lr-schedule step --lr-step-epochs 2 -o " +
                       out("paper"))});
}

TEST_F(Equivalence, AccuratePresetWithEarlyStopping) {
  check("accurate", {fp32(train_args() +
                          " --preset accurate --epochs 3 --warmup-epochs 1 "
                          "--fresh-crops --select-by image_accuracy --early-stop 1 -o " +
                          out("accurate"))});
}

TEST_F(Equivalence, ResumeAfterAnInterruptedRun) {
  const std::string args = train_args() + " --flips --stain-jitter 0.05 --lr-schedule cosine";
  check("resume", {fp32(args + " --epochs 1 -o " + out("resume")),
                   fp32(args + " --epochs 3 --resume -o " + out("resume"))});
}

TEST_F(Equivalence, Ensemble) {
  check("ensemble", {fp32(train_args() + " --epochs 1 --ensemble 2 -o " + out("ensemble"))});
}

TEST_F(Equivalence, TwoDataParallelProcesses) {
  if (!mpi_built()) GTEST_SKIP() << "this build has no MPI";
  if (std::system("command -v mpirun >/dev/null 2>&1") != 0) GTEST_SKIP() << "no mpirun";
  check("data_parallel", {mpirun(train_args() + " --epochs 2 -o " + out("data_parallel"))});
}

TEST_F(Equivalence, CpuBf16) {
  if (!cpu_supports_bf16()) GTEST_SKIP() << "no AVX512-BF16 / AMX on this CPU";
  check("bf16", {std::string(HISTOCNN_BINARY) + " " + train_args() +
                 " --epochs 2 --precision bf16 -o " + out("bf16")});
}

}  // namespace
}  // namespace histocnn
