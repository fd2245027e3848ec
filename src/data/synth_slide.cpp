#include "data/synth_slide.h"

#include <algorithm>
#include <array>
#include <cmath>
#include <cstdio>
#include <filesystem>
#include <nlohmann/json.hpp>
#include <pugixml.hpp>
#include <sstream>
#include <thread>

#include "core/atomic_file.h"
#include "core/counter_hash.h"
#include "core/error.h"
#include "core/rng.h"
#include "data/dicom_writer.h"
#include "data/slide.h"
#include "data/slide_writer.h"
#include "data/synth.h"

namespace histocnn {

namespace {
// A separable Gaussian blur of sigma pixels (edges clamped): a scanner's
// out-of-focus region, as `synth --out-of-focus` draws it.
void gaussian_blur(Image& image, double sigma) {
  const int radius = std::max(1, int(std::ceil(3 * sigma)));
  std::vector<double> weights(size_t(2 * radius + 1));
  double total = 0;
  for (int k = -radius; k <= radius; ++k)
    total += weights[size_t(k + radius)] = std::exp(-0.5 * k * k / (sigma * sigma));
  for (double& w : weights) w /= total;
  auto pass = [&](const Image& in, Image& out, int dx, int dy) {
    for (int y = 0; y < in.height; ++y)
      for (int x = 0; x < in.width; ++x)
        for (int c = 0; c < 3; ++c) {
          double v = 0;
          for (int k = -radius; k <= radius; ++k) {
            const int sx = std::clamp(x + k * dx, 0, in.width - 1);
            const int sy = std::clamp(y + k * dy, 0, in.height - 1);
            v += weights[size_t(k + radius)] * in.row(sy)[3 * sx + c];
          }
          out.row(y)[3 * x + c] = uint8_t(std::lround(std::clamp(v, 0.0, 255.0)));
        }
  };
  Image across = image;
  pass(image, across, 1, 0);
  pass(across, image, 0, 1);
}

}  // namespace

SyntheticSlideLayout::SyntheticSlideLayout(const SynthSlideOptions& o) : options_(o) {
  require(o.width >= kSynthSlideBlock && o.height >= kSynthSlideBlock,
          "--slide-size: a synthetic slide is at least 512x512 pixels");
  require(o.pieces >= 1 && o.pieces <= 64, "--pieces: 1 to 64 tissue pieces");
  Rng rng(o.seed ^ 0x511DEu);
  const double w = double(o.width), h = double(o.height);
  for (int i = 0; i < o.pieces; ++i) {
    Piece p;
    p.cx = (i + 0.5) / o.pieces * w + (rng.uniform() - 0.5) * 0.1 * w / o.pieces;
    p.cy = h * (0.5 + (rng.uniform() - 0.5) * 0.2);
    p.rx = 0.42 * w / o.pieces;
    p.ry = 0.36 * h;
    p.phase1 = rng.uniform() * 6.283;
    p.phase2 = rng.uniform() * 6.283;
    p.split = rng.uniform() * 6.283;
    pieces_.push_back(p);
  }
}

int SyntheticSlideLayout::piece_at(double x, double y) const {
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& p = pieces_[i];
    const double dx = (x - p.cx) / p.rx, dy = (y - p.cy) / p.ry;
    const double theta = std::atan2(dy, dx);
    const double edge =
        1 + 0.12 * std::sin(3 * theta + p.phase1) + 0.07 * std::sin(5 * theta + p.phase2);
    if (dx * dx + dy * dy < edge * edge * 0.8) return int(i);
  }
  return -1;
}

int SyntheticSlideLayout::block_class(int64_t bx, int64_t by) const {
  if (options_.tissue != SlideTissue::mixed) return options_.tissue == SlideTissue::benign ? 1 : 2;
  const double x = (bx + 0.5) * kSynthSlideBlock, y = (by + 0.5) * kSynthSlideBlock;
  int piece = piece_at(x, y);
  if (piece < 0) {  // a block on an outline: the nearest centre's piece
    double best = 1e300;
    for (size_t i = 0; i < pieces_.size(); ++i) {
      const double d = std::hypot(x - pieces_[i].cx, y - pieces_[i].cy);
      if (d < best) best = d, piece = int(i);
    }
  }
  const Piece& p = pieces_[size_t(piece)];
  const double side = (x - p.cx) * std::cos(p.split) + (y - p.cy) * std::sin(p.split);
  return side >= 0 ? 2 : 1;
}

