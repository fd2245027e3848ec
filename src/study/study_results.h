// A study's results.jsonl, read once for the report: the measurements that
// ran and those that did not, the grid they cover, and a query over them.
#pragma once

#include <functional>
#include <nlohmann/json.hpp>
#include <set>
#include <string>
#include <vector>

namespace histocnn {

using StudyRow = nlohmann::json;  // one line of results.jsonl

struct StudyResults {
  std::string source;             // the results.jsonl read
  std::vector<StudyRow> ok;       // status "ok"
  std::vector<StudyRow> not_run;  // anything else (skipped, failed, out of memory)
  nlohmann::json machine;         // the first row's "machine" (null when absent)
  std::set<int> sizes, batches;   // over the measurements that ran
  std::set<int> cpu_threads;      // thread counts of the CPU measurements
  int largest_size() const { return sizes.empty() ? 0 : *sizes.rbegin(); }
  int most_threads() const { return cpu_threads.empty() ? 0 : *cpu_threads.rbegin(); }
  // The measurements that ran and satisfy `predicate`, in file order.
  std::vector<StudyRow> where(const std::function<bool(const StudyRow&)>& predicate) const;
};

// `path`: a study folder or its results.jsonl. Throws naming the file when
// there is none or it holds no rows.
StudyResults load_study_results(const std::string& path);

// "histocnn cpu 16t" or "histocnn cuda pool": a measurement's engine and setup.
std::string setup_label(const StudyRow& row);

}  // namespace histocnn
