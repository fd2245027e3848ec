#include "data/dicom_slide.h"

#include <dcmtk/config/osconfig.h>  // dcmtk's own configuration comes first
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcfcache.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcmetinf.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcuid.h>
#include <dcmtk/dcmdata/dcxfer.h>

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <map>
#include <mutex>

#include "core/error.h"
#include "core/paths.h"
#include "data/dcmtk_setup.h"
#include "data/dicom_layout.h"
#include "data/frame_codecs.h"
#include "data/tile_cache.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;

constexpr const char* kWholeSlideClass = "1.2.840.10008.5.1.4.1.1.77.1.6";
// Values longer than this (the frames, the offset table) stay in the file
// until read: a slide of gigabytes is opened in megabytes.
constexpr Uint32 kLazyValueBytes = 4096;

std::string text(DcmItem* item, const DcmTagKey& tag, unsigned long position = 0) {
  OFString value;
  if (!item || item->findAndGetOFString(tag, value, position).bad()) return "";
  std::string s = value.c_str();
  while (!s.empty() && s.back() == ' ') s.pop_back();
  return s;
}

// A whole number, whatever its VR (US, UL, SL, IS); `fallback` when absent.
int64_t integer(DcmItem* item, const DcmTagKey& tag, int64_t fallback) {
  const std::string s = text(item, tag);
  if (s.empty()) return fallback;
  char* end = nullptr;
  const long long v = std::strtoll(s.c_str(), &end, 10);
  return end == s.c_str() ? fallback : int64_t(v);
}

DcmItem* first_item(DcmItem* item, const DcmTagKey& sequence) {
  DcmItem* found = nullptr;
  if (!item || item->findAndGetSequenceItem(sequence, found, 0).bad()) return nullptr;
  return found;
}

enum class Codec { native, jpeg, jpeg2000 };

// One file of the series that holds (part of) a pyramid level.
struct Instance {
  std::string path;
  std::unique_ptr<DcmFileFormat> file;
  std::string level_uid;  // the level's SOP Instance UID (its concatenation source's when split)
  Codec codec = Codec::native;
  JpegColours colours = JpegColours::ycbcr;
  FrameGrid grid;
  int64_t frames = 0;
  std::vector<int64_t> frame_of_tile;
  DcmPixelSequence* fragments = nullptr;  // encapsulated frames
  std::vector<FragmentRange> fragment_ranges;
  DcmElement* native = nullptr;  // uncompressed frames
  double spacing_x_mm = 0, spacing_y_mm = 0;
  std::mutex mutex;        // dcmtk reads one value at a time per file
  DcmFileCache open_file;  // the file kept open between frame reads (under the mutex)
};

// Whether the file is a pyramid level (not a label, overview or thumbnail).
bool is_level(DcmItem* data) {
  std::vector<std::string> type;
  for (unsigned long i = 0; i < 4; ++i) type.push_back(text(data, DCM_ImageType, i));
  return (type[0] == "ORIGINAL" || type[0] == "DERIVED") && type[1] == "PRIMARY" &&
         type[2] == "VOLUME" && (type[3] == "NONE" || type[3] == "RESAMPLED");
}

// The codec of a transfer syntax and photometric interpretation, or throws.
void choose_codec(Instance& in, const std::string& syntax, const std::string& photometric) {
  const std::string what = in.path + ": ";
  if (syntax == UID_LittleEndianExplicitTransferSyntax ||
      syntax == UID_LittleEndianImplicitTransferSyntax) {
    in.codec = Codec::native;
    require(photometric == "RGB", what + "uncompressed frames in " + photometric + " (RGB only)");
  } else if (syntax == UID_JPEGProcess1TransferSyntax) {
    in.codec = Codec::jpeg;
    require(photometric == "YBR_FULL_422" || photometric == "RGB",
            what + "JPEG frames in " + photometric + " (YBR_FULL_422 or RGB)");
    in.colours = photometric == "RGB" ? JpegColours::rgb : JpegColours::ycbcr;
  } else if (syntax == UID_JPEG2000LosslessOnlyTransferSyntax ||
             syntax == UID_JPEG2000TransferSyntax) {
    in.codec = Codec::jpeg2000;
    require(photometric == "RGB" || photometric == "YBR_ICT" || photometric == "YBR_RCT",
            what + "JPEG 2000 frames in " + photometric + " (RGB, YBR_ICT or YBR_RCT)");
  } else {
    fail(what + "frames in transfer syntax " + syntax +
         " (uncompressed, baseline JPEG and JPEG 2000 are read)");
  }
}

