// Whole-slide images: pyramidal files of up to ~150,000 pixels a side, read
// region by region, never whole.
//
// Contract of every Slide:
//   levels()[0] is full resolution; each further level is smaller, with its
//   downsample (level-0 pixels per level pixel) increasing.
//   read_region(level, x, y, w, h) returns w x h RGB pixels of `level` whose
//   top-left corner is (x, y) in LEVEL-0 coordinates (OpenSlide's convention);
//   pixels outside the slide or transparent read as white (glass). It is safe
//   to call from several threads at once on one Slide.
//   mpp_x/mpp_y: microns per level-0 pixel; 0 when the file does not say and
//   no override was given.
// Readers: OpenSlide (Aperio .svs, Hamamatsu .ndpi/.vms, MIRAX .mrxs, Leica
// .scn, Philips TIFF, Ventana, Sakura, generic tiled TIFF; OME-TIFF's
// pyramid in SubIFDs through data/tiff_slide.h), DICOM whole-slide
// series (data/dicom_slide.h) and, for what
// OpenSlide does not take, a plain image (PNG, JPEG, BMP, strip TIFF) held as
// a one-level slide. Another reader is one more subclass.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "data/image.h"

namespace histocnn {

struct SlideLevel {
  int64_t width = 0, height = 0;
  double downsample = 1;  // level-0 pixels per pixel of this level
};

class Slide {
 public:
  virtual ~Slide() = default;
  virtual Image read_region(int level, int64_t x, int64_t y, int width, int height) const = 0;

  const std::string& path() const { return path_; }
  // "aperio", "generic-tiff", "ome-tiff", "dicom", "image"...
  const std::string& format() const { return format_; }
  // What decodes it: "openslide", "direct-tiff" (data/tiff_slide.h), "dicom"
  // (data/dicom_slide.h) or "image".
  const std::string& reader() const { return reader_; }
  // Why the direct TIFF reader left this pyramidal TIFF to OpenSlide, or
  // which SubIFDs it did not take for levels ("" when neither;
  // summary.json's reader_note).
  const std::string& reader_note() const { return reader_note_; }
  void set_reader_note(std::string note) { reader_note_ = std::move(note); }
  const std::vector<SlideLevel>& levels() const { return levels_; }
  int64_t width() const { return levels_.front().width; }
  int64_t height() const { return levels_.front().height; }
  double mpp_x() const { return mpp_x_; }
  double mpp_y() const { return mpp_y_; }
  // The coarsest level whose downsample is at most `downsample` (1% slack,
  // as pyramid levels of odd sizes have downsamples such as 4.0026).
  int level_for_downsample(double downsample) const;

 protected:
  std::string path_, format_, reader_, reader_note_;
  std::vector<SlideLevel> levels_;
  double mpp_x_ = 0, mpp_y_ = 0;
};

// Throws naming `path` unless 0 <= level < levels and the w x h region is
// non-empty and at most 64 megapixels (a forged request cannot ask for GBs).
void require_slide_region(const std::string& path, int level, int levels, int w, int h);

// How a pyramidal TIFF (generic-tiff, aperio) is read: automatic = tiles
// decoded directly where a region starts on a whole level pixel
// (data/tiff_slide.h), OpenSlide elsewhere; openslide = OpenSlide always.
enum class SlideReader { automatic, openslide };

// Opens `path` as a DICOM series (a folder, or a DICOM file not named
// .tif/.tiff), with OpenSlide, or as a plain image when OpenSlide does not
// recognise it. mpp > 0 overrides the microns per pixel the file records.
// Errors (missing, not a slide nor an image, corrupt) name the file.
std::unique_ptr<Slide> open_slide(const std::string& path, double mpp = 0,
                                  SlideReader reader = SlideReader::automatic);

// Whether `path` is a whole-slide image rather than an image to hold and
// crop (what predict and the training data take): a slide vendor's file
// (.svs, .ndpi, .mrxs, .scn, .bif, .vms, .vmu, .svslide), a DICOM file or
// series folder, or a TIFF over 8192 pixels a side with a pyramid.
bool looks_like_whole_slide(const std::string& path);

// Throws "<path>: no such slide file", "<path>: not a regular file", or,
// for a folder, unless it holds exactly one DICOM whole-slide series (a
// DICOM slide, data/dicom_slide.h), why not.
void require_slide_file(const std::string& path);

// The name a slide goes by (its output folder, its annotation file, its
// tiles' names, its row in a labels file): a DICOM slide's Container
// Identifier (its barcode, as TCGA's slides in the Imaging Data Commons
// record it; characters other than letters, digits, '.', '_', '-' become
// '-'), else slide_file_name.
std::string slide_name(const std::string& path);
// A file's name without its extension (".ome.tif" and ".ome.tiff" count as
// one); a folder's whole name (DICOM series folders are often named by UIDs
// full of dots).
std::string slide_file_name(const std::string& path);
// Whether a file is named as an OME-TIFF (".ome.tif", ".ome.tiff", any case).
bool has_ome_tiff_name(const std::string& path);

// Throws "<b>: the same DICOM series as <a>" when two inputs are one series
// (its folder and one of its files, or two of its files): scored twice
// under two names, it would count twice in a cohort's numbers.
void require_distinct_series(const std::vector<std::string>& slides);

// A slide's size on disk (what tells a re-run that the slide changed): the
// file's bytes, or the total of a DICOM series folder's files.
uint64_t slide_bytes(const std::string& path);

// The slides in `folder` and the folders below it, sorted by path: the files
// OpenSlide recognises (by their content, not their names: a MIRAX .mrxs and
// not its data folder, a tiled TIFF and not a heatmap PNG), and the DICOM
// whole-slide series (a folder that is one series stands for it, else one
// file of each). So the trees the public archives download make a cohort as
// they are: the GDC's one folder per file (<file UUID>/TCGA-....svs) and the
// Imaging Data Commons' collection/patient/study/SM_<series UID>/. Links to
// folders are followed, a folder reached twice is read once, hidden folders
// are skipped. Throws naming the folder when it holds no slide, or one
// below it cannot be listed; plain images are named one by one instead.
std::vector<std::string> slides_in_folder(const std::string& folder);

// Microns per level-0 pixel from a slide's properties: openslide.mpp-x/y,
// else the TIFF resolution tags (tiff.XResolution with tiff.ResolutionUnit
// centimeter or inch). {0, 0} when neither says. (An OME-TIFF's OME-XML
// comes first, data/ome_xml.h: the OpenSlide reader reads it.)
std::pair<double, double> mpp_from_properties(const std::map<std::string, std::string>& props);

// The whole slide in at most max_side pixels on its long side, read in
// bounded pieces from the finest level not finer than needed (memory: the
// thumbnail plus one piece, whatever the slide's size).
struct Thumbnail {
  Image image;
  double downsample_x = 1, downsample_y = 1;  // level-0 pixels per thumbnail pixel
};
Thumbnail read_thumbnail(const Slide& slide, int max_side);

}  // namespace histocnn
