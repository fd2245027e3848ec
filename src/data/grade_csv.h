// The GlaS release's Grade.csv:
//   name, patient ID, grade (GlaS), grade (Sirinukunwattana et al. 2015)
//   train_1,2, malignant, moderately differentiated
// Values may carry leading/trailing spaces; lines may end in CR, LF or CRLF;
// the header's column order is not assumed. "grade (GlaS)" must be benign or
// malignant (any case).
#pragma once

#include <string>
#include <utility>
#include <vector>

namespace histocnn {

struct GradeRow {
  std::string name;      // image name without extension, e.g. "train_1"
  std::string patient;   // patient ID as written
  int label;             // 0 benign, 1 malignant
  std::string subgrade;  // Sirinukunwattana et al. grade, free text (may be empty)
  // Every column, (header as written, value), for --labels COLUMN.
  std::vector<std::pair<std::string, std::string>> columns;
  // The value under `header` (compared without case); nullptr when absent.
  const std::string* column(const std::string& header) const;
};

// Parses Grade.csv content; `path` is only used in error messages.
std::vector<GradeRow> parse_grade_csv(const std::string& content, const std::string& path);
std::vector<GradeRow> read_grade_csv(const std::string& path);
std::string format_grade_csv(const std::vector<GradeRow>& rows);

}  // namespace histocnn
