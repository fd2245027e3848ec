#include "study/study_results.h"

#include <filesystem>

#include "core/error.h"
#include "study/results_file.h"

namespace histocnn {

std::vector<StudyRow> StudyResults::where(
    const std::function<bool(const StudyRow&)>& predicate) const {
  std::vector<StudyRow> out;
  for (const auto& r : ok)
    if (predicate(r)) out.push_back(r);
  return out;
}

StudyResults load_study_results(const std::string& path) {
  StudyResults s;
  s.source = std::filesystem::is_directory(path) ? path + "/results.jsonl" : path;
  require(std::filesystem::exists(s.source), s.source + ": no study results found");
  const auto rows = read_results(s.source);
  require(!rows.empty(), s.source + ": no measurements yet");
  if (rows[0].contains("machine")) s.machine = rows[0]["machine"];
  for (const auto& r : rows) (r.value("status", "") == "ok" ? s.ok : s.not_run).push_back(r);
  for (const auto& r : s.ok) {
    s.sizes.insert(r["size"].get<int>());
    s.batches.insert(r["batch"].get<int>());
    if (r["device"] == "cpu") s.cpu_threads.insert(r["threads"].get<int>());
  }
  return s;
}

std::string setup_label(const StudyRow& r) {
  std::string s = r["engine"].get<std::string>() + " " + r["device"].get<std::string>();
  if (r["device"] == "cpu")
    s += " " + std::to_string(r["threads"].get<int>()) + "t";
  else
    s += " " + r["allocator"].get<std::string>();
  return s;
}

}  // namespace histocnn
