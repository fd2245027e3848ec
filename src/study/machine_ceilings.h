// What this machine can do on the process's cores: the ceilings an epoch's
// rate is read against. Single-precision matrix products (oneDNN's
// dnnl_sgemm, M = N = K = n, on the OpenMP team) and memory bandwidth
// (STREAM's triad, on `threads` threads). Measured, never looked up: a VM's
// cores and memory are whatever its host gives it at the moment.
//
// `histocnn bench --ceilings` records them beside the epochs (issue 20: the
// bandwidth per thread count on the 16-core machine); bench/bench_epoch
// prints each point's GFLOP/s as a share of the sgemm ceiling.
#pragma once

#include <cstddef>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace histocnn {

constexpr size_t kTriadFloats = size_t(64) << 20;  // 256 MiB per array: past any cache

// GFLOP/s of `runs` products after one warm-up. Requires n >= 1, runs >= 1.
std::vector<double> sgemm_gflops(int n = 2048, int runs = 8);

// The triad a = b + s * c over three arrays of `floats` floats, each of
// `threads` threads on its own slice (touched first by that thread, so a
// NUMA machine places it near the thread); the best of `runs` after one
// warm-up, counting three arrays of traffic (GB/s). Requires threads >= 1.
double triad_gbs(int threads, size_t floats = kTriadFloats, int runs = 5);

// {"threads", "sgemm_n", "sgemm_gflops" (the best run: what the machine
// reached, not what a noisy moment gave), "sgemm_gflops_all", "triad_gbs"}.
nlohmann::json measure_ceilings(int threads, int sgemm_n = 2048,
                                size_t triad_floats = kTriadFloats);

// "ceilings on 2 threads: sgemm 379.0 GFLOP/s, memory triad 54.2 GB/s": the
// line bench, ceilings and study print for a measure_ceilings() result.
std::string ceilings_line(const nlohmann::json& ceilings);

}  // namespace histocnn
