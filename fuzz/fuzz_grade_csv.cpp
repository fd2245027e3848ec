// libFuzzer target: Grade.csv parsing. A histocnn::Error is the right answer
// to bad input; anything else (a crash, another exception, a sanitizer
// report) is a bug.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "data/grade_csv.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const auto rows = histocnn::parse_grade_csv(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz/Grade.csv");
    // What parses must format and parse back to the same rows.
    const auto again = histocnn::parse_grade_csv(histocnn::format_grade_csv(rows), "round trip");
    if (again.size() != rows.size()) __builtin_trap();
  } catch (const histocnn::Error&) {
  }
  return 0;
}
