#include "data/grade_csv.h"

#include <algorithm>
#include <filesystem>
#include <set>
#include <sstream>

#include "core/atomic_file.h"
#include "core/error.h"

namespace histocnn {
namespace {

std::string trim(const std::string& s) {
  const auto first = s.find_first_not_of(" \t\"");
  if (first == std::string::npos) return "";
  const auto last = s.find_last_not_of(" \t\"");
  return s.substr(first, last - first + 1);
}

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return std::tolower(c); });
  return s;
}

std::vector<std::string> split_fields(const std::string& line) {
  std::vector<std::string> fields;
  std::string field;
  std::istringstream in(line);
  while (std::getline(in, field, ',')) fields.push_back(trim(field));
  if (!line.empty() && line.back() == ',') fields.push_back("");
  return fields;
}

}  // namespace

std::vector<GradeRow> parse_grade_csv(const std::string& content, const std::string& path) {
  // Split on CR, LF or CRLF.
  std::vector<std::string> lines;
  std::string current;
  for (size_t i = 0; i < content.size(); ++i) {
    const char c = content[i];
    if (c == '\r' || c == '\n') {
      lines.push_back(current);
      current.clear();
      if (c == '\r' && i + 1 < content.size() && content[i + 1] == '\n') ++i;
    } else {
      current.push_back(c);
    }
  }
  if (!current.empty()) lines.push_back(current);
  // Strip a UTF-8 byte order mark.
  if (!lines.empty() && lines[0].rfind("\xEF\xBB\xBF", 0) == 0) lines[0].erase(0, 3);
  auto first = std::find_if(lines.begin(), lines.end(),
                            [](const std::string& l) { return !trim(l).empty(); });
  require(first != lines.end(),
          path + ": empty file (expected a header: name, patient ID, grade (GlaS), ...)");

  const auto header = split_fields(*first);
  int col_name = -1, col_patient = -1, col_grade = -1, col_sub = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string h = lower(header[i]);
    if (h == "name")
      col_name = int(i);
    else if (h == "patient id")
      col_patient = int(i);
    else if (h == "grade (glas)")
      col_grade = int(i);
    else if (h.rfind("grade (sirinukunwattana", 0) == 0)
      col_sub = int(i);
  }
  require(col_name >= 0 && col_patient >= 0 && col_grade >= 0,
          path + ": header must name the columns 'name', 'patient ID' and 'grade (GlaS)'");
  const size_t needed = size_t(std::max({col_name, col_patient, col_grade})) + 1;

  std::vector<GradeRow> rows;
  std::set<std::string> names;
  const size_t header_line = size_t(first - lines.begin());
  for (size_t li = header_line + 1; li < lines.size(); ++li) {
    if (trim(lines[li]).empty()) continue;
    const std::string where = path + " line " + std::to_string(li + 1);
    const auto fields = split_fields(lines[li]);
    require(fields.size() >= needed, where + ": expected at least " + std::to_string(needed) +
                                         " comma-separated fields, found " +
                                         std::to_string(fields.size()));
    GradeRow row;
    row.name = fields[col_name];
    row.patient = fields[col_patient];
    require(!row.name.empty(), where + ": empty image name");
    require(!row.patient.empty(), where + ": empty patient ID");
    const std::string grade = lower(fields[col_grade]);
    if (grade == "benign")
      row.label = 0;
    else if (grade == "malignant")
      row.label = 1;
    else
      fail(where + ": grade '" + fields[col_grade] + "' is neither benign nor malignant");
    if (col_sub >= 0 && size_t(col_sub) < fields.size()) row.subgrade = fields[col_sub];
    for (size_t c = 0; c < header.size(); ++c)
      row.columns.emplace_back(header[c], c < fields.size() ? fields[c] : "");
    require(names.insert(row.name).second, where + ": image '" + row.name + "' is listed twice");
    rows.push_back(std::move(row));
  }
  require(!rows.empty(), path + ": no image rows after the header");
  return rows;
}

const std::string* GradeRow::column(const std::string& header) const {
  for (const auto& [name, value] : columns)
    if (lower(name) == lower(header)) return &value;
  return nullptr;
}

std::vector<GradeRow> read_grade_csv(const std::string& path) {
  require(std::filesystem::is_regular_file(path),
          path + ": not found (a GlaS folder needs Grade.csv)");
  return parse_grade_csv(read_file(path, size_t(64) << 20), path);  // GlaS's is 5 KB
}

std::string format_grade_csv(const std::vector<GradeRow>& rows) {
  std::string out = "name,patient ID,grade (GlaS),grade (Sirinukunwattana et al. 2015)\r\n";
  for (const auto& r : rows)
    out += r.name + "," + r.patient + ", " + (r.label ? "malignant" : "benign") + ", " +
           r.subgrade + "\r\n";
  return out;
}

}  // namespace histocnn
