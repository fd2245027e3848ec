// A study's results.jsonl: one JSON object per line, appended as each
// measurement ends (a later row for a key replaces an earlier one). Every
// row is checked as it is read — the fields the study and the report use,
// with their types — so a damaged or hand-edited file is an error naming its
// line, never a crash further on.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <vector>

namespace histocnn {

// The rows of a results.jsonl's text; `path` names it in errors. A last line
// without its newline (a crash mid-append) is skipped: that point runs again.
std::vector<nlohmann::json> parse_results(const std::string& text, const std::string& path);
// The same from the file (none when it does not exist).
std::vector<nlohmann::json> read_results(const std::string& jsonl_path);

}  // namespace histocnn
