// A class-folder dataset's patients.csv (data/image_folders.h): which
// patient each image comes from, so patient-grouped folds keep a patient's
// tiles on one side.
//   image,patient
//   TUM/TUM-AAAFLCLY.tif,TCGA-AA-3512
// Columns found by header (any order and case, others ignored); image is the
// file's path under the dataset folder, as `find` prints it. The CSV dialect
// is data/csv_text.h's.
#pragma once

#include <map>
#include <string>

namespace histocnn {

// image path (normalised, '/'-separated) -> patient. Throws naming `path`
// and the line for a missing column, a short or empty row, or an image
// listed with two patients.
std::map<std::string, std::string> parse_patients_csv(const std::string& content,
                                                      const std::string& path);

}  // namespace histocnn
