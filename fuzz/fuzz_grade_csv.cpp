// libFuzzer target: the training data's CSV files, Grade.csv and a class
// folder's patients.csv, from the same bytes. A histocnn::Error is the right
// answer to bad input; anything else (a crash, another exception, a
// sanitizer report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/grade_csv.h"
#include "data/patients_csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string content(reinterpret_cast<const char*>(data), size);
  try {
    const auto rows = histocnn::parse_grade_csv(content, "fuzz/Grade.csv");
    // What parses must format and parse back to the same rows.
    const auto again = histocnn::parse_grade_csv(histocnn::format_grade_csv(rows), "round trip");
    if (again.size() != rows.size()) __builtin_trap();
  } catch (const histocnn::Error&) {
  }
  try {
    for (const auto& [image, patient] : histocnn::parse_patients_csv(content, "patients.csv"))
      if (image.empty() || patient.empty()) __builtin_trap();  // refused, never kept
  } catch (const histocnn::Error&) {
  }
  return 0;
}
