#include "data/annotations.h"

#include <algorithm>
#include <cctype>
#include <filesystem>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/annotation_formats.h"
#include "data/csv_text.h"

namespace histocnn {
namespace annotation_formats {

ClassList::ClassList(const std::vector<std::string>& malignant) {
  for (const std::string& c : malignant) {
    malignant_.push_back(ascii_lower(c));
    any_ = any_ || malignant_.back() == "any";
  }
}

Role ClassList::role_of(const std::vector<std::string>& names) const {
  bool listed = false;
  for (const std::string& name : names) {
    const std::string n = ascii_lower(name);
    if (n == "exclusion" || n == "_2") return Role::excluded;
    listed = listed || std::find(malignant_.begin(), malignant_.end(), n) != malignant_.end();
  }
  return any_ || listed ? Role::malignant : Role::other;
}

Region region_of(std::vector<Ring> rings, const std::string& where) {
  require(!rings.empty(), where + ": a polygon has no rings");
  for (const Ring& r : rings)
    require(r.x.size() >= 3 && r.x.size() == r.y.size(),
            where + ": a ring needs at least 3 [x, y] points");
  Region region;
  region.rings = std::move(rings);
  const Ring& outer = region.rings.front();
  region.min_x = *std::min_element(outer.x.begin(), outer.x.end());
  region.max_x = *std::max_element(outer.x.begin(), outer.x.end());
  region.min_y = *std::min_element(outer.y.begin(), outer.y.end());
  region.max_y = *std::max_element(outer.y.begin(), outer.y.end());
  return region;
}

void add_region(Annotations& a, Role role, Region region) {
  require(role != Role::other, "add_region: a region that is neither malignant nor excluded");
  (role == Role::malignant ? a.malignant : a.excluded).push_back(std::move(region));
}

}  // namespace annotation_formats

namespace {

// Even-odd crossing test of one ring.
bool inside(const Ring& r, double x, double y) {
  bool in = false;
  for (size_t i = 0, j = r.x.size() - 1; i < r.x.size(); j = i++)
    if ((r.y[i] > y) != (r.y[j] > y) &&
        x < (r.x[j] - r.x[i]) * (y - r.y[i]) / (r.y[j] - r.y[i]) + r.x[i])
      in = !in;
  return in;
}

bool in_any(const std::vector<Region>& regions, double x, double y) {
  for (const Region& r : regions)
    if (r.contains(x, y)) return true;
  return false;
}

// Whether the content is XML: its first character, past a UTF-8 byte-order
// mark and white space, is '<'.
bool looks_like_xml(const std::string& content) {
  size_t i = content.compare(0, 3, "\xEF\xBB\xBF") == 0 ? 3 : 0;
  while (i < content.size() && std::isspace(static_cast<unsigned char>(content[i]))) ++i;
  return i < content.size() && content[i] == '<';
}

}  // namespace

std::vector<std::string> default_annotation_classes() {
  return {"tumor",      "tumour",     "malignant", "carcinoma", "cancer",
          "metastases", "metastasis", "_0",        "_1"};
}

Annotations parse_annotations(const std::string& content, const std::string& path,
                              const std::vector<std::string>& classes) {
  const annotation_formats::ClassList list(classes);
  return looks_like_xml(content) ? annotation_formats::parse_xml(content, path, list)
                                 : annotation_formats::parse_geojson(content, path, list);
}

Annotations read_annotations(const std::string& path, const std::vector<std::string>& classes) {
  std::error_code ec;
  require(std::filesystem::is_regular_file(path, ec), path + ": no such annotation file");
  return parse_annotations(read_file(path, size_t(256) << 20), path, classes);
}

bool Region::contains(double x, double y) const {
  if (x < min_x || x > max_x || y < min_y || y > max_y) return false;
  bool in = false;  // inside the outer ring and not in a hole: odd rings around the point
  for (const Ring& ring : rings) in ^= inside(ring, x, y);
  return in;
}

bool Annotations::excluded_at(double x, double y) const {
  return in_any(excluded, x, y);
}

bool Annotations::malignant_at(double x, double y) const {
  return in_any(malignant, x, y) && !in_any(excluded, x, y);
}

double Annotations::malignant_fraction(double x, double y, double width, double height) const {
  constexpr int kSide = 8;
  int hits = 0;
  for (int j = 0; j < kSide; ++j)
    for (int i = 0; i < kSide; ++i)
      hits += malignant_at(x + (i + 0.5) * width / kSide, y + (j + 0.5) * height / kSide);
  return double(hits) / (kSide * kSide);
}

}  // namespace histocnn
