// The study report's tables (Markdown), one function each, and the numbers
// the tables and figures share: the paper's published speed-ups and ours.
#pragma once

#include <map>
#include <string>
#include <utility>
#include <vector>

#include "study/study_results.h"

namespace histocnn {

// `value` with `digits` decimals, as the tables and figure labels print it.
std::string fixed(double value, int digits = 2);

// The paper's speed-up of a GTX-980 over a 16-core Core i7, by CPU cores
// (16/8/4/2/1 -> 4.49, 5.00, 7.58, 11.97, 16.19).
const std::map<int, double>& paper_speedup();

// t_cpu / t_gpu at one size and batch: (CPU threads, ratio) for every histocnn
// CPU measurement, against the histocnn GPU one with `allocator`; sorted by
// threads; empty without the GPU measurement.
std::vector<std::pair<int, double>> cpu_over_gpu(const StudyResults& results,
                                                 const std::string& allocator, int size, int batch);

// Every measurement: engine, device, threads, allocator, size, batch, s/epoch,
// img/s, peak MB, final train accuracy.
std::string measurements_table(const StudyResults& results);
// histocnn against PyTorch at the same device, threads, size and batch (a
// sentence instead when PyTorch did not run).
std::string pytorch_table(const StudyResults& results);
// Our speed-up (pool) per batch beside the paper's, by CPU cores.
std::string speedup_table(const StudyResults& results);
// The CPU measurements what `threads` cores could do (study --ceilings): the
// first histocnn CPU row at that thread count that recorded it, else null.
nlohmann::json cpu_ceilings(const StudyResults& results, int threads);
// histocnn on the CPU at the largest size, by thread count: each batch's
// epoch and speed-up over 1 thread and, where the study measured them, the
// cores' sgemm GFLOP/s, its own speed-up and the memory triad, then how much
// of the sgemm's speed-up the epoch kept at the most threads. "" with fewer
// than two thread counts.
std::string cpu_scaling_table(const StudyResults& results);
// What did not run and why ("" when everything ran).
std::string not_run_table(const StudyResults& results);

}  // namespace histocnn
