#include "data/synth.h"

#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <cmath>
#include <cstdlib>
#include <filesystem>
#include <thread>
#include <vector>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/parallel_for.h"
#include "core/paths.h"
#include "core/rng.h"
#include "data/grade_csv.h"

namespace histocnn {
namespace {

constexpr float kPi = 3.14159265f;

struct Canvas {
  int w, h;
  std::vector<float> px;  // RGB floats in [0,1]
  float* at(int x, int y) { return px.data() + (size_t(y) * w + x) * 3; }
  void blend(int x, int y, const float* color, float alpha) {
    if (x < 0 || y < 0 || x >= w || y >= h || alpha <= 0) return;
    float* p = at(x, y);
    alpha = std::min(alpha, 1.0f);
    for (int c = 0; c < 3; ++c) p[c] += (color[c] - p[c]) * alpha;
  }
};

// Smooth noise: random values on a coarse grid, bilinearly interpolated.
struct ValueNoise {
  int gw, gh, cell;
  std::vector<float> grid;
  ValueNoise(int w, int h, int cell_size, Rng& rng) : cell(cell_size) {
    gw = w / cell + 2, gh = h / cell + 2;
    grid.resize(size_t(gw) * gh);
    for (auto& g : grid) g = float(rng.uniform());
  }
  float operator()(float x, float y) const {
    const float fx = x / cell, fy = y / cell;
    const int ix = int(fx), iy = int(fy);
    const float tx = fx - ix, ty = fy - iy;
    auto g = [&](int a, int b) {
      return grid[size_t(std::min(b, gh - 1)) * gw + std::min(a, gw - 1)];
    };
    return (g(ix, iy) * (1 - tx) + g(ix + 1, iy) * tx) * (1 - ty) +
           (g(ix, iy + 1) * (1 - tx) + g(ix + 1, iy + 1) * tx) * ty;
  }
};

// A filled ellipse with a soft edge and speckled chromatin.
void draw_nucleus(Canvas& canvas, float cx, float cy, float a, float b, float angle,
                  const float* color, Rng& rng) {
  const float ca = std::cos(angle), sa = std::sin(angle);
  const int r = int(std::max(a, b)) + 2;
  for (int y = int(cy) - r; y <= int(cy) + r; ++y) {
    for (int x = int(cx) - r; x <= int(cx) + r; ++x) {
      const float dx = x - cx, dy = y - cy;
      const float u = (dx * ca + dy * sa) / a, v = (-dx * sa + dy * ca) / b;
      const float d = std::sqrt(u * u + v * v);
      if (d > 1.15f) continue;
      const float alpha = std::clamp((1.15f - d) / 0.3f, 0.0f, 1.0f) * 0.92f;
      float speckled[3];
      const float grain = 0.85f + 0.3f * float(rng.uniform());
      for (int c = 0; c < 3; ++c) speckled[c] = color[c] * grain;
      canvas.blend(x, y, speckled, alpha);
    }
  }
}

struct Gland {
  float cx, cy, radius, lumen_fraction;
  float harmonics[6], phases[6];
  float boundary(float theta) const {
    float r = 1.0f;
    for (int k = 0; k < 6; ++k) r += harmonics[k] * std::cos(float(k + 2) * theta + phases[k]);
    return radius * r;
  }
};

}  // namespace

Image draw_synthetic_tissue(int width, int height, bool malignant, uint64_t seed) {
  Rng rng(seed);
  Canvas canvas{width, height, std::vector<float>(size_t(width) * height * 3)};
  const float scale = std::sqrt(float(width) * height / (775.0f * 522.0f));
  // Stain tint of this slide.
  const float eosin = 0.9f + 0.2f * float(rng.uniform()), hema = 0.9f + 0.2f * float(rng.uniform());
  const float stroma[3] = {0.93f, 0.62f * eosin + 0.05f, 0.78f};
  const float cytoplasm[3] = {0.80f, 0.55f, 0.78f * hema};
  const float lumen[3] = {0.97f, 0.93f, 0.96f};
  const float nucleus_color[3] = {0.33f / hema, 0.18f, 0.52f};

  ValueNoise coarse(width, height, int(40 * scale) + 4, rng), fine(width, height, 6, rng);
  for (int y = 0; y < height; ++y)
    for (int x = 0; x < width; ++x) {
      const float n = 0.85f + 0.25f * coarse(x, y) + 0.12f * (fine(x, y) - 0.5f);
      // Fibres: a faint streak pattern along a slowly varying direction.
      const float fibre = 0.04f * std::sin(0.35f * (x * 0.8f + y * 0.6f) + 6.0f * coarse(y, x));
      float* p = canvas.at(x, y);
      for (int c = 0; c < 3; ++c) p[c] = std::clamp(stroma[c] * n + fibre, 0.0f, 1.0f);
    }

  // Glands.
  std::vector<Gland> glands;
  const int target = malignant ? int(9 + rng.below(6)) : int(5 + rng.below(4));
  for (int attempt = 0; attempt < 400 && int(glands.size()) < target; ++attempt) {
    Gland g{};
    g.radius = scale * (malignant ? float(rng.uniform(35, 85)) : float(rng.uniform(45, 75)));
    g.cx = float(rng.uniform(0, width));
    g.cy = float(rng.uniform(0, height));
    g.lumen_fraction = malignant ? float(rng.uniform(0.0, 0.45)) : float(rng.uniform(0.45, 0.62));
    const float irregular = malignant ? 0.14f : 0.025f;
    for (int k = 0; k < 6; ++k) {
      g.harmonics[k] = irregular * float(rng.uniform(-1, 1)) / (1.0f + 0.3f * k);
      g.phases[k] = float(rng.uniform(0, 2 * kPi));
    }
    // Benign glands keep apart; malignant ones may overlap (fuse) and crowd.
    bool ok = true;
    for (const auto& o : glands) {
      const float d = std::hypot(g.cx - o.cx, g.cy - o.cy);
      if (d < (malignant ? 0.7f : 1.25f) * (g.radius + o.radius)) ok = false;
    }
    if (ok) glands.push_back(g);
  }
  for (const auto& g : glands) {
    const int r = int(g.radius * 1.6f) + 2;
    for (int y = int(g.cy) - r; y <= int(g.cy) + r; ++y)
      for (int x = int(g.cx) - r; x <= int(g.cx) + r; ++x) {
        if (x < 0 || y < 0 || x >= width || y >= height) continue;
        const float dx = x - g.cx, dy = y - g.cy;
        const float dist = std::hypot(dx, dy), edge = g.boundary(std::atan2(dy, dx));
        if (dist > edge + 1.5f) continue;
        const float rel = dist / edge;
        canvas.blend(x, y, cytoplasm, std::clamp(edge + 1.5f - dist, 0.0f, 1.0f) * 0.85f);
        if (rel < g.lumen_fraction)
          canvas.blend(x, y, lumen, std::clamp((g.lumen_fraction - rel) * edge / 2.0f, 0.0f, 1.0f));
      }
  }
  // Epithelial nuclei.
  for (const auto& g : glands) {
    if (!malignant) {
      // One aligned row at the base, evenly spaced, small and uniform.
      const float circumference = 2 * kPi * g.radius;
      const int count = int(circumference / (9.0f * scale));
      for (int i = 0; i < count; ++i) {
        const float theta = 2 * kPi * (i + 0.2f * float(rng.uniform())) / count;
        const float rr = g.boundary(theta) * 0.86f;
        draw_nucleus(canvas, g.cx + rr * std::cos(theta), g.cy + rr * std::sin(theta), 4.2f * scale,
                     2.4f * scale, theta, nucleus_color, rng);
      }
    } else {
      // Crowded, stratified, pleomorphic: random positions in the epithelium.
      const float area = kPi * g.radius * g.radius;
      const int count = int(area / (95.0f * scale * scale));
      for (int i = 0; i < count; ++i) {
        const float theta = float(rng.uniform(0, 2 * kPi));
        const float edge = g.boundary(theta);
        const float rr = edge * float(rng.uniform(std::max(0.0f, g.lumen_fraction), 0.97));
        const float size = scale * float(rng.uniform(3.5, 8.0));
        float dark[3];
        const float shade = float(rng.uniform(0.7, 1.1));
        for (int c = 0; c < 3; ++c) dark[c] = nucleus_color[c] * shade;
        draw_nucleus(canvas, g.cx + rr * std::cos(theta), g.cy + rr * std::sin(theta), size,
                     size * float(rng.uniform(0.55, 0.95)), float(rng.uniform(0, kPi)), dark, rng);
      }
    }
  }
  // Stromal nuclei: elongated fibroblasts and round lymphocytes.
  const int stromal = int((malignant ? 140 : 90) * scale * scale);
  for (int i = 0; i < stromal; ++i) {
    const bool lymphocyte = rng.below(3) == 0;
    const float a = scale * (lymphocyte ? 2.8f : float(rng.uniform(4, 7)));
    const float b = scale * (lymphocyte ? 2.8f : 1.6f);
    draw_nucleus(canvas, float(rng.uniform(0, width)), float(rng.uniform(0, height)), a, b,
                 float(rng.uniform(0, kPi)), nucleus_color, rng);
  }
  Image image;
  image.width = width;
  image.height = height;
  image.rgb.resize(size_t(width) * height * 3);
  for (size_t i = 0; i < image.rgb.size(); ++i) {
    const float noisy = canvas.px[i] + 0.025f * float(rng.normal());
    image.rgb[i] = uint8_t(std::clamp(noisy, 0.0f, 1.0f) * 255.0f + 0.5f);
  }
  return image;
}

namespace {

// Grade.csv's rows (patients alternate benign and malignant) and each
// image's drawing seed.
std::vector<GradeRow> synthetic_rows(const SynthOptions& o, std::vector<uint64_t>* seeds) {
  std::vector<GradeRow> rows;
  Rng rng(o.seed);
  for (int i = 0; i < o.images; ++i) {
    const int patient = i / o.images_per_patient;
    const bool malignant = patient % 2 == 1;
    // The five grades' names, a patient's images sharing one (the drawing
    // tells only benign from malignant: grade models learn the binary view).
    static const char* kBenign[] = {"healthy", "adenomatous"};
    static const char* kMalignant[] = {
        "moderately differentiated", "moderately-to-poorly differentated", "poorly differentiated"};
    const int turn = patient / 2;
    GradeRow row;
    row.name = o.prefix + "_" + std::to_string(i + 1);
    row.patient = std::to_string(patient + 1);
    row.label = malignant ? 1 : 0;
    row.subgrade = malignant ? kMalignant[turn % 3] : kBenign[turn % 2];
    rows.push_back(row);
    seeds->push_back(rng.next());
  }
  return rows;
}

// Draws and saves every image of `rows` on all cores; throws the first error.
void save_synthetic_images(const std::string& folder, const std::vector<GradeRow>& rows,
                           const std::vector<uint64_t>& seeds, const SynthOptions& o) {
  parallel_for(rows.size(), int(std::max(1u, std::thread::hardware_concurrency())), [&](size_t i) {
    const Image image = draw_synthetic_tissue(o.width, o.height, rows[i].label == 1, seeds[i]);
    save_image((std::filesystem::path(folder) / (rows[i].name + "." + o.format)).string(), image);
  });
}

}  // namespace

void write_synthetic_dataset(const std::string& folder, const SynthOptions& o) {
  require(o.images >= 2, "--images: need at least 2 images (one per class)");
  require(o.images_per_patient >= 1, "--per-patient: must be at least 1");
  require(o.width >= 32 && o.height >= 32 && o.width <= 8192 && o.height <= 8192,
          "--width/--height: must be in 32..8192");
  require(o.format == "png" || o.format == "bmp" || o.format == "jpg",
          "--format: must be png, bmp or jpg");
  // Names become file names inside `folder`: letters, digits, '-' and '_' only.
  require(!o.prefix.empty() && o.prefix.size() <= 64 &&
              std::all_of(
                  o.prefix.begin(), o.prefix.end(),
                  [](char c) { return std::isalnum((unsigned char)c) || c == '-' || c == '_'; }),
          "--prefix '" + o.prefix + "': use letters, digits, '-' and '_' (train, testA, testB)");
  require(o.images <= 100000, "--images: at most 100000");
  require(o.force || !is_dataset_folder(folder),
          "--output " + folder +
              ": already holds a dataset (Grade.csv); synth would replace it. Choose a new "
              "folder, or --force to overwrite");
  std::error_code ec;
  const bool created = !std::filesystem::exists(folder, ec);
  make_directories(folder);
  std::vector<uint64_t> seeds;
  const std::vector<GradeRow> rows = synthetic_rows(o, &seeds);
  try {
    save_synthetic_images(folder, rows, seeds, o);
    // Grade.csv last: a folder with a Grade.csv is complete.
    write_file_atomically((std::filesystem::path(folder) / "Grade.csv").string(),
                          format_grade_csv(rows));
  } catch (const Error&) {
    // A full disk, say: a folder this call made holds nothing of the user's,
    // so nothing half-written is left behind (an existing one keeps what was there).
    if (created) std::filesystem::remove_all(folder, ec);
    throw;
  }
}

}  // namespace histocnn

