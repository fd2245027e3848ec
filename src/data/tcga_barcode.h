// TCGA barcodes (the GDC's "TCGA Barcode" page): a slide's name says whose
// tissue it is and what kind, e.g. TCGA-AA-3512-01Z-00-DX1
//
//   TCGA-AA-3512  the participant (project, tissue source site, patient)
//   01            the sample type: 01-09 tumour (01 primary solid tumour,
//                 06 metastatic, ...), 10-19 normal (11 solid tissue
//                 normal), 20-29 controls, 40 recurrent blood-derived
//                 cancer, 50 cell lines, 60-61 xenografts
//   Z             the vial; then the portion and the slide (DX1: a
//                 diagnostic FFPE slide, TS1/BS1: a frozen section's top or
//                 bottom)
//
// The GDC names slide files <barcode>.<UUID>.svs and the Imaging Data
// Commons records the barcode as a DICOM slide's Container Identifier, so a
// TCGA cohort downloaded either way carries its labels and patients in its
// names (`--tcga-labels`).
#pragma once

#include <optional>
#include <string>

namespace histocnn {

struct TcgaSample {
  std::string participant;  // TCGA-AA-3512: the patient
  int sample_type = 0;      // 1..99
  // The slide's kind when the name goes on to one ("-00-DX1"): "DX" a
  // diagnostic FFPE slide, "TS"/"BS"/"MS" a frozen section (top, bottom,
  // middle); "" when the name stops before it.
  std::string slide_kind;
};

// The barcode at the start of `name` (what follows it, such as
// "-01Z-00-DX1.4F4E...", is not checked); nullopt when `name` does not begin
// with TCGA-XX-XXXX-NN (letters and digits where X, digits where N).
std::optional<TcgaSample> tcga_sample_of(const std::string& name);

// 1 for a tumour sample type, 0 for a normal one, -1 for the others
// (controls, cell lines, xenografts, unassigned codes).
int tcga_sample_label(int sample_type);

// Whether a slide kind is a frozen section (TS, BS, MS).
bool tcga_frozen_section(const std::string& slide_kind);

}  // namespace histocnn
