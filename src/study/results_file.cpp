#include "study/results_file.h"

#include <filesystem>
#include <map>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace histocnn {
namespace {

using Json = nlohmann::json;

// `row[field]` has the type `check` accepts (absent allowed when `optional`).
void require_field(const Json& row, const char* field, bool (Json::*check)() const,
                   const char* type, bool optional, const std::string& where) {
  if (!row.contains(field)) {
    require(optional, where + ": no \"" + field + "\"");
    return;
  }
  require((row[field].*check)(), where + ": \"" + field + "\" is not " + type);
}

// The profile the report's breakdown figures read.
void require_profile(const Json& profile, const std::string& where) {
  require(profile.is_object(), where + ": \"profile\" is not an object");
  for (const char* field : {"steps", "data_wait_seconds", "forward_seconds", "backward_seconds",
                            "update_seconds", "allocator_seconds"})
    require_field(profile, field, &Json::is_number, "a number", false, where + " profile");
  if (!profile.contains("layer_seconds")) return;
  require(profile["layer_seconds"].is_object(), where + ": \"layer_seconds\" is not an object");
  for (const auto& [name, seconds] : profile["layer_seconds"].items())
    require(seconds.is_number(), where + ": layer_seconds \"" + name + "\" is not a number");
}

// What a CPU measurement's cores could do (study --ceilings).
void require_ceilings(const Json& ceilings, const std::string& where) {
  require(ceilings.is_object(), where + ": \"ceilings\" is not an object");
  for (const char* field : {"sgemm_gflops", "triad_gbs"}) {
    require_field(ceilings, field, &Json::is_number, "a number", false, where + " ceilings");
    require(ceilings[field].get<double>() > 0,
            where + " ceilings: \"" + field + "\" is not positive");
  }
}

// A measurement that ran: what the study's tables and figures read.
void require_measurement(const Json& row, const std::string& where) {
  for (const char* field : {"engine", "device"})
    require_field(row, field, &Json::is_string, "text", false, where);
  for (const char* field : {"threads", "size", "batch"})
    require_field(row, field, &Json::is_number_integer, "a whole number", false, where);
  for (const char* field : {"epoch_seconds", "images_per_second"})
    require_field(row, field, &Json::is_number, "a number", false, where);
  require(row["epoch_seconds"].get<double>() > 0, where + ": \"epoch_seconds\" is not positive");
  require_field(row, "allocator", &Json::is_string, "text", row["device"] == "cpu", where);
  require_field(row, "final_train_accuracy", &Json::is_number, "a number", true, where);
  if (row.contains("peak_memory_bytes"))
    require(row["peak_memory_bytes"].is_number() || row["peak_memory_bytes"].is_null(),
            where + ": \"peak_memory_bytes\" is not a number");
  if (row.contains("profile")) require_profile(row["profile"], where);
  if (row.contains("ceilings")) require_ceilings(row["ceilings"], where);
}

void require_row(const Json& row, const std::string& where) {
  require(row.is_object(), where + ": not a JSON object");
  require_field(row, "key", &Json::is_string, "text", false, where);
  require_field(row, "status", &Json::is_string, "text", true, where);
  require_field(row, "reason", &Json::is_string, "text", true, where);
  if (row.contains("machine")) {
    const Json& m = row["machine"];
    require(m.is_object(), where + ": \"machine\" is not an object");
    require_field(m, "cpu", &Json::is_string, "text", true, where + " machine");
    require_field(m, "gpu", &Json::is_string, "text", true, where + " machine");
    require_field(m, "cores", &Json::is_number_integer, "a whole number", true, where + " machine");
  }
  if (row.value("status", "") == "ok") require_measurement(row, where);
}

}  // namespace

std::vector<Json> parse_results(const std::string& text, const std::string& path) {
  std::vector<Json> rows;
  std::map<std::string, size_t> index;
  std::istringstream in(text);
  int line_no = 0;
  for (std::string line; std::getline(in, line);) {
    ++line_no;
    if (line.empty()) continue;
    // A last line without its newline was cut by a crash mid-append: that
    // point was not recorded (it will run again).
    if (in.eof() && text.back() != '\n') break;
    const std::string where = path + " line " + std::to_string(line_no);
    Json row = Json::parse(line, nullptr, false);
    require(!row.is_discarded(), where + ": not a JSON row");
    require_row(row, where);
    const std::string key = row["key"].get<std::string>();
    if (index.count(key))
      rows[index[key]] = row;
    else
      index[key] = rows.size(), rows.push_back(row);
  }
  return rows;
}

std::vector<Json> read_results(const std::string& path) {
  if (!std::filesystem::exists(path)) return {};
  return parse_results(read_file(path), path);
}

}  // namespace histocnn
