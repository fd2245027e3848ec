// A cohort's slide labels, for `histocnn slide --slide-labels FILE` (or
// `--tcga-labels`: from the slides' TCGA barcodes, below): a CSV
// whose header names the columns `slide` and `label` (any case, any order,
// other columns ignored) and optionally `patient`:
//
//   slide,label,patient
//   case01.svs,malignant,P1
//   case02,benign,P1
//
// A label is benign or malignant; 0/1, negative/positive and normal/tumo(u)r
// (CAMELYON's words) are read as the same. A slide file matches the row that
// names it as given on the command line, by its file name, by its file
// name without the extension, by its slide name (data/slide.h: a DICOM
// slide's barcode; the name of its output folder), or by the TCGA barcode a
// GDC file name begins with (TCGA-AA-3512-01Z-00-DX1.<UUID>.svs). Patients, when
// given, are the slide-level bootstrap's units: slides of one patient are
// drawn together.
#pragma once

#include <map>
#include <string>
#include <vector>

namespace histocnn {

struct SlideLabel {
  int label = 0;        // 0 benign, 1 malignant
  std::string patient;  // "" when the file has no patient column
  int line = 0;         // where it was read (1-based), for messages
};

class SlideLabels {
 public:
  // Throws naming `path` (and the line) for a missing column, an empty slide
  // name, a label that is not one of the words above, or a slide listed twice.
  static SlideLabels parse(const std::string& content, const std::string& path);
  static SlideLabels read(const std::string& path);
  // Each slide's label and patient from the TCGA barcode its name begins
  // with (data/tcga_barcode.h: sample types 01-09 and 40 malignant, 10-19
  // benign; the participant is the patient), tried on its slide name (a
  // DICOM slide's barcode) and then its file name. Throws, naming up to
  // three slides, when a name holds no barcode or another sample type.
  static SlideLabels from_tcga_barcodes(const std::vector<std::string>& slide_paths);

  // The row of the slide file `slide_path`; nullptr when no row names it.
  const SlideLabel* find(const std::string& slide_path) const;
  // Throws, naming the file, when any of `slide_paths` has no row, or two
  // rows that name it in different ways ("a.svs" and "a").
  void require_every(const std::vector<std::string>& slide_paths) const;
  bool has_patients() const { return has_patients_; }
  // What the user must know about these labels, "" when nothing: from TCGA
  // barcodes, that every benign slide is a frozen section and every
  // malignant one a diagnostic FFPE slide (as in most TCGA projects), so a
  // classifier may tell the preparations apart instead of the tissue.
  const std::string& caveat() const { return caveat_; }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
  std::map<std::string, SlideLabel> rows_;  // by the slide column's value
  bool has_patients_ = false;
  std::string caveat_;
};

// 0 or 1 for one of the label words above (any case); -1 for anything else.
int slide_label_value(const std::string& word);

}  // namespace histocnn
