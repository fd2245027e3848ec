#include "data/tcga_barcode.h"

#include <cctype>

namespace histocnn {
namespace {

bool all_of_kind(const std::string& text, size_t from, size_t count, int (*kind)(int)) {
  for (size_t i = from; i < from + count; ++i)
    if (!kind(static_cast<unsigned char>(text[i]))) return false;
  return true;
}

// Upper-case letters and digits, as the GDC writes barcodes.
int is_code_char(int c) {
  return std::isdigit(c) || std::isupper(c);
}

}  // namespace

std::optional<TcgaSample> tcga_sample_of(const std::string& name) {
  // TCGA-AA-3512-01: 15 characters, dashes at 4, 7 and 12.
  if (name.size() < 15 || name.compare(0, 5, "TCGA-") != 0 || name[7] != '-' || name[12] != '-')
    return std::nullopt;
  if (!all_of_kind(name, 5, 2, is_code_char) || !all_of_kind(name, 8, 4, is_code_char) ||
      !all_of_kind(name, 13, 2, [](int c) { return std::isdigit(c); }))
    return std::nullopt;
  // A sample field is two digits and a vial letter ("01Z"), or the two
  // digits alone at the end of the name or before a separator.
  if (name.size() > 15 && std::isdigit(static_cast<unsigned char>(name[15]))) return std::nullopt;
  const int type = (name[13] - '0') * 10 + (name[14] - '0');
  if (type == 0) return std::nullopt;
  TcgaSample sample{name.substr(0, 12), type, ""};
  // ...01Z-00-DX1: the vial, the portion, the slide.
  if (name.size() >= 22 && std::isupper(static_cast<unsigned char>(name[15])) && name[16] == '-' &&
      all_of_kind(name, 17, 2, [](int c) { return std::isdigit(c); }) && name[19] == '-' &&
      all_of_kind(name, 20, 2, [](int c) { return std::isupper(c); }))
    sample.slide_kind = name.substr(20, 2);
  return sample;
}

bool tcga_frozen_section(const std::string& slide_kind) {
  return slide_kind == "TS" || slide_kind == "BS" || slide_kind == "MS";
}

int tcga_sample_label(int sample_type) {
  if ((sample_type >= 1 && sample_type <= 9) || sample_type == 40) return 1;
  if (sample_type >= 10 && sample_type <= 19) return 0;
  return -1;
}

}  // namespace histocnn