void require_eight_bit_rgb(const Instance& in, DcmItem* data) {
  const struct {
    const DcmTagKey& tag;
    const char* name;
    int64_t wanted;
  } rules[] = {{DCM_SamplesPerPixel, "Samples per Pixel", 3},
               {DCM_BitsAllocated, "Bits Allocated", 8},
               {DCM_BitsStored, "Bits Stored", 8},
               {DCM_PixelRepresentation, "Pixel Representation", 0},
               {DCM_PlanarConfiguration, "Planar Configuration", 0},
               {DCM_TotalPixelMatrixFocalPlanes, "Total Pixel Matrix Focal Planes", 1}};
  for (const auto& rule : rules) {
    const int64_t v = integer(data, rule.tag, rule.wanted);
    require(v == rule.wanted, in.path + ": " + rule.name + " " + std::to_string(v) + " (" +
                                  std::to_string(rule.wanted) + " read)");
  }
}

// Pixel Spacing (mm: row spacing, then column spacing) of a Pixel Measures
// item; false when absent or not two positive numbers.
bool spacing_of(DcmItem* measures, double* x_mm, double* y_mm) {
  Float64 row = 0, column = 0;
  if (!measures || measures->findAndGetFloat64(DCM_PixelSpacing, row, 0).bad() ||
      measures->findAndGetFloat64(DCM_PixelSpacing, column, 1).bad() || !std::isfinite(row) ||
      !std::isfinite(column) || row <= 0 || column <= 0)
    return false;
  *x_mm = column;
  *y_mm = row;
  return true;
}

// The pixel size: the shared functional groups' Pixel Measures, else the
// first frame's (the standard allows either), else the Imaged Volume
// Width and Height (mm) over the level's pixels; 0 when none says.
void read_spacing(Instance& in, DcmItem* data) {
  for (const DcmTagKey& groups :
       {DCM_SharedFunctionalGroupsSequence, DCM_PerFrameFunctionalGroupsSequence})
    if (spacing_of(first_item(first_item(data, groups), DCM_PixelMeasuresSequence),
                   &in.spacing_x_mm, &in.spacing_y_mm))
      return;
  Float32 width = 0, height = 0;
  if (data->findAndGetFloat32(DCM_ImagedVolumeWidth, width).good() &&
      data->findAndGetFloat32(DCM_ImagedVolumeHeight, height).good() && std::isfinite(width) &&
      std::isfinite(height) && width > 0 && height > 0) {
    in.spacing_x_mm = double(width) / double(in.grid.width);
    in.spacing_y_mm = double(height) / double(in.grid.height);
  }
}

// Each frame's position, from the per-frame functional groups (empty when
// the file has none).
std::vector<FramePosition> frame_positions(const Instance& in, DcmItem* data) {
  std::vector<FramePosition> positions;
  DcmSequenceOfItems* frames = nullptr;
  if (data->findAndGetSequence(DCM_PerFrameFunctionalGroupsSequence, frames).bad() || !frames)
    return positions;
  for (unsigned long i = 0; i < frames->card(); ++i) {
    DcmItem* plane = first_item(frames->getItem(i), DCM_PlanePositionSlideSequence);
    require(plane != nullptr,
            in.path + ": frame " + std::to_string(i + 1) + " has no Plane Position (Slide)");
    positions.push_back({integer(plane, DCM_ColumnPositionInTotalImagePixelMatrix, 0),
                         integer(plane, DCM_RowPositionInTotalImagePixelMatrix, 0)});
  }
  return positions;
}

