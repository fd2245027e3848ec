#include "data/slide.h"

#include <openslide.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>

#include "core/error.h"
#include "core/paths.h"
#include "data/dicom_slide.h"
#include "data/ome_xml.h"
#include "data/tiff_image.h"
#include "data/tiff_slide.h"

namespace histocnn {
namespace {

class OpenSlideReader final : public Slide {
 public:
  OpenSlideReader(const std::string& path, openslide_t* handle, double mpp) : handle_(handle) {
    path_ = path;
    const char* vendor = openslide_detect_vendor(path.c_str());
    format_ = vendor ? vendor : "openslide";
    reader_ = "openslide";
    for (int l = 0; l < openslide_get_level_count(handle); ++l) {
      SlideLevel level;
      openslide_get_level_dimensions(handle, l, &level.width, &level.height);
      level.downsample = openslide_get_level_downsample(handle, l);
      levels_.push_back(level);
    }
    require(!levels_.empty() && levels_[0].width > 0 && levels_[0].height > 0,
            path + ": slide has no readable levels");
    std::map<std::string, std::string> props;
    for (const char* const* name = openslide_get_property_names(handle); *name; ++name)
      props[*name] = openslide_get_property_value(handle, *name);
    // An OME-TIFF's PhysicalSizeX/Y first: writers leave default resolution
    // tags (72 dpi) beside it.
    const OmePixelSize ome =
        ome_pixel_size(props["tiff.ImageDescription"], levels_[0].width, levels_[0].height);
    std::tie(mpp_x_, mpp_y_) =
        ome.x_um > 0 ? std::make_pair(ome.x_um, ome.y_um) : mpp_from_properties(props);
    if (format_ == "generic-tiff" && ome.is_ome) {
      // OpenSlide 3.4 takes every tiled directory of the main chain for a
      // level; in an OME-TIFF those are other images and planes (a label,
      // a macro photograph), and the pyramid is in level 0's SubIFDs, which
      // data/tiff_slide.h reads.
      format_ = "ome-tiff";
      levels_.resize(1);
    }
    if (mpp > 0) mpp_x_ = mpp_y_ = mpp;
  }
  ~OpenSlideReader() override { openslide_close(handle_); }
  OpenSlideReader(const OpenSlideReader&) = delete;
  OpenSlideReader& operator=(const OpenSlideReader&) = delete;

  Image read_region(int level, int64_t x, int64_t y, int w, int h) const override {
    require_slide_region(path_, level, int(levels_.size()), w, h);
    std::vector<uint32_t> argb(size_t(w) * h);
    openslide_read_region(handle_, argb.data(), x, y, level, w, h);  // thread-safe
    if (const char* error = openslide_get_error(handle_))
      fail(path_ + ": cannot read the slide (" + error + ")");
    Image out;
    out.width = w;
    out.height = h;
    out.rgb.resize(argb.size() * 3);
    // Premultiplied ARGB composited over white glass: c + (255 - alpha).
    for (size_t i = 0; i < argb.size(); ++i) {
      const uint32_t p = argb[i];
      const uint32_t clear = 255 - (p >> 24);
      out.rgb[3 * i] = uint8_t(std::min<uint32_t>(255, ((p >> 16) & 255) + clear));
      out.rgb[3 * i + 1] = uint8_t(std::min<uint32_t>(255, ((p >> 8) & 255) + clear));
      out.rgb[3 * i + 2] = uint8_t(std::min<uint32_t>(255, (p & 255) + clear));
    }
    return out;
  }

 private:
  openslide_t* handle_;
};

// A plain image as a one-level slide (held in memory: images are capped at
// 268 megapixels by their decoders).
class ImageSlide final : public Slide {
 public:
  ImageSlide(const std::string& path, Image image, double mpp) : image_(std::move(image)) {
    path_ = path;
    format_ = reader_ = "image";
    levels_.push_back({image_.width, image_.height, 1.0});
    mpp_x_ = mpp_y_ = mpp;
  }
  Image read_region(int level, int64_t x, int64_t y, int w, int h) const override {
    require_slide_region(path_, level, 1, w, h);
    Image out;
    out.width = w;
    out.height = h;
    out.rgb.assign(size_t(w) * h * 3, 255);
    const int64_t x0 = std::max<int64_t>(x, 0), x1 = std::min<int64_t>(x + w, image_.width);
    for (int r = 0; r < h && x0 < x1; ++r) {
      const int64_t sy = y + r;
      if (sy < 0 || sy >= image_.height) continue;
      std::memcpy(out.row(r) + (x0 - x) * 3, image_.row(int(sy)) + x0 * 3, size_t(x1 - x0) * 3);
    }
    return out;
  }

