#include "data/slide_labels.h"

#include <algorithm>
#include <filesystem>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/csv_text.h"
#include "data/slide.h"
#include "data/tcga_barcode.h"

namespace histocnn {

int slide_label_value(const std::string& word) {
  const std::string w = ascii_lower(csv_trim(word));
  if (w == "benign" || w == "0" || w == "negative" || w == "normal") return 0;
  if (w == "malignant" || w == "1" || w == "positive" || w == "tumor" || w == "tumour") return 1;
  return -1;
}

namespace {

struct Columns {
  int slide = -1, label = -1, patient = -1;
};

Columns find_columns(const std::vector<std::string>& header, const std::string& path) {
  Columns c;
  for (size_t i = 0; i < header.size(); ++i) {
    const std::string h = ascii_lower(header[i]);
    if (h == "slide") c.slide = int(i);
    if (h == "label") c.label = int(i);
    if (h == "patient") c.patient = int(i);
  }
  require(c.slide >= 0 && c.label >= 0,
          path +
              ": the header must name the columns 'slide' and 'label' (and optionally "
              "'patient'), e.g. slide,label,patient");
  return c;
}

// The names a row may give a slide file: as given, its file name, its file
// name without the extension (a DICOM series folder's whole name), its slide
// name (a DICOM slide's barcode), and the TCGA barcode that begins a GDC
// file name (<barcode>.<file UUID>.svs: TCGA's tables name the barcode).
std::vector<std::string> names_of(const std::string& slide_path) {
  const std::string stem = slide_file_name(slide_path);
  std::vector<std::string> names = {slide_path,
                                    std::filesystem::path(slide_path).filename().string(), stem,
                                    slide_name(slide_path)};
  if (tcga_sample_of(stem)) names.push_back(stem.substr(0, stem.find('.')));
  return names;
}

}  // namespace

SlideLabels SlideLabels::parse(const std::string& content, const std::string& path) {
  const std::vector<std::string> lines = csv_lines(content);
  size_t at = 0;
  while (at < lines.size() && csv_trim(lines[at]).empty()) ++at;
  require(at < lines.size(), path + ": empty file (expected a header: slide,label[,patient])");
  const Columns columns = find_columns(csv_fields(lines[at]), path);
  SlideLabels labels;
  labels.path_ = path;
  labels.has_patients_ = columns.patient >= 0;
  for (size_t li = at + 1; li < lines.size(); ++li) {
    if (csv_trim(lines[li]).empty()) continue;
    const std::string where = path + " line " + std::to_string(li + 1);
    const auto fields = csv_fields(lines[li]);
    auto field = [&](int column) { return column < int(fields.size()) ? fields[column] : ""; };
    const std::string slide = field(columns.slide);
    require(!slide.empty(), where + ": no slide name");
    SlideLabel row;
    row.line = int(li + 1);
    row.label = slide_label_value(field(columns.label));
    require(row.label >= 0, where + ": label '" + field(columns.label) +
                                "' is not benign or malignant (nor 0/1, negative/positive, "
                                "normal/tumor)");
    if (columns.patient >= 0) {
      row.patient = field(columns.patient);
      require(!row.patient.empty(), where + ": no patient (the column is there: fill it in)");
    }
    const auto [it, fresh] = labels.rows_.emplace(slide, row);
    require(fresh, where + ": slide '" + slide + "' is listed twice (also line " +
                       std::to_string(it->second.line) + ")");
  }
  require(!labels.rows_.empty(), path + ": no slide rows after the header");
  return labels;
}

SlideLabels SlideLabels::read(const std::string& path) {
  std::error_code ec;
  require(std::filesystem::is_regular_file(path, ec),
          "--slide-labels " + path +
              (std::filesystem::exists(path, ec) ? ": not a regular file" : ": no such file"));
  return parse(read_file(path, size_t(64) << 20), path);
}

namespace {

// "a, b, c" or "a, b, c, ...": enough to find them, in one line.
std::string some_of(const std::vector<std::string>& names) {
  std::string text;
  for (size_t i = 0; i < names.size() && i < 3; ++i) text += (i ? ", " : "") + names[i];
  if (names.size() > 3) text += ", ...";
  return text;
}

// SlideLabels::caveat() for TCGA samples and their labels: "" unless both
// classes are there, every benign slide is a frozen section and every
// malignant one a diagnostic (DX) slide.
std::string preparation_caveat(const std::vector<TcgaSample>& samples,
                               const std::vector<int>& labels) {
  int benign = 0, malignant = 0;
  for (size_t i = 0; i < samples.size(); ++i) {
    const bool frozen = tcga_frozen_section(samples[i].slide_kind);
    if (labels[i] == 0 && !frozen) return "";
    if (labels[i] == 1 && samples[i].slide_kind != "DX") return "";
    (labels[i] ? malignant : benign)++;
  }
  if (benign == 0 || malignant == 0) return "";
  return "every benign slide is a frozen section (TS/BS/MS) and every malignant one a "
         "diagnostic FFPE slide (DX): the scores may tell the preparations apart rather than "
         "the tissue (frozen tumour sections, 01A-..-TS1, against the normal ones compare like "
         "with like)";
}

std::optional<TcgaSample> tcga_sample_of_slide(const std::string& slide_path) {
  if (auto sample = tcga_sample_of(slide_name(slide_path))) return sample;
  return tcga_sample_of(slide_file_name(slide_path));
}

}  // namespace

SlideLabels SlideLabels::from_tcga_barcodes(const std::vector<std::string>& slide_paths) {
  SlideLabels labels;
  labels.path_ = "--tcga-labels";
  labels.has_patients_ = true;
  std::vector<std::string> unnamed, neither;
  std::vector<TcgaSample> samples;
  std::vector<int> sample_labels;
  for (size_t i = 0; i < slide_paths.size(); ++i) {
    const std::string& slide = slide_paths[i];
    const std::optional<TcgaSample> sample = tcga_sample_of_slide(slide);
    if (!sample) {
      unnamed.push_back(slide_name(slide));
      continue;
    }
    const int label = tcga_sample_label(sample->sample_type);
    if (label < 0) {
      neither.push_back(slide_name(slide) + " (type " + std::to_string(sample->sample_type) + ")");
      continue;
    }
    labels.rows_[slide] = {label, sample->participant, int(i + 1)};
    samples.push_back(*sample);
    sample_labels.push_back(label);
  }
  require(unnamed.empty(), "--tcga-labels: no TCGA barcode (TCGA-XX-XXXX-NN...) at the start of " +
                               some_of(unnamed) + "; name the labels in --slide-labels instead");
  require(neither.empty(),
          "--tcga-labels: a sample type that is neither tumour (01-09, 40) nor "
          "normal (10-19): " +
              some_of(neither));
  require(!labels.rows_.empty(), "--tcga-labels: no slides");
  labels.caveat_ = preparation_caveat(samples, sample_labels);
  return labels;
}

const SlideLabel* SlideLabels::find(const std::string& slide_path) const {
  for (const std::string& key : names_of(slide_path)) {
    const auto it = rows_.find(key);
    if (it != rows_.end()) return &it->second;
  }
  return nullptr;
}

void SlideLabels::require_every(const std::vector<std::string>& slide_paths) const {
  std::vector<std::string> missing;
  for (const auto& s : slide_paths) {
    if (!find(s)) missing.push_back(std::filesystem::path(s).filename().string());
    std::vector<int> lines;  // rows naming this slide in different ways ("a.svs" and "a")
    for (const std::string& key : names_of(s)) {
      const auto it = rows_.find(key);
      if (it != rows_.end() &&
          std::find(lines.begin(), lines.end(), it->second.line) == lines.end())
        lines.push_back(it->second.line);
    }
    if (lines.size() > 1)
      fail(path_ + ": lines " + std::to_string(lines[0]) + " and " + std::to_string(lines[1]) +
           " both name slide " + s + "; keep one");
  }
  if (missing.empty()) return;
  const std::string names = some_of(missing);
  fail("--slide-labels " + path_ + ": no row for " +
       (missing.size() == 1 ? "slide " : std::to_string(missing.size()) + " slides: ") + names +
       " (a row names a slide as given, by its file name, without the extension, or by the "
       "barcode of a DICOM slide or a GDC file)");
}

}  // namespace histocnn
