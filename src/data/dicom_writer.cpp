#include "data/dicom_writer.h"

#include <dcmtk/config/osconfig.h>  // dcmtk's own configuration comes first
#include <dcmtk/dcmdata/dcdeftag.h>
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/dcmdata/dcfilefo.h>
#include <dcmtk/dcmdata/dcpixel.h>
#include <dcmtk/dcmdata/dcpixseq.h>
#include <dcmtk/dcmdata/dcpxitem.h>
#include <dcmtk/dcmdata/dcuid.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <vector>

#include "core/error.h"
#include "data/dcmtk_setup.h"
#include "data/dicom_layout.h"
#include "data/frame_codecs.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;

std::string new_uid() {
  char uid[100];
  return dcmGenerateUniqueIdentifier(uid, SITE_INSTANCE_UID_ROOT);
}

// What every level of the series shares.
struct SeriesIds {
  std::string study = new_uid(), series = new_uid(), frame_of_reference = new_uid();
};

// Runs one of dcmtk's putAndInsert calls; throws naming the attribute.
template <typename Put>
void put_checked(const DcmTagKey& tag, Put put_value) {
  const OFCondition status = put_value();
  require(status.good(), "DICOM writer: cannot set " + std::string(DcmTag(tag).getTagName()) +
                             " (" + status.text() + ")");
}
void put(DcmItem* item, const DcmTagKey& tag, const std::string& value) {
  put_checked(tag, [&] { return item->putAndInsertOFStringArray(tag, value.c_str()); });
}
// Binary numbers (US, UL, SL, FL) are not set from text.
void put_us(DcmItem* item, const DcmTagKey& tag, int64_t v) {
  put_checked(tag, [&] { return item->putAndInsertUint16(tag, Uint16(v)); });
}
void put_ul(DcmItem* item, const DcmTagKey& tag, int64_t v) {
  put_checked(tag, [&] { return item->putAndInsertUint32(tag, Uint32(v)); });
}
void put_sl(DcmItem* item, const DcmTagKey& tag, int64_t v) {
  put_checked(tag, [&] { return item->putAndInsertSint32(tag, Sint32(v)); });
}

std::string decimal(double v) {
  char s[32];
  std::snprintf(s, sizeof s, "%.10g", v);
  return s;
}

struct Frame {
  std::vector<uint8_t> bytes;
  int64_t column = 1, row = 1;  // 1-based position in the level
};

bool all_glass(const Image& tile) {
  return std::all_of(tile.rgb.begin(), tile.rgb.end(), [](uint8_t v) { return v == 255; });
}

std::vector<Frame> level_frames(const Slide& source, int level, const FrameGrid& grid,
                                const DicomWriterOptions& o) {
  const double ds = source.levels()[size_t(level)].downsample;
  std::vector<Frame> frames;
  for (int64_t ty = 0; ty < tiles_down(grid); ++ty)
    for (int64_t tx = 0; tx < tiles_across(grid); ++tx) {
      const Image tile = source.read_region(level, std::llround(double(tx * o.tile) * ds),
                                            std::llround(double(ty * o.tile) * ds), o.tile, o.tile);
      if (o.sparse && all_glass(tile)) continue;
      Frame f{o.jpeg ? encode_jpeg_rgb(tile.rgb.data(), o.tile, o.tile, o.quality) : tile.rgb,
              tx * o.tile + 1, ty * o.tile + 1};
      frames.push_back(std::move(f));
    }
  if (o.sparse) std::reverse(frames.begin(), frames.end());
  return frames;
}

void put_image_attributes(DcmDataset* d, const Slide& source, int level, const FrameGrid& grid,
                          const DicomWriterOptions& o, const SeriesIds& ids, size_t frames) {
  put(d, DCM_SOPClassUID, UID_VLWholeSlideMicroscopyImageStorage);
  put(d, DCM_SOPInstanceUID, new_uid());
  put(d, DCM_StudyInstanceUID, ids.study);
  put(d, DCM_SeriesInstanceUID, ids.series);
  put(d, DCM_FrameOfReferenceUID, ids.frame_of_reference);
  put(d, DCM_Modality, "SM");
  put(d, DCM_PatientID, o.container_id.empty() ? "anonymous" : o.container_id);
  if (!o.container_id.empty()) put(d, DCM_ContainerIdentifier, o.container_id);
  put(d, DCM_InstanceNumber, std::to_string(level + 1));
  put(d, DCM_ImageType,
      level == 0 ? "ORIGINAL\\PRIMARY\\VOLUME\\NONE" : "DERIVED\\PRIMARY\\VOLUME\\RESAMPLED");
  put_us(d, DCM_SamplesPerPixel, 3);
  put(d, DCM_PhotometricInterpretation, o.jpeg ? "YBR_FULL_422" : "RGB");
  put_us(d, DCM_PlanarConfiguration, 0);
  put_us(d, DCM_BitsAllocated, 8);
  put_us(d, DCM_BitsStored, 8);
  put_us(d, DCM_HighBit, 7);
  put_us(d, DCM_PixelRepresentation, 0);
  put_us(d, DCM_Rows, grid.tile_h);
  put_us(d, DCM_Columns, grid.tile_w);
  put(d, DCM_NumberOfFrames, std::to_string(frames));
  put_ul(d, DCM_TotalPixelMatrixColumns, grid.width);
  put_ul(d, DCM_TotalPixelMatrixRows, grid.height);
  put_ul(d, DCM_TotalPixelMatrixFocalPlanes, 1);
  put(d, DCM_DimensionOrganizationType, o.sparse ? "TILED_SPARSE" : "TILED_FULL");
  put(d, DCM_LossyImageCompression, o.jpeg ? "01" : "00");
  const double mm = source.mpp_x() > 0 ? source.mpp_x() / 1000 : 0.00025;
  const double ds = source.levels()[size_t(level)].downsample;
  DcmItem* measures = nullptr;
  DcmItem* shared = nullptr;
  require(d->findOrCreateSequenceItem(DCM_SharedFunctionalGroupsSequence, shared, 0).good() &&
              shared->findOrCreateSequenceItem(DCM_PixelMeasuresSequence, measures, 0).good(),
          "DICOM writer: cannot make the shared functional groups");
  put(measures, DCM_PixelSpacing, decimal(mm * ds) + "\\" + decimal(mm * ds));
  put_checked(DCM_ImagedVolumeWidth, [&] {
    return d->putAndInsertFloat32(DCM_ImagedVolumeWidth, Float32(mm * ds * grid.width));
  });
  put_checked(DCM_ImagedVolumeHeight, [&] {
    return d->putAndInsertFloat32(DCM_ImagedVolumeHeight, Float32(mm * ds * grid.height));
  });
  put(measures, DCM_SliceThickness, "0.004");
}

