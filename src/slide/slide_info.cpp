#include "slide/slide_info.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "core/error.h"
#include "slide/slide_run.h"

namespace histocnn {
namespace {

// A slide this large without a pyramid has its thumbnail decoded from
// every pixel (data/slide.h's read_thumbnail reads the level it has).
constexpr int64_t kLargeWithoutPyramid = 8192;

std::string format_number(const char* format, double value) {
  char text[64];
  std::snprintf(text, sizeof text, format, value);
  return text;
}

// The grid at the model's scale, and how much more than the model needs
// each tile reads.
void plan_grid(const Slide& slide, const SlideInspection& o, SlideInfo* info) {
  try {
    const TileGrid g =
        plan_tile_grid(slide, o.model_mpp_x, o.model_mpp_y, o.net_width, o.net_height);
    const double per_net_pixel = std::min(g.tile_width / g.net_width, g.tile_height / g.net_height);
    const double ratio = per_net_pixel / slide.levels()[size_t(g.level)].downsample;
    info->read_excess = ratio * ratio;
    info->grid = g;
    if (info->read_excess > kSlowReadExcess)
      info->warnings.push_back("each tile is read from level " + std::to_string(g.level) + " at " +
                               format_number("%.0f", info->read_excess) +
                               "x the pixels the model needs: the pyramid has no level near " +
                               format_number("%.3g", per_net_pixel * slide.mpp_x()) +
                               " um per pixel");
  } catch (const Error& e) {
    info->problems.push_back(e.what());
  }
}

// The tiles `histocnn slide` would score, with its default tissue options.
void count_tissue_tiles(const std::string& path, const SlideInspection& o, SlideInfo* info) {
  SlideOptions so;
  so.mpp = o.mpp;
  so.reader = o.reader;
  try {
    const PreparedSlide p =
        prepare_slide(path, o.model_mpp_x, o.model_mpp_y, o.net_width, o.net_height, so);
    info->tissue_tiles = int64_t(p.tiles.size());
    info->thumbnail_seconds = p.times["thumbnail_s"].get<double>();
  } catch (const Error& e) {
    info->problems.push_back(e.what());
  }
}

}  // namespace

SlideInfo inspect_slide(const std::string& path, const SlideInspection& o) {
  SlideInfo info;
  info.path = path;
  try {
    info.name = slide_name(path);
    const std::unique_ptr<Slide> slide = open_slide(path, o.mpp, o.reader);
    info.bytes = slide_bytes(path);
    info.format = slide->format();
    info.reader = slide->reader();
    info.reader_note = slide->reader_note();
    info.width = slide->width();
    info.height = slide->height();
    info.mpp_x = slide->mpp_x();
    info.mpp_y = slide->mpp_y();
    info.levels = slide->levels();
    if (info.mpp_x <= 0 || info.mpp_y <= 0) {
      info.problems.push_back("the slide does not record its microns per pixel: give --mpp");
    } else if (o.model_mpp_x > 0) {
      plan_grid(*slide, o, &info);
      if (o.tissue && info.grid) count_tissue_tiles(path, o, &info);
    }
    if (info.levels.size() == 1 && std::max(info.width, info.height) > kLargeWithoutPyramid)
      info.warnings.push_back("no pyramid: its thumbnail decodes every pixel");
  } catch (const Error& e) {
    info.problems.push_back(e.what());
  }
  return info;
}

nlohmann::json slide_info_json(const SlideInfo& info) {
  nlohmann::json levels = nlohmann::json::array();
  for (const SlideLevel& l : info.levels)
    levels.push_back({{"width", l.width}, {"height", l.height}, {"downsample", l.downsample}});
  nlohmann::json j = {{"slide", info.path},
                      {"name", info.name},
                      {"ready", info.ready()},
                      {"problems", info.problems},
                      {"warnings", info.warnings},
                      {"format", info.format},
                      {"reader", info.reader},
                      {"reader_note", info.reader_note},
                      {"width", info.width},
                      {"height", info.height},
                      {"mpp", {info.mpp_x, info.mpp_y}},
                      {"levels", levels},
                      {"bytes", info.bytes}};
  if (info.grid) {
    const TileGrid& g = *info.grid;
    j["tiles"] = {
        {"width", g.tile_width},          {"height", g.tile_height}, {"width_um", g.tile_um_x},
        {"height_um", g.tile_um_y},       {"level", g.level},        {"read_width", g.read_width},
        {"read_height", g.read_height},   {"columns", g.columns},    {"rows", g.rows},
        {"read_excess", info.read_excess}};
    if (info.tissue_tiles) {
      j["tiles"]["on_tissue"] = *info.tissue_tiles;
      j["tiles"]["thumbnail_seconds"] = info.thumbnail_seconds;
    }
  }
  return j;
}

std::string slide_info_text(const SlideInfo& info) {
  std::string text = info.path + ": ";
  if (info.levels.empty()) {
    text += "not read\n";
  } else {
    text += info.format + " (" + info.reader + "), " + std::to_string(info.width) + " x " +
            std::to_string(info.height) + " pixels";
    if (info.mpp_x > 0)
      text += " at " + format_number("%.4g", info.mpp_x) + " x " +
              format_number("%.4g", info.mpp_y) + " um (" +
              format_number("%.1f", info.width * info.mpp_x / 1000) + " x " +
              format_number("%.1f", info.height * info.mpp_y / 1000) + " mm)";
    text += ", " + std::to_string(info.levels.size()) +
            (info.levels.size() == 1 ? " level" : " levels (downsamples");
    for (size_t l = 1; l < info.levels.size(); ++l)
      text += (l == 1 ? " " : ", ") + format_number("%.4g", info.levels[l].downsample);
    text += info.levels.size() == 1 ? "\n" : ")\n";
  }
  if (info.grid) {
    const TileGrid& g = *info.grid;
    text += "  tiles of " + format_number("%.1f", g.tile_width) + " x " +
            format_number("%.1f", g.tile_height) + " pixels (" +
            format_number("%.0f", g.tile_um_x) + " um), read from level " +
            std::to_string(g.level) + " at " + std::to_string(g.read_width) + " x " +
            std::to_string(g.read_height) + ", a grid of " + std::to_string(g.columns) + " x " +
            std::to_string(g.rows) + "\n";
    if (info.tissue_tiles)
      text += "  " + std::to_string(*info.tissue_tiles) + " tiles on tissue (" +
              format_number("%.1f", double(*info.tissue_tiles) * g.tile_um_x * g.tile_um_y / 1e6) +
              " mm2), found on a thumbnail read in " +
              format_number("%.2f", info.thumbnail_seconds) + " s\n";
  }
  for (const std::string& p : info.problems) text += "  problem: " + p + "\n";
  for (const std::string& w : info.warnings) text += "  slow: " + w + "\n";
  if (!info.reader_note.empty()) text += "  note: " + info.reader_note + "\n";
  return text;
}

}  // namespace histocnn
