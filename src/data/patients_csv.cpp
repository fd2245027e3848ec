#include "data/patients_csv.h"

#include <algorithm>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "data/csv_text.h"

namespace histocnn {

std::map<std::string, std::string> parse_patients_csv(const std::string& content,
                                                      const std::string& path) {
  std::map<std::string, std::string> patients;
  const std::vector<std::string> lines = csv_lines(content);
  require(!lines.empty(), path + ": empty (needs columns image, patient)");
  const std::vector<std::string> header = csv_fields(lines[0]);
  size_t image_column = header.size(), patient_column = header.size();
  for (size_t c = 0; c < header.size(); ++c) {
    const std::string name = ascii_lower(csv_trim(header[c]));
    if (name == "image") image_column = c;
    if (name == "patient") patient_column = c;
  }
  require(image_column < header.size() && patient_column < header.size(),
          path + ": the header needs columns image and patient");
  for (size_t n = 1; n < lines.size(); ++n) {
    if (csv_trim(lines[n]).empty()) continue;
    const std::vector<std::string> fields = csv_fields(lines[n]);
    const std::string where = path + ", line " + std::to_string(n + 1);
    require(fields.size() > std::max(image_column, patient_column),
            where + ": fewer fields than the header");
    const std::string image =
        std::filesystem::path(csv_trim(fields[image_column])).lexically_normal().generic_string();
    const std::string patient = csv_trim(fields[patient_column]);
    require(!image.empty() && !patient.empty(), where + ": an empty image or patient");
    const auto [it, added] = patients.emplace(image, patient);
    require(added || it->second == patient, where + ": " + image +
                                                " is listed with two patients (" + it->second +
                                                ", " + patient + ")");
  }
  return patients;
}

}  // namespace histocnn