void read_layout(Instance& in, DcmItem* data) {
  const std::string organisation = text(data, DCM_DimensionOrganizationType);
  std::vector<FramePosition> positions;
  if (organisation != "TILED_FULL") positions = frame_positions(in, data);
  try {
    if (organisation == "TILED_FULL" || positions.empty()) {
      in.frame_of_tile = tiled_full_frames(in.grid, in.frames,
                                           integer(data, DCM_ConcatenationFrameOffsetNumber, 0));
    } else {
      require(int64_t(positions.size()) == in.frames, std::to_string(positions.size()) +
                                                          " frame positions for " +
                                                          std::to_string(in.frames) + " frames");
      in.frame_of_tile = tiled_sparse_frames(in.grid, positions);
    }
  } catch (const std::exception& e) {
    fail(in.path + ": " + e.what());
  }
  // The per-frame groups can hold thousands of items: free them now.
  delete data->remove(DCM_PerFrameFunctionalGroupsSequence);
}

std::vector<uint64_t> offset_table(DcmPixelItem* table) {
  std::vector<uint64_t> offsets;
  Uint8* bytes = nullptr;
  const Uint32 length = table->getLength();
  if (length == 0 || length % 4 != 0 || table->getUint8Array(bytes).bad() || !bytes) return offsets;
  for (Uint32 i = 0; i < length; i += 4)
    offsets.push_back(uint64_t(bytes[i]) | uint64_t(bytes[i + 1]) << 8 |
                      uint64_t(bytes[i + 2]) << 16 | uint64_t(bytes[i + 3]) << 24);
  return offsets;
}

void find_frames(Instance& in, DcmDataset* data) {
  DcmElement* element = nullptr;
  require(data->findAndGetElement(DCM_PixelData, element).good() && element,
          in.path + ": no Pixel Data");
  if (in.codec == Codec::native) {
    const uint64_t frame_bytes = uint64_t(in.grid.tile_w) * uint64_t(in.grid.tile_h) * 3;
    require(element->getLength() >= frame_bytes * uint64_t(in.frames),
            in.path + ": Pixel Data of " + std::to_string(element->getLength()) + " bytes for " +
                std::to_string(in.frames) + " frames of " + std::to_string(frame_bytes));
    in.native = element;
    return;
  }
  auto* pixels = dynamic_cast<DcmPixelData*>(element);
  E_TransferSyntax xfer = EXS_Unknown;
  const DcmRepresentationParameter* parameter = nullptr;
  if (pixels) pixels->getOriginalRepresentationKey(xfer, parameter);
  require(pixels && pixels->getEncapsulatedRepresentation(xfer, parameter, in.fragments).good() &&
              in.fragments && in.fragments->card() >= 2,
          in.path + ": compressed Pixel Data without fragments");
  std::vector<uint64_t> lengths;
  DcmPixelItem* item = nullptr;
  for (unsigned long i = 1; i < in.fragments->card(); ++i)
    if (in.fragments->getItem(item, i).good()) lengths.push_back(item->getLength());
  in.fragments->getItem(item, 0);
  try {
    in.fragment_ranges = fragments_of_frames(lengths, offset_table(item), in.frames);
  } catch (const std::exception& e) {
    fail(in.path + ": " + e.what());
  }
}