void put_positions(DcmDataset* d, const std::vector<Frame>& frames) {
  for (size_t i = 0; i < frames.size(); ++i) {
    DcmItem* frame = nullptr;
    DcmItem* plane = nullptr;
    require(
        d->findOrCreateSequenceItem(DCM_PerFrameFunctionalGroupsSequence, frame, long(i)).good() &&
            frame->findOrCreateSequenceItem(DCM_PlanePositionSlideSequence, plane, 0).good(),
        "DICOM writer: cannot make the per-frame functional groups");
    put_sl(plane, DCM_ColumnPositionInTotalImagePixelMatrix, frames[i].column);
    put_sl(plane, DCM_RowPositionInTotalImagePixelMatrix, frames[i].row);
  }
}

void put_pixels(DcmDataset* d, const std::vector<Frame>& frames, const DicomWriterOptions& o) {
  auto* pixels = new DcmPixelData(DCM_PixelData);
  d->insert(pixels);
  if (!o.jpeg) {
    std::vector<uint8_t> all;
    for (const Frame& f : frames) all.insert(all.end(), f.bytes.begin(), f.bytes.end());
    require(pixels->putUint8Array(all.data(), Uint32(all.size())).good(),
            "DICOM writer: cannot store the frames");
    return;
  }
  auto* sequence = new DcmPixelSequence(DCM_PixelSequenceTag);
  auto* table = new DcmPixelItem(DCM_PixelItemTag);
  sequence->insert(table);
  DcmOffsetList offsets;
  for (const Frame& f : frames)
    require(sequence
                ->storeCompressedFrame(offsets, const_cast<Uint8*>(f.bytes.data()),
                                       Uint32(f.bytes.size()), Uint32(o.fragment_kb))
                .good(),
            "DICOM writer: cannot store a frame");
  if (o.offset_table) table->createOffsetTable(offsets);
  pixels->putOriginalRepresentation(EXS_JPEGProcess1, nullptr, sequence);
}

void write_level(const std::string& path, const Slide& source, int level,
                 const DicomWriterOptions& o, const SeriesIds& ids) {
  const SlideLevel& size = source.levels()[size_t(level)];
  const FrameGrid grid{size.width, size.height, o.tile, o.tile};
  const std::vector<Frame> frames = level_frames(source, level, grid, o);
  require(!frames.empty(), source.path() + ": level " + std::to_string(level) +
                               " is all glass; a sparse DICOM level needs a frame");
  DcmFileFormat file;
  DcmDataset* d = file.getDataset();
  put_image_attributes(d, source, level, grid, o, ids, frames.size());
  if (o.sparse) put_positions(d, frames);
  put_pixels(d, frames, o);
  const E_TransferSyntax syntax = o.jpeg ? EXS_JPEGProcess1 : EXS_LittleEndianExplicit;
  const OFCondition status = file.saveFile(path.c_str(), syntax);
  require(status.good(), path + ": cannot write (" + status.text() + ")");
}

}  // namespace

void write_dicom_slide(const std::string& folder, const Slide& source,
                       const DicomWriterOptions& o) {
  prepare_dcmtk();
  require(dcmDataDict.isDictionaryLoaded(),
          "DICOM writer: dcmtk's data dictionary is not loaded (set DCMDICTPATH to a dicom.dic; "
          "Debian's libdcmtk17 installs /usr/share/libdcmtk17/dicom.dic)");
  require(o.tile >= 16 && o.tile <= 4096 && o.tile % 16 == 0,
          "DICOM writer: tile side " + std::to_string(o.tile) + " (16..4096, a multiple of 16)");
  std::error_code ec;
  require(!fs::exists(folder, ec), folder + ": exists already");
  const std::string partial = folder + ".partial";
  fs::remove_all(partial, ec);
  fs::create_directories(partial, ec);
  require(!ec, partial + ": cannot create the folder (" + ec.message() + ")");
  const SeriesIds ids;
  try {
    for (int level = 0; level < int(source.levels().size()); ++level)
      write_level((fs::path(partial) / ("level-" + std::to_string(level) + ".dcm")).string(),
                  source, level, o, ids);
  } catch (...) {
    fs::remove_all(partial, ec);
    throw;
  }
  fs::rename(partial, folder, ec);
  require(!ec, folder + ": cannot move the finished series into place (" + ec.message() + ")");
}

}  // namespace histocnn
