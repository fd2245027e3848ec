// The rows of a slide's tiles.csv as the slide tests read them: where each
// tile lies (level-0 pixels), its P(malignant) and its focus.
#pragma once

#include <sstream>
#include <string>
#include <vector>

#include "core/atomic_file.h"

namespace histocnn::testing {

struct TileRow {
  double x, y, width, p, focus;
};

inline std::vector<TileRow> read_tile_rows(const std::string& csv) {
  std::vector<TileRow> rows;
  std::stringstream in(read_file(csv));
  std::string line;
  std::getline(in, line);  // header
  while (std::getline(in, line)) {
    std::vector<double> v;
    std::stringstream fields(line);
    for (std::string f; std::getline(fields, f, ',');) v.push_back(std::stod(f));
    rows.push_back({v.at(0), v.at(1), v.at(2), v.at(9), v.at(8)});
  }
  return rows;
}

}  // namespace histocnn::testing