namespace histocnn {
namespace {

// Where datasets made for the user are kept: $HISTOCNN_CACHE, else
// $XDG_CACHE_HOME/histocnn, else ~/.cache/histocnn ("" when none is known).
std::string cache_root() {
  if (const char* dir = std::getenv("HISTOCNN_CACHE"); dir && *dir) return dir;
  if (const char* xdg = std::getenv("XDG_CACHE_HOME"); xdg && *xdg)
    return std::string(xdg) + "/histocnn";
  if (const char* home = std::getenv("HOME"); home && *home)
    return std::string(home) + "/.cache/histocnn";
  return "";
}

}  // namespace

std::string cached_synthetic_dataset(const SynthOptions& o, const std::string& fallback) {
  const std::string root = cache_root();
  // The generator's revision is part of the name: a changed generator never
  // reuses another's images.
  const std::string name = "synthetic-g" + std::to_string(kSynthGeneratorRevision) + "-seed" +
                           std::to_string(o.seed) + "-" + std::to_string(o.images) + "x" +
                           std::to_string(o.images_per_patient) + "-" + std::to_string(o.width) +
                           "x" + std::to_string(o.height) + "-" + o.prefix + "-" + o.format;
  const std::filesystem::path folder = std::filesystem::path(root) / name;
  std::error_code ec;
  if (!root.empty() && std::filesystem::exists(folder / "Grade.csv", ec)) return folder.string();
  if (root.empty() || (std::filesystem::create_directories(root, ec), ec)) {
    if (!std::filesystem::exists(std::filesystem::path(fallback) / "Grade.csv"))
      write_synthetic_dataset(fallback, o);
    return fallback;
  }
  // Written beside its place and renamed into it: a concurrent study either
  // finds it whole or writes its own copy, and one of the two renames wins.
  const std::string partial = folder.string() + ".partial." + std::to_string(::getpid());
  std::filesystem::remove_all(partial, ec);
  write_synthetic_dataset(partial, o);
  std::filesystem::rename(partial, folder, ec);
  if (ec) std::filesystem::remove_all(partial, ec);  // another process's copy is in place
  require(std::filesystem::exists(folder / "Grade.csv"),
          folder.string() + ": the synthetic dataset could not be written to the cache");
  return folder.string();
}

}  // namespace histocnn
