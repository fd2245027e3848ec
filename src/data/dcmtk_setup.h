// dcmtk, made ready once per process before the DICOM reader or writer
// uses it (data/dicom_slide.h, data/dicom_writer.h):
//   * its log goes quiet (it prints warnings to stderr; our errors are one
//     line each, thrown);
//   * its data dictionary (tag names and value representations, which the
//     writer and implicit-VR files need) is loaded from where dcmtk looks
//     (DCMDICTPATH, else Debian's /usr/share/libdcmtk17/dicom.dic) or,
//     failing that, from the relocatable package's share/dicom.dic beside
//     its bin/ and lib/ (scripts/package.sh), so a node without dcmtk
//     installed reads and writes DICOM alike.
#pragma once

namespace histocnn {

void prepare_dcmtk();

}  // namespace histocnn
