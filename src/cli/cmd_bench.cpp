// histocnn bench: the side-by-side benchmark's histocnn engine (study/epoch_bench.h).
#include <cstdio>

#include "cli/commands.h"
#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "study/epoch_bench.h"

namespace histocnn::cli {

Runner add_bench(CLI::App& app) {
  auto* cmd = app.add_subcommand(
      "bench",
      "time training epochs of the paper's CNN over sizes x batches in one process (synthetic "
      "tissue crops, or --pixels random; bench/gpu_side_by_side.sh runs it beside PyTorch); "
      "writes --json");
  auto o = std::make_shared<EpochBenchOptions>();
  auto json = std::make_shared<std::string>();
  cmd->option_defaults()->group("What is timed");
  cmd->add_option("--device", o->device, "cpu | cuda")
      ->check(CLI::IsMember({"cpu", "cuda"}))
      ->capture_default_str();
  cmd->add_option("--sizes", o->sizes, "input sizes (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(8, 1024))
      ->capture_default_str();
  cmd->add_option("--batches", o->batches, "batch sizes (comma-separated)")
      ->delimiter(',')
      ->check(CLI::Range(1, 4096))
      ->capture_default_str();
  cmd->add_option("--model", o->model,
                  "model spec file (default: the paper's network, the one PyTorch's side of "
                  "bench/gpu_side_by_side.sh trains)");
  cmd->add_option("--precision", o->precision, "fp32 | tf32 (cuda) | bf16")
      ->check(CLI::IsMember({"fp32", "tf32", "bf16"}))
      ->capture_default_str();
  cmd->add_option("--warmup", o->warmup, "untimed epochs per point")
      ->check(CLI::Range(0, 100))
      ->capture_default_str();
  cmd->add_option("--epochs", o->epochs, "timed epochs per point (the median is reported)")
      ->check(CLI::Range(1, 100))
      ->capture_default_str();
  cmd->add_option("--benign", o->benign, "benign examples per epoch")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--malignant", o->malignant, "malignant examples per epoch")
      ->check(CLI::Range(1, 1000000))
      ->capture_default_str();
  cmd->add_option("--pixels", o->pixels,
                  "tissue (the study's synthetic GlaS-like crops: our pooled gradients' work "
                  "follows the content) | random (uniform noise, as records before 2026-12-06)")
      ->check(CLI::IsMember({"tissue", "random"}))
      ->capture_default_str();
  cmd->add_option("--threads", o->threads, "CPU cores (0 = all)")
      ->check(CLI::Range(0, 4096))
      ->capture_default_str();
  cmd->add_option("--json", *json, "write the results here (atomically)")->required();
  cmd->option_defaults()->group("Memory and GPU execution");
  cmd->add_option("--allocator", o->allocator, "plan | pool | direct | async")
      ->check(CLI::IsMember({"plan", "pool", "direct", "async"}))
      ->capture_default_str();
  cmd->add_flag("--cuda-graphs", o->cuda_graphs, "replay the step as CUDA graphs (plan only)");
  cmd->add_flag("--cudnn-graph", o->cudnn_graph, "convolutions through cuDNN's graph API");
  cmd->add_flag("--channels-last", o->channels_last,
                "cuda: the conv blocks' maps channels last (NHWC), the filters KRSC");
  cmd->option_defaults()->group("CPU step and loader (A/B levers)");
  cmd->add_flag("--onednn-pool", o->onednn_pool,
                "cpu: max pooling by oneDNN's primitives instead of histocnn's kernels (A/B)");
  cmd->add_flag("--onednn-conv1", o->onednn_conv1,
                "cpu: conv1 by oneDNN's convolution instead of histocnn's fused "
                "conv+ReLU+pool kernels (A/B)");
  cmd->add_flag("--direct-conv", o->direct_conv,
                "cpu: every convolution by oneDNN's direct algorithm, no Winograd (A/B)");
  cmd->add_flag("--direct-conv-weights", o->direct_conv_weights,
                "cpu: Winograd convolutions but for the weight gradients oneDNN takes (conv1's "
                "under --onednn-conv1, the later blocks' under --onednn-wgrad), which take its "
                "direct algorithm (A/B)");
  cmd->add_flag("--onednn-wgrad", o->onednn_wgrad,
                "cpu: the weight gradients of the conv blocks after conv1 by oneDNN's primitives "
                "instead of histocnn's kernel from the pooled gradient (A/B)");
  cmd->add_flag("--onednn-dgrad", o->onednn_dgrad,
                "cpu: the data gradients of the conv blocks after conv1 by oneDNN's primitives "
                "(after a pool backward) instead of histocnn's kernel from the pooled gradient "
                "(A/B)");
  cmd->add_flag("--onednn-forward", o->onednn_forward,
                "cpu: the forward convolutions of the conv blocks after conv1 by oneDNN's "
                "primitives (then our pool) instead of histocnn's Winograd conv+ReLU+pool "
                "kernel (A/B)");
  cmd->add_option("--slice-kb", o->slice_kb,
                  "cpu: micro-batch a conv block whose output exceeds this many KiB (0 = never; "
                  "default: 4 MiB up to 2 threads, 2 MiB per thread beyond)")
      ->check(CLI::Range(0, 1 << 24));
  cmd->add_option("--loader-workers", o->loader_workers,
                  "loader threads beside the compute threads (default as training: 0 on cpu, the "
                  "OpenMP team prepares batches; threads - 1 on cuda)")
      ->check(CLI::Range(0, 256));
  cmd->add_flag("--staged-batches", o->staged_batches,
                "cuda: the loader's batches in ordinary memory, copied into the step's pinned "
                "staging buffer, instead of in the step's page-locked memory (A/B)");
  cmd->add_flag("--float-batches", o->float_batches,
                "cuda: the batches' images sent to the GPU as floats, converted by the loader, "
                "instead of as bytes and lookup tables expanded on the GPU (A/B)");
  cmd->add_flag("--plain-conv1", o->plain_conv1,
                "cuda: conv1 by cuDNN's forward and our pool kernel, its weight gradient by our "
                "direct kernel, its output and gradient in the plan, instead of the routes timed "
                "fastest when the step is built (A/B)");
  cmd->add_flag("--cudnn-later-wgrad", o->cudnn_later_wgrad,
                "cuda: the weight gradients of the conv blocks after conv1 by cuDNN's algorithm, "
                "instead of the route timed fastest when the step is built (our kernel from the "
                "pooled gradient, where it applies) (A/B)");
  cmd->add_flag("--cudnn-later-dgrad", o->cudnn_later_dgrad,
                "cuda: the data gradients of the conv blocks after conv1 by cuDNN's algorithm, "
                "instead of the route timed fastest when the step is built (our kernel from the "
                "pooled gradient, where it applies) (A/B)");
  cmd->option_defaults()->group("Measurements beside the epochs");
  cmd->add_flag("--profile-layers", o->profile_layers,
                "time every layer's forward and backward (cuda: events, no graphs)");
  cmd->add_flag("--ceilings", o->ceilings,
                "cpu: first measure what the cores can do — sgemm 2048^3 GFLOP/s and STREAM "
                "triad GB/s on --threads threads — into the JSON's \"ceilings\"");
  return [o, json] {
    require(!o->onednn_pool || o->device == "cpu", "--onednn-pool: a CPU option (--device cpu)");
    require(!o->onednn_conv1 || o->device == "cpu", "--onednn-conv1: a CPU option (--device cpu)");
    require(!o->direct_conv || o->device == "cpu", "--direct-conv: a CPU option (--device cpu)");
    require(!o->onednn_wgrad || o->device == "cpu", "--onednn-wgrad: a CPU option (--device cpu)");
    require(!o->onednn_dgrad || o->device == "cpu", "--onednn-dgrad: a CPU option (--device cpu)");
    require(!o->onednn_forward || o->device == "cpu",
            "--onednn-forward: a CPU option (--device cpu)");
    require(!o->direct_conv_weights || o->device == "cpu",
            "--direct-conv-weights: a CPU option (--device cpu)");
    require(o->slice_kb < 0 || o->device == "cpu", "--slice-kb: a CPU option (--device cpu)");
    require(!o->ceilings || o->device == "cpu", "--ceilings: a CPU option (--device cpu)");
    require(!o->staged_batches || o->device == "cuda",
            "--staged-batches: a CUDA option (--device cuda)");
    require(!o->float_batches || o->device == "cuda",
            "--float-batches: a CUDA option (--device cuda)");
    require(!o->plain_conv1 || o->device == "cuda", "--plain-conv1: a CUDA option (--device cuda)");
    require(!o->cudnn_later_wgrad || o->device == "cuda",
            "--cudnn-later-wgrad: a CUDA option (--device cuda)");
    require(!o->cudnn_later_dgrad || o->device == "cuda",
            "--cudnn-later-dgrad: a CUDA option (--device cuda)");
    require(!o->channels_last || o->device == "cuda",
            "--channels-last: a CUDA option (--device cuda)");
    prepare_output_file("--json", *json);
    if (!o->model.empty()) {
      refuse_overwriting_inputs("--json", *json, {{o->model, "the model spec"}});
      o->spec = parse_model_spec(read_file(o->model, size_t(1) << 20), o->model);
    }
    std::printf("histocnn bench: %s, %s%s, allocator %s%s; %d + %d epochs per point\n",
                o->device.c_str(), o->precision.c_str(), o->channels_last ? ", channels last" : "",
                o->allocator.c_str(), o->cuda_graphs ? " + CUDA graphs" : "", o->warmup, o->epochs);
    std::printf("%5s %6s\n", "size", "batch");
    const nlohmann::json results = run_epoch_bench(*o);
    write_file_atomically(*json, results.dump(2) + "\n");
    std::printf("wrote %s\n", json->c_str());
    return 0;
  };
}

}  // namespace histocnn::cli