 private:
  Image image_;
};

double number_or_zero(const std::map<std::string, std::string>& props, const std::string& key) {
  auto it = props.find(key);
  if (it == props.end()) return 0;
  char* end = nullptr;
  const double v = std::strtod(it->second.c_str(), &end);
  return end != it->second.c_str() && std::isfinite(v) && v > 0 ? v : 0;
}

}  // namespace

void require_slide_region(const std::string& path, int level, int levels, int w, int h) {
  constexpr int64_t kMaxRegionPixels = int64_t(1) << 26;
  require(level >= 0 && level < levels, path + ": no pyramid level " + std::to_string(level) +
                                            " (it has " + std::to_string(levels) + ")");
  require(w > 0 && h > 0 && int64_t(w) * h <= kMaxRegionPixels,
          path + ": region of " + std::to_string(w) + "x" + std::to_string(h) +
              " pixels (at most 64 megapixels per read)");
}

int Slide::level_for_downsample(double downsample) const {
  int best = 0;
  for (size_t l = 1; l < levels_.size(); ++l)
    if (levels_[l].downsample <= downsample * 1.01) best = int(l);
  return best;
}

std::pair<double, double> mpp_from_properties(const std::map<std::string, std::string>& props) {
  const double x = number_or_zero(props, "openslide.mpp-x");
  const double y = number_or_zero(props, "openslide.mpp-y");
  if (x > 0 && y > 0) return {x, y};
  auto unit = props.find("tiff.ResolutionUnit");
  const double per_unit = unit == props.end()            ? 0
                          : unit->second == "centimeter" ? 1e4
                          : unit->second == "inch"       ? 25400
                                                         : 0;
  const double rx = number_or_zero(props, "tiff.XResolution");
  const double ry = number_or_zero(props, "tiff.YResolution");
  if (per_unit > 0 && rx > 0 && ry > 0) return {per_unit / rx, per_unit / ry};
  return {0, 0};
}

namespace {

std::string lowercase_extension(const std::filesystem::path& path) {
  std::string ext = path.extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}

bool is_tiff_name(const std::string& path) {
  const std::string ext = lowercase_extension(path);
  return ext == ".tif" || ext == ".tiff";
}

// A DICOM file is a slide of its series unless it is named as a TIFF (a
// dual-personality DICOM-TIFF file: OpenSlide reads it as TIFF, as
// OpenSlide 4 does).
bool opens_as_dicom(const std::string& path) {
  std::error_code ec;
  return std::filesystem::is_directory(path, ec) || (!is_tiff_name(path) && is_dicom_file(path));
}

std::string without_trailing_separators(std::string path) {
  while (path.size() > 1 && path.back() == '/') path.pop_back();
  return path;
}

// A name fit for a folder: letters, digits, '.', '_' and '-' kept, anything
// else '-'; "" for a name that would be hidden or climb ("..").
std::string safe_file_name(const std::string& name) {
  std::string safe = name;
  for (char& c : safe)
    if (!std::isalnum(static_cast<unsigned char>(c)) && c != '.' && c != '_' && c != '-') c = '-';
  return safe.empty() || safe.front() == '.' ? "" : safe;
}

// The slides a folder's DICOM series give: the folder itself when it is one
// series, else the first file of each.
void add_dicom_series(const std::string& folder, const std::vector<DicomSeries>& series,
                      std::vector<std::string>* slides) {
  if (series.size() == 1) {
    slides->push_back(without_trailing_separators(folder));
    return;
  }
  for (const DicomSeries& s : series) slides->push_back(s.first_file);
}

}  // namespace

void require_slide_file(const std::string& path) {
  std::error_code ec;
  require(std::filesystem::exists(path, ec), path + ": no such slide file");
  if (std::filesystem::is_directory(path, ec)) {
    const size_t series = dicom_series_in_folder(path).size();
    require(series == 1,
            path + ": a folder, and " +
                (series == 0 ? std::string("no DICOM whole-slide series")
                             : std::to_string(series) + " DICOM series (name a file of one)") +
                " in it");
    return;
  }
  require(std::filesystem::is_regular_file(path, ec), path + ": not a regular file");
}

void require_distinct_series(const std::vector<std::string>& slides) {
  std::map<std::string, std::string> first_of;
  for (const std::string& slide : slides) {
    const std::string uid = dicom_series_uid(slide);
    if (uid.empty()) continue;
    const auto [it, fresh] = first_of.emplace(uid, slide);
    require(fresh, slide + ": the same DICOM series as " + it->second + " (give it once)");
  }
}

uint64_t slide_bytes(const std::string& path) {
  std::error_code ec;
  if (!std::filesystem::is_directory(path, ec)) return std::filesystem::file_size(path);
  uint64_t bytes = 0;
  for (const std::string& file : list_folder(path).files) bytes += std::filesystem::file_size(file);
  return bytes;
}

bool looks_like_whole_slide(const std::string& path) {
  const std::string ext = lowercase_extension(path);
  for (const char* vendor : {".svs", ".ndpi", ".mrxs", ".scn", ".bif", ".vms", ".vmu", ".svslide"})
    if (ext == vendor) return true;
  constexpr int64_t kLargestImage = 8192;
  return opens_as_dicom(path) || is_large_pyramidal_tiff(path, kLargestImage);
}

bool has_ome_tiff_name(const std::string& path) {
  return is_tiff_name(path) && lowercase_extension(std::filesystem::path(path).stem()) == ".ome";
}

std::string slide_file_name(const std::string& path) {
  const std::filesystem::path p(without_trailing_separators(path));
  std::error_code ec;
  if (std::filesystem::is_directory(p, ec)) return p.filename().string();
  return has_ome_tiff_name(p.string()) ? p.stem().stem().string() : p.stem().string();
}

std::string slide_name(const std::string& path) {
  if (opens_as_dicom(path))
    if (std::string id = safe_file_name(dicom_container_id(path)); !id.empty()) return id;
  return slide_file_name(path);
}

std::unique_ptr<Slide> open_slide(const std::string& path, double mpp, SlideReader reader) {
  require_slide_file(path);
  if (opens_as_dicom(path)) return open_dicom_slide(path, mpp);
  // libtiff's warnings about a damaged file, met inside OpenSlide, would
  // print lines of their own before our one-line error: ours keep them.
  tiff_errors_to_this_thread();
  if (openslide_t* handle = openslide_open(path.c_str())) {
    if (const char* error = openslide_get_error(handle)) {
      const std::string message = path + ": corrupt or unreadable slide (" + error + ")";
      openslide_close(handle);
      fail(message);
    }
    auto slide = std::make_unique<OpenSlideReader>(path, handle, mpp);
    if (reader == SlideReader::automatic &&
        (slide->format() == "generic-tiff" || slide->format() == "aperio" ||
         slide->format() == "ome-tiff"))
      return with_direct_tiff_reads(std::move(slide));
    return slide;
  }
  // Not a format OpenSlide knows: a plain image, or an error naming the file.
  // OpenSlide looks at a TIFF's first page only: a slide stored after a
  // small untiled picture would be taken for that picture.
  if (const auto [w, h] = larger_later_tiff_page(path); w > 0)
    fail(path + ": its first image is not the slide (a larger image of " + std::to_string(w) + "x" +
         std::to_string(h) +
         " pixels follows it, which OpenSlide does not read because the first is not tiled); "
         "save the slide with its main image first");
  return std::make_unique<ImageSlide>(path, load_image(path), mpp);
}

std::vector<std::string> slides_in_folder(const std::string& folder) {
  std::vector<std::string> slides;
  walk_folders(without_trailing_separators(folder),
               [&](const std::string& where, const FolderEntries& entries) {
                 add_dicom_series(where, dicom_series_among(entries.files), &slides);
                 for (const std::string& file : entries.files)
                   if (!is_dicom_file(file) && openslide_detect_vendor(file.c_str()))
                     slides.push_back(file);
               });
  require(!slides.empty(), folder +
                               ": no slide in this folder or below it that OpenSlide or the "
                               "DICOM reader recognises (name plain images one by one)");
  std::sort(slides.begin(), slides.end());
  return slides;
}

Thumbnail read_thumbnail(const Slide& slide, int max_side) {
  require(max_side >= 16, "thumbnail side must be at least 16 pixels");
  const double target = std::max(1.0, double(std::max(slide.width(), slide.height())) / max_side);
  Thumbnail t;
  t.image.width = int(std::max<int64_t>(1, std::llround(std::ceil(slide.width() / target))));
  t.image.height = int(std::max<int64_t>(1, std::llround(std::ceil(slide.height() / target))));
  t.image.rgb.assign(size_t(t.image.width) * t.image.height * 3, 255);
  t.downsample_x = double(slide.width()) / t.image.width;
  t.downsample_y = double(slide.height()) / t.image.height;
  const int level = slide.level_for_downsample(target);
  const double ds = slide.levels()[level].downsample;
  // Pieces of the thumbnail, each from its own region of the level: memory
  // is one piece at the level's resolution, at most ~4096^2 pixels even for
  // a slide without a pyramid.
  const int kPiece = std::clamp(int(4096 / (target / ds)), 1, 256);
  for (int py = 0; py < t.image.height; py += kPiece)
    for (int px = 0; px < t.image.width; px += kPiece) {
      const int pw = std::min(kPiece, t.image.width - px);
      const int ph = std::min(kPiece, t.image.height - py);
      const int64_t x0 = std::llround(px * t.downsample_x), y0 = std::llround(py * t.downsample_y);
      const int rw = std::max(1, int(std::ceil(pw * t.downsample_x / ds)));
      const int rh = std::max(1, int(std::ceil(ph * t.downsample_y / ds)));
      const Image piece = resize_area(slide.read_region(level, x0, y0, rw, rh), pw, ph);
      for (int r = 0; r < ph; ++r)
        std::memcpy(t.image.row(py + r) + size_t(px) * 3, piece.row(r), size_t(pw) * 3);
    }
  return t;
}

}  // namespace histocnn
