// What the CUDA step's contests share when it is built (algorithm and
// route choices timed on the device): zeroed scratch buffers from the
// step's resource, returned when they go, a kernel sequence's mean time by
// events, and our kernels' variants timed so that one the device refuses to
// launch drops out. Internal to the CUDA backend.
#pragma once

#include <cuda_runtime.h>

#include <cctype>
#include <functional>
#include <nlohmann/json.hpp>
#include <string>
#include <utility>
#include <vector>

#include "backends/cuda/contenders.h"
#include "backends/cuda/cuda_context.h"
#include "backends/cuda/cuda_kernels.h"
#include "memory/memory_resource.h"

namespace histocnn::cuda {

// A byte whose repetition is a positive value in fp32 (0x3F3F3F3F, 0.75) and
// in bf16 (0x3F3F, 0.75): scratch maps that make our kernels from the pooled
// gradient take every term (none skipped as a zero of ReLU) when timed.
constexpr int kPositiveScratchByte = 0x3F;

class DeviceScratch {
 public:
  DeviceScratch(MemoryResource* resource, cudaStream_t stream)
      : resource_(resource), stream_(stream) {}
  ~DeviceScratch() {
    cudaStreamSynchronize(stream_);
    for (auto it = held_.rbegin(); it != held_.rend(); ++it)
      resource_->deallocate(it->first, it->second, stream_);
  }
  DeviceScratch(const DeviceScratch&) = delete;
  DeviceScratch& operator=(const DeviceScratch&) = delete;
  // `bytes` on the stream, zeroed unless `zeroed` is false (a workspace).
  void* take(size_t bytes, bool zeroed = true) {
    void* p = resource_->allocate(bytes, stream_);
    held_.push_back({p, bytes});
    if (zeroed) HISTOCNN_CUDA(cudaMemsetAsync(p, 0, bytes, stream_));
    return p;
  }
  // `bytes` whose every fp32 or bf16 element is 0.75 (kPositiveScratchByte).
  void* take_positive(size_t bytes) {
    void* p = take(bytes, false);
    HISTOCNN_CUDA(cudaMemsetAsync(p, kPositiveScratchByte, bytes, stream_));
    return p;
  }

 private:
  MemoryResource* resource_;
  cudaStream_t stream_;
  std::vector<std::pair<void*, size_t>> held_;
};

// A contender's key in metrics.json's times: its name in lower case
// ("HISTOCNN_DIRECT_2CH" -> "histocnn_direct_2ch").
inline std::string timing_key(std::string name) {
  for (char& ch : name) ch = char(std::tolower(static_cast<unsigned char>(ch)));
  return name;
}

// The mean device milliseconds of three runs of `run` on `stream` after one
// warm-up, by events (destroyed whatever `run` throws).
inline float mean_device_ms(cudaStream_t stream, const std::function<void()>& run) {
  struct Events {
    cudaEvent_t start = nullptr, stop = nullptr;
    ~Events() {
      if (start) cudaEventDestroy(start);
      if (stop) cudaEventDestroy(stop);
    }
  } e;
  HISTOCNN_CUDA(cudaEventCreate(&e.start));
  HISTOCNN_CUDA(cudaEventCreate(&e.stop));
  run();
  HISTOCNN_CUDA(cudaEventRecord(e.start, stream));
  for (int i = 0; i < 3; ++i) run();
  HISTOCNN_CUDA(cudaEventRecord(e.stop, stream));
  check_launch("a timed trial");
  HISTOCNN_CUDA(cudaEventSynchronize(e.stop));
  float ms = 0;
  HISTOCNN_CUDA(cudaEventElapsedTime(&ms, e.start, e.stop));
  return ms / 3;
}

// Our kernels' variants timed on `stream` (contenders.h): a launch the
// device refuses drops out where the stream still works afterwards.
inline Contenders device_contenders(cudaStream_t stream, std::string what, nlohmann::json& times) {
  return Contenders(
      std::move(what), times,
      [stream](const std::function<void()>& run) { return mean_device_ms(stream, run); },
      [stream] {
        cudaGetLastError();  // a refused launch's error is not sticky: cleared
        return cudaStreamSynchronize(stream) == cudaSuccess;
      });
}

}  // namespace histocnn::cuda
