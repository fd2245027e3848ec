// DICOM whole-slide images (PS3.3 "VL Whole Slide Microscopy Image"): the
// format of the NCI Imaging Data Commons (TCGA, CPTAC and others converted to
// DICOM) and of scanners that export it. OpenSlide reads DICOM only from 4.0
// on; Debian 12 has 3.4, so this reader is ours: dcmtk parses the files,
// libjpeg-turbo and OpenJPEG decode the frames (data/frame_codecs.h), the
// frame layout is data/dicom_layout.h.
//
// A slide is a series: several files (one per pyramid level, or a level
// split over several: a concatenation) sharing a Series Instance UID, in one
// folder. As in OpenSlide, any one of its files opens the whole series from
// the files beside it; so does the folder when it holds one series.
// Levels are the instances whose Image Type is ORIGINAL or DERIVED \ PRIMARY
// \ VOLUME \ NONE or RESAMPLED (labels, overviews and thumbnails are not
// levels), sorted by width. Frames: uncompressed RGB, baseline JPEG
// (YBR_FULL_422 or RGB) or JPEG 2000 (RGB, YBR_ICT, YBR_RCT); 8 bits, one
// focal plane; TILED_FULL or TILED_SPARSE (tiles without a frame are glass).
// Microns per pixel from the level-0 Pixel Spacing (mm, row then column).
//
// Contract: the Slide contract (data/slide.h). A region at a coarser level
// starts at the level pixel nearest to (x, y) / downsample (with the usual
// whole downsamples, exactly where asked). read_region is thread-safe:
// frames are read from a file under its lock, decoded outside it, and kept
// in a tile cache. Errors name the file and what is wrong.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "data/slide.h"

namespace histocnn {

// Whether `path` is a DICOM Part 10 file ("DICM" at byte 128).
bool is_dicom_file(const std::string& path);

// The Series Instance UID of a whole-slide DICOM file, or of the one series
// a folder holds; "" for anything else (reads headers only).
std::string dicom_series_uid(const std::string& path);

// The Container Identifier (the slide's barcode, such as TCGA's
// TCGA-AA-3512-01Z-00-DX1) of a whole-slide DICOM file or of the one series
// a folder holds; "" when it records none or `path` is neither.
std::string dicom_container_id(const std::string& path);

// One DICOM whole-slide series among the files directly in a folder.
struct DicomSeries {
  std::string uid;                 // Series Instance UID
  std::string first_file;          // its first file by name (what opens it)
  std::vector<std::string> files;  // all its files, by name
};
// The whole-slide series among `files` (sorted by name; all in one folder),
// by first file; reads headers only.
std::vector<DicomSeries> dicom_series_among(const std::vector<std::string>& files);
// The whole-slide series in `folder` (not its subfolders), by first file.
std::vector<DicomSeries> dicom_series_in_folder(const std::string& folder);

// Opens the series of `path` (one of its files, or a folder holding exactly
// one series). mpp > 0 overrides the Pixel Spacing.
std::unique_ptr<Slide> open_dicom_slide(const std::string& path, double mpp = 0,
                                        size_t cache_bytes = size_t(64) << 20);

}  // namespace histocnn