const uint8_t* SyntheticSlideLayout::ink_at(int64_t x, int64_t y) const {
  static constexpr uint8_t kInks[3][3] = {{45, 70, 170}, {40, 150, 90}, {200, 40, 50}};
  if (!options_.pen_marks) return nullptr;
  const double half_width = std::max(8.0, double(std::min(options_.width, options_.height)) / 100);
  for (size_t i = 0; i < pieces_.size(); ++i) {
    const Piece& p = pieces_[i];
    const double dx = (double(x) - p.cx) / p.rx, dy = (double(y) - p.cy) / p.ry;
    if (std::abs(std::hypot(dx, dy) - 1) * std::min(p.rx, p.ry) < half_width) return kInks[i % 3];
  }
  return nullptr;
}

bool SyntheticSlideLayout::out_of_focus_at(int64_t x, int64_t) const {
  return options_.out_of_focus_um > 0 &&
         x / kSynthSlideBlock * kSynthSlideBlock >= options_.width / 2;
}

int SyntheticSlideLayout::label_at(int64_t x, int64_t y) const {
  if (piece_at(double(x), double(y)) < 0) return 0;
  return block_class(x / kSynthSlideBlock, y / kSynthSlideBlock);
}

Image SyntheticSlideLayout::paint(int64_t x, int64_t y, int width, int height) const {
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(size_t(width) * height * 3);
  const int64_t bx0 = x / kSynthSlideBlock, bx1 = (x + width - 1) / kSynthSlideBlock;
  const int64_t by0 = y / kSynthSlideBlock, by1 = (y + height - 1) / kSynthSlideBlock;
  auto paint_block = [&](int64_t bx, int64_t by) {
    const int64_t left = bx * kSynthSlideBlock, top = by * kSynthSlideBlock;
    Image block;  // drawn only when the block has tissue in the region
    for (int64_t py = std::max(y, top); py < std::min(y + height, top + kSynthSlideBlock); ++py)
      for (int64_t px = std::max(x, left); px < std::min(x + width, left + kSynthSlideBlock);
           ++px) {
        uint8_t* o = out.row(int(py - y)) + 3 * (px - x);
        if (piece_at(double(px), double(py)) < 0) {  // glass, with the scanner's faint noise
          const uint8_t v = uint8_t(241 + (mix64(uint64_t(px) * 0x9E37u ^ uint64_t(py)) & 3));
          o[0] = o[1] = o[2] = v;
          continue;
        }
        if (block.rgb.empty()) {
          block = draw_synthetic_tissue(
              kSynthSlideBlock, kSynthSlideBlock, block_class(bx, by) == 2,
              mix64(options_.seed ^ mix64(uint64_t(bx) << 32 ^ uint64_t(by))));
          if (out_of_focus_at(left, top))
            gaussian_blur(block, options_.out_of_focus_um / options_.mpp);
        }
        std::copy_n(block.row(int(py - top)) + 3 * (px - left), 3, o);
      }
  };
  // Ink absorbs: what is under a stroke is seen through the pen's colour.
  auto ink_block = [&](int64_t bx, int64_t by) {
    const int64_t left = bx * kSynthSlideBlock, top = by * kSynthSlideBlock;
    for (int64_t py = std::max(y, top); py < std::min(y + height, top + kSynthSlideBlock); ++py)
      for (int64_t px = std::max(x, left); px < std::min(x + width, left + kSynthSlideBlock); ++px)
        if (const uint8_t* ink = ink_at(px, py)) {
          uint8_t* o = out.row(int(py - y)) + 3 * (px - x);
          for (int c = 0; c < 3; ++c) o[c] = uint8_t(o[c] * ink[c] / 255);
        }
  };
  // Block columns in parallel: drawing dominates the time.
  const int64_t columns = bx1 - bx0 + 1;
  const int threads = int(std::clamp<int64_t>(std::thread::hardware_concurrency(), 1, columns));
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t)
    pool.emplace_back([&, t] {
      for (int64_t c = t; c < columns; c += threads)
        for (int64_t by = by0; by <= by1; ++by) {
          paint_block(bx0 + c, by);
          if (options_.pen_marks) ink_block(bx0 + c, by);
        }
    });
  for (auto& th : pool) th.join();
  return out;
}

void write_synthetic_slide(const std::string& path, const SynthSlideOptions& options) {
  const SyntheticSlideLayout layout(options);
  SlideWriterOptions w;
  w.mpp = options.mpp;
  w.layout = options.layout;
  write_pyramidal_tiff(
      path, options.width, options.height,
      [&](int64_t x, int64_t y, int width, int height) {
        return layout.paint(x, y, width, height);
      },
      w);
}