// Parses one file of the series. nullptr when it is not a pyramid level
// (a label, an overview, a thumbnail); throws when it is one we cannot read.
std::unique_ptr<Instance> open_instance(const std::string& path) {
  auto in = std::make_unique<Instance>();
  in->path = path;
  in->file = std::make_unique<DcmFileFormat>();
  const OFCondition status =
      in->file->loadFile(path.c_str(), EXS_Unknown, EGL_noChange, kLazyValueBytes, ERM_fileOnly);
  require(status.good(), path + ": not a readable DICOM file (" + status.text() + ")");
  DcmDataset* data = in->file->getDataset();
  if (!is_level(data)) return nullptr;
  in->level_uid = text(data, DCM_SOPInstanceUIDOfConcatenationSource);
  if (in->level_uid.empty()) in->level_uid = text(data, DCM_SOPInstanceUID);
  choose_codec(*in, text(in->file->getMetaInfo(), DCM_TransferSyntaxUID),
               text(data, DCM_PhotometricInterpretation));
  require_eight_bit_rgb(*in, data);
  in->grid = {integer(data, DCM_TotalPixelMatrixColumns, 0),
              integer(data, DCM_TotalPixelMatrixRows, 0), int(integer(data, DCM_Columns, 0)),
              int(integer(data, DCM_Rows, 0))};
  require(in->grid.width > 0 && in->grid.height > 0 && in->grid.width < (int64_t(1) << 28) &&
              in->grid.height < (int64_t(1) << 28) && in->grid.tile_w > 0 && in->grid.tile_h > 0 &&
              in->grid.tile_w <= 8192 && in->grid.tile_h <= 8192,
          path + ": a level of " + std::to_string(in->grid.width) + "x" +
              std::to_string(in->grid.height) + " pixels in frames of " +
              std::to_string(in->grid.tile_w) + "x" + std::to_string(in->grid.tile_h));
  in->frames = integer(data, DCM_NumberOfFrames, 1);
  read_spacing(*in, data);
  read_layout(*in, data);
  find_frames(*in, data);
  return in;
}

// What a whole-slide DICOM file's header says of its slide.
struct SlideHeader {
  std::string series;     // Series Instance UID ("" when not a whole-slide file)
  std::string container;  // Container Identifier: the slide's barcode, if recorded
};

// Reads the header only: parsing stops before the optical paths, the
// functional groups and the frames.
SlideHeader read_slide_header(const std::string& path) {
  if (!is_dicom_file(path)) return {};
  prepare_dcmtk();
  DcmFileFormat file;
  if (file.loadFileUntilTag(path.c_str(), EXS_Unknown, EGL_noChange, kLazyValueBytes, ERM_fileOnly,
                            DCM_IssuerOfTheContainerIdentifierSequence)
          .bad() ||
      text(file.getMetaInfo(), DCM_MediaStorageSOPClassUID) != kWholeSlideClass)
    return {};
  return {text(file.getDataset(), DCM_SeriesInstanceUID),
          text(file.getDataset(), DCM_ContainerIdentifier)};
}

std::string whole_slide_series(const std::string& path) {
  return read_slide_header(path).series;
}

// A pyramid level: its tiles, each found in one of the level's files.
struct DicomLevel {
  FrameGrid grid;
  std::vector<Instance*> files;
  struct Where {
    int32_t file = -1;
    int64_t frame = kNoFrame;
  };
  std::vector<Where> tiles;  // row-major
};

class DicomSlide final : public Slide {
 public:
  DicomSlide(const std::string& path, std::vector<std::unique_ptr<Instance>> instances, double mpp,
             size_t cache_bytes)
      : instances_(std::move(instances)), cache_(cache_bytes) {
    path_ = path;
    format_ = reader_ = "dicom";
    build_levels();
    const Instance& base = *tiled_levels_.front().files.front();
    mpp_x_ = base.spacing_x_mm * 1000;
    mpp_y_ = base.spacing_y_mm * 1000;
    if (mpp > 0) mpp_x_ = mpp_y_ = mpp;
  }

  Image read_region(int level, int64_t x, int64_t y, int w, int h) const override {
    require_slide_region(path_, level, int(levels_.size()), w, h);
    const double ds = levels_[size_t(level)].downsample;
    const int64_t lx = std::llround(double(x) / ds), ly = std::llround(double(y) / ds);
    return copy_from_tiles(tiled_levels_[size_t(level)].grid, lx, ly, w, h,
                           [&](int64_t tx, int64_t ty) { return tile_at(level, tx, ty); });
  }

