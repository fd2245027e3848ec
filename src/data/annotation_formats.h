// What the annotation readers share (data/annotations.h): how a shape's
// class names decide what it is, and how its rings become a region. Each
// format has its own reader: annotations_geojson.cpp (QuPath) and
// annotations_xml.cpp (ASAP, Aperio ImageScope).
#pragma once

#include <string>
#include <vector>

#include "data/annotations.h"

namespace histocnn::annotation_formats {

enum class Role { malignant, excluded, other };

// The malignant classes a user asked for, and the fixed exclusion classes.
class ClassList {
 public:
  explicit ClassList(const std::vector<std::string>& malignant);
  // excluded when any name is an exclusion class (exclusion, _2); malignant
  // when any name is listed (or the list holds "any"); other otherwise.
  // Names compare without regard to case.
  Role role_of(const std::vector<std::string>& names) const;

 private:
  std::vector<std::string> malignant_;  // lower case
  bool any_ = false;
};

// The region of an outer ring and its holes; throws naming `where` for a
// ring of fewer than 3 points.
Region region_of(std::vector<Ring> rings, const std::string& where);

// Stores `region` by its role (malignant or excluded).
void add_region(Annotations& a, Role role, Region region);

Annotations parse_geojson(const std::string& content, const std::string& path,
                          const ClassList& classes);
// ASAP (<ASAP_Annotations>) or Aperio ImageScope (<Annotations>) XML.
Annotations parse_xml(const std::string& content, const std::string& path,
                      const ClassList& classes);

}  // namespace histocnn::annotation_formats
