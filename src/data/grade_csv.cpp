#include "data/grade_csv.h"

#include <algorithm>
#include <filesystem>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/csv_text.h"

namespace histocnn {
std::vector<GradeRow> parse_grade_csv(const std::string& content, const std::string& path) {
  const std::vector<std::string> lines = csv_lines(content);
  auto first = std::find_if(lines.begin(), lines.end(),
                            [](const std::string& l) { return !csv_trim(l).empty(); });
  require(first != lines.end(),
          path + ": empty file (expected a header: name, patient ID, grade (GlaS), ...)");

  const auto header = csv_fields(*first);
  int col_name = -1, col_patient = -1, col_grade = -1, col_sub = -1;
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string h = ascii_lower(header[i]);
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
    if (csv_trim(lines[li]).empty()) continue;
    const std::string where = path + " line " + std::to_string(li + 1);
    const auto fields = csv_fields(lines[li]);
    require(fields.size() >= needed, where + ": expected at least " + std::to_string(needed) +
                                         " comma-separated fields, found " +
                                         std::to_string(fields.size()));
    GradeRow row;
    row.name = fields[col_name];
    row.patient = fields[col_patient];
    require(!row.name.empty(), where + ": empty image name");
    require(!row.patient.empty(), where + ": empty patient ID");
    const std::string grade = ascii_lower(fields[col_grade]);
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
    if (ascii_lower(name) == ascii_lower(header)) return &value;
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