 private:
  // Levels by their dimensions, widest first; a level's files must agree.
  void build_levels() {
    std::map<std::pair<int64_t, int64_t>, DicomLevel, std::greater<>> by_size;
    for (auto& in : instances_) {
      DicomLevel& level = by_size[{in->grid.width, in->grid.height}];
      if (!level.files.empty()) {
        const Instance& first = *level.files.front();
        require(first.level_uid == in->level_uid,
                in->path + ": another image of the same size as " + first.path +
                    " (two levels of one size: which is the slide?)");
        require(first.grid.tile_w == in->grid.tile_w && first.grid.tile_h == in->grid.tile_h,
                in->path + ": frames of another size than " + first.path + "'s, same level");
      }
      level.grid = in->grid;
      level.files.push_back(in.get());
    }
    for (auto& [size, level] : by_size) {
      level.tiles.assign(level.files.front()->frame_of_tile.size(), {});
      for (size_t f = 0; f < level.files.size(); ++f)
        for (size_t t = 0; t < level.tiles.size(); ++t)
          if (level.tiles[t].frame == kNoFrame && level.files[f]->frame_of_tile[t] != kNoFrame)
            level.tiles[t] = {int32_t(f), level.files[f]->frame_of_tile[t]};
      tiled_levels_.push_back(std::move(level));
    }
    const FrameGrid& base = tiled_levels_.front().grid;
    for (const DicomLevel& level : tiled_levels_)
      levels_.push_back({level.grid.width, level.grid.height,
                         (double(base.width) / double(level.grid.width) +
                          double(base.height) / double(level.grid.height)) /
                             2});
  }

  std::shared_ptr<const DecodedTile> tile_at(int level, int64_t tx, int64_t ty) const {
    const DicomLevel& l = tiled_levels_[size_t(level)];
    const DicomLevel::Where where = l.tiles[size_t(ty * tiles_across(l.grid) + tx)];
    if (where.frame == kNoFrame) return nullptr;  // glass
    const uint64_t key = TileCache::key(level, tx, ty);
    if (auto tile = cache_.find(key)) return tile;
    Instance& in = *l.files[size_t(where.file)];
    const std::vector<uint8_t> bytes = frame_bytes(in, where.frame);
    std::shared_ptr<const DecodedTile> tile;
    try {
      tile = std::make_shared<const DecodedTile>(decode(in, bytes));
    } catch (const std::exception& e) {
      fail(in.path + ": frame " + std::to_string(where.frame + 1) + ": " + e.what());
    }
    cache_.put(key, tile);
    return tile;
  }

  static std::vector<uint8_t> frame_bytes(Instance& in, int64_t frame) {
    std::lock_guard<std::mutex> lock(in.mutex);
    std::vector<uint8_t> bytes;
    OFCondition status = EC_Normal;
    if (in.native) {
      const uint64_t n = uint64_t(in.grid.tile_w) * uint64_t(in.grid.tile_h) * 3;
      bytes.resize(n);
      status = in.native->getPartialValue(bytes.data(), Uint32(uint64_t(frame) * n), Uint32(n),
                                          &in.open_file);
    } else {
      const FragmentRange range = in.fragment_ranges[size_t(frame)];
      for (size_t i = range.first; i < range.first + range.count && status.good(); ++i) {
        DcmPixelItem* item = nullptr;
        status = in.fragments->getItem(item, (unsigned long)(i + 1));
        if (status.bad()) break;
        const size_t at = bytes.size();
        bytes.resize(at + item->getLength());
        if (item->getLength() > 0)
          status = item->getPartialValue(bytes.data() + at, 0, item->getLength(), &in.open_file);
      }
    }
    require(status.good(), in.path + ": cannot read frame " + std::to_string(frame + 1) + " (" +
                               status.text() + ")");
    return bytes;
  }