void write_synthetic_dicom_slide(const std::string& folder, const SynthSlideOptions& options) {
  const std::string pyramid = folder + ".pyramid.tif";
  SynthSlideOptions generic = options;
  generic.layout = SlideLayout::generic;
  try {
    write_synthetic_slide(pyramid, generic);
    DicomWriterOptions dicom;
    dicom.container_id = std::filesystem::path(folder).filename().string();
    dicom.quality = SlideWriterOptions().quality;  // the TIFF's: as many bytes to decode
    write_dicom_slide(folder, *open_slide(pyramid, options.mpp), dicom);
  } catch (...) {
    std::remove(pyramid.c_str());
    throw;
  }
  std::remove(pyramid.c_str());
}

namespace {

// The slide's malignant blocks: each block that has malignant tissue at any
// of 8 x 8 points, as [x0, y0, x1, y1].
std::vector<std::array<int64_t, 4>> malignant_blocks(const SynthSlideOptions& options) {
  const SyntheticSlideLayout layout(options);
  std::vector<std::array<int64_t, 4>> blocks;
  const int64_t b = kSynthSlideBlock;
  for (int64_t by = 0; by * b < options.height; ++by)
    for (int64_t bx = 0; bx * b < options.width; ++bx) {
      bool malignant = false;
      for (int j = 0; j < 8 && !malignant; ++j)
        for (int i = 0; i < 8 && !malignant; ++i)
          malignant =
              layout.label_at(std::min(bx * b + i * b / 8 + b / 16, options.width - 1),
                              std::min(by * b + j * b / 8 + b / 16, options.height - 1)) == 2;
      if (malignant)
        blocks.push_back({bx * b, by * b, std::min(bx * b + b, options.width),
                          std::min(by * b + b, options.height)});
    }
  return blocks;
}

std::string qupath_geojson(const std::vector<std::array<int64_t, 4>>& blocks) {
  nlohmann::json squares = nlohmann::json::array();
  for (const auto& [x0, y0, x1, y1] : blocks)
    squares.push_back({{{x0, y0}, {x1, y0}, {x1, y1}, {x0, y1}, {x0, y0}}});
  nlohmann::json features = nlohmann::json::array();
  if (!squares.empty())
    features.push_back({{"type", "Feature"},
                        {"geometry", {{"type", "MultiPolygon"}, {"coordinates", squares}}},
                        {"properties",
                         {{"objectType", "annotation"},
                          {"classification", {{"name", "Tumor"}, {"color", {200, 0, 0}}}}}}});
  return nlohmann::json({{"type", "FeatureCollection"}, {"features", features}}).dump() + "\n";
}

// As ASAP saves them: one Polygon per block in the group "Tumor".
std::string asap_xml(const std::vector<std::array<int64_t, 4>>& blocks) {
  pugi::xml_document doc;
  pugi::xml_node root = doc.append_child("ASAP_Annotations");
  pugi::xml_node list = root.append_child("Annotations");
  for (size_t i = 0; i < blocks.size(); ++i) {
    const auto& [x0, y0, x1, y1] = blocks[i];
    pugi::xml_node a = list.append_child("Annotation");
    a.append_attribute("Name") = ("Annotation " + std::to_string(i)).c_str();
    a.append_attribute("Type") = "Polygon";
    a.append_attribute("PartOfGroup") = "Tumor";
    a.append_attribute("Color") = "#F4FA58";
    pugi::xml_node coordinates = a.append_child("Coordinates");
    const int64_t xs[] = {x0, x1, x1, x0}, ys[] = {y0, y0, y1, y1};
    for (int k = 0; k < 4; ++k) {
      pugi::xml_node c = coordinates.append_child("Coordinate");
      c.append_attribute("Order") = k;
      c.append_attribute("X") = static_cast<long long>(xs[k]);
      c.append_attribute("Y") = static_cast<long long>(ys[k]);
    }
  }
  pugi::xml_node group = root.append_child("AnnotationGroups").append_child("Group");
  group.append_attribute("Name") = "Tumor";
  group.append_attribute("PartOfGroup") = "None";
  group.append_attribute("Color") = "#F4FA58";
  group.append_child("Attributes");
  std::ostringstream text;
  doc.save(text, "\t");
  return text.str();
}

}  // namespace

void write_synthetic_annotations(const std::string& path, const SynthSlideOptions& options) {
  const auto blocks = malignant_blocks(options);
  write_file_atomically(path, std::filesystem::path(path).extension() == ".xml"
                                  ? asap_xml(blocks)
                                  : qupath_geojson(blocks));
}

}  // namespace histocnn