  static DecodedTile decode(const Instance& in, const std::vector<uint8_t>& bytes) {
    const int w = in.grid.tile_w, h = in.grid.tile_h;
    switch (in.codec) {
      case Codec::jpeg:
        return decode_jpeg_rgb(bytes.data(), bytes.size(), w, h, in.colours);
      case Codec::jpeg2000:
        return decode_jpeg2000_rgb(bytes.data(), bytes.size(), w, h);
      case Codec::native:
        break;
    }
    return bytes;
  }

  std::vector<std::unique_ptr<Instance>> instances_;
  std::vector<DicomLevel> tiled_levels_;
  mutable TileCache cache_;
};

}  // namespace

bool is_dicom_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  char magic[132] = {};
  return in.read(magic, sizeof magic) && std::memcmp(magic + 128, "DICM", 4) == 0;
}

namespace {

// The file that stands for `path`: itself, or the first file of the one
// series a folder holds ("" when it holds none or several).
std::string series_file(const std::string& path) {
  std::error_code ec;
  if (!fs::is_directory(path, ec)) return path;
  const std::vector<DicomSeries> series = dicom_series_in_folder(path);
  return series.size() == 1 ? series.front().first_file : "";
}

}  // namespace

std::string dicom_series_uid(const std::string& path) {
  const std::string file = series_file(path);
  return file.empty() ? "" : whole_slide_series(file);
}

std::string dicom_container_id(const std::string& path) {
  const std::string file = series_file(path);
  return file.empty() ? "" : read_slide_header(file).container;
}

std::vector<DicomSeries> dicom_series_in_folder(const std::string& folder) {
  return dicom_series_among(list_folder(folder).files);
}

std::vector<DicomSeries> dicom_series_among(const std::vector<std::string>& files) {
  std::map<std::string, DicomSeries> series;
  for (const auto& file : files) {
    const std::string uid = whole_slide_series(file);
    if (uid.empty()) continue;
    DicomSeries& s = series[uid];
    if (s.files.empty()) s = {uid, file, {}};
    s.files.push_back(file);
  }
  std::vector<DicomSeries> out;
  for (auto& [uid, s] : series) out.push_back(s);
  std::sort(out.begin(), out.end(),
            [](const DicomSeries& a, const DicomSeries& b) { return a.first_file < b.first_file; });
  return out;
}

std::unique_ptr<Slide> open_dicom_slide(const std::string& path, double mpp, size_t cache_bytes) {
  prepare_dcmtk();
  std::error_code ec;
  const bool folder = fs::is_directory(path, ec);
  std::string uid;
  if (!folder) {
    uid = whole_slide_series(path);
    require(!uid.empty(), path + ": not a DICOM whole-slide image (VL Whole Slide Microscopy)");
  }
  // The series: the folder's one, or the given file's among the files beside it.
  const fs::path parent = fs::path(path).parent_path();
  const std::vector<DicomSeries> all = dicom_series_in_folder(folder           ? path
                                                              : parent.empty() ? "."
                                                                               : parent.string());
  require(!folder || !all.empty(), path + ": no DICOM whole-slide image in this folder");
  require(!folder || all.size() == 1, path + ": " + std::to_string(all.size()) +
                                          " DICOM whole-slide series in this folder; name a "
                                          "file of the one to read");
  const auto series = std::find_if(all.begin(), all.end(),
                                   [&](const DicomSeries& s) { return folder || s.uid == uid; });
  require(series != all.end(), path + ": its series is not among the files beside it");
  std::vector<std::unique_ptr<Instance>> levels;
  for (const std::string& file : series->files)
    if (auto in = open_instance(file)) levels.push_back(std::move(in));
  require(!levels.empty(), path + ": no pyramid level (Image Type ...\\VOLUME\\...) in the series");
  return std::make_unique<DicomSlide>(path, std::move(levels), mpp, cache_bytes);
}

}  // namespace histocnn
