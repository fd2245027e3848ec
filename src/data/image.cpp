#include "data/image.h"

#include <png.h>
#include <stb_image.h>
#include <stb_image_resize.h>
#include <stb_image_write.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <memory>

#include "core/atomic_file.h"
#include "core/error.h"
#include "data/tiff_image.h"

namespace histocnn {

namespace {
std::string extension_of(const std::string& path) {
  std::string ext = std::filesystem::path(path).extension().string();
  std::transform(ext.begin(), ext.end(), ext.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  return ext;
}
}  // namespace

Image load_image(const std::string& path) {
  const std::string bytes = read_file(path);  // checks the type and size first
  if (is_tiff_signature(bytes)) return load_tiff_image(path);
  return decode_image(bytes, path);
}

std::pair<int, int> read_image_size(const std::string& path) {
  const std::unique_ptr<FILE, int (*)(FILE*)> file(std::fopen(path.c_str(), "rb"), std::fclose);
  require(file != nullptr, path + ": cannot open the image");
  std::string head(4, '\0');
  head.resize(std::fread(head.data(), 1, head.size(), file.get()));
  if (is_tiff_signature(head)) return tiff_image_size(path);
  std::rewind(file.get());
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_file(file.get(), &w, &h, &channels))
    fail(path + ": not a readable image (" + stbi_failure_reason() + ")");
  return {w, h};
}

Image decode_image(const std::string& bytes, const std::string& path) {
  require(!bytes.empty(), path + ": empty image file");
  require(bytes.size() < (size_t(1) << 31), path + ": image file larger than 2 GB");
  const auto* data = reinterpret_cast<const stbi_uc*>(bytes.data());
  int w = 0, h = 0, channels = 0;
  if (!stbi_info_from_memory(data, int(bytes.size()), &w, &h, &channels))
    fail(path + ": not a readable image (" + stbi_failure_reason() + ")");
  // A header may claim any size: refuse what no slide tile is before decoding.
  require(w > 0 && h > 0 && w <= 32768 && h <= 32768 && int64_t(w) * h <= (int64_t(1) << 28),
          path + ": image claims " + std::to_string(w) + "x" + std::to_string(h) +
              " pixels (at most 32768 per side and 268 megapixels)");
  require(channels >= 3, path + ": grayscale image (" + std::to_string(channels) +
                             " channel); H&E images must be RGB");
  stbi_uc* pixels = stbi_load_from_memory(data, int(bytes.size()), &w, &h, &channels, 3);
  if (!pixels) fail(path + ": corrupt or truncated image (" + stbi_failure_reason() + ")");
  Image image;
  image.width = w;
  image.height = h;
  image.rgb.assign(pixels, pixels + size_t(w) * h * 3);
  stbi_image_free(pixels);
  return image;
}

namespace {
void append_bytes(void* context, void* data, int size) {
  static_cast<std::string*>(context)->append(static_cast<const char*>(data), size_t(size));
}

// libpng's simplified writer with PNG_IMAGE_FLAG_FAST (its speed-first
// filter and zlib settings): files about the size stb_image_write makes at
// its level 8, written 4-7x faster (a slide's tissue mask and heatmap
// overlay: 32 ms against 216 ms on the 2-core VM); every slide, tile export
// and explanation writes PNGs.
std::string encode_png(const Image& image, const std::string& path) {
  png_image png{};
  png.version = PNG_IMAGE_VERSION;
  png.width = png_uint_32(image.width);
  png.height = png_uint_32(image.height);
  png.format = PNG_FORMAT_RGB;
  png.flags = PNG_IMAGE_FLAG_FAST;
  png_alloc_size_t size = PNG_IMAGE_PNG_SIZE_MAX(png);
  std::string bytes(size, '\0');
  const int ok = png_image_write_to_memory(&png, bytes.data(), &size, 0, image.rgb.data(),
                                           image.width * 3, nullptr);
  png_image_free(&png);
  if (!ok) fail(path + ": PNG encoding failed (" + png.message + ")");
  bytes.resize(size);
  return bytes;
}

}  // namespace

void save_image(const std::string& path, const Image& image) {
  const std::string ext = extension_of(path);
  std::string bytes;
  int ok = 1;
  if (ext == ".png")
    bytes = encode_png(image, path);
  else if (ext == ".bmp")
    ok = stbi_write_bmp_to_func(append_bytes, &bytes, image.width, image.height, 3,
                                image.rgb.data());
  else if (ext == ".jpg" || ext == ".jpeg")
    ok = stbi_write_jpg_to_func(append_bytes, &bytes, image.width, image.height, 3,
                                image.rgb.data(), 95);
  else
    fail(path + ": unknown image extension (use .png, .bmp or .jpg)");
  require(ok != 0, path + ": image encoding failed");
  write_file_atomically(path, bytes);
}

Image resize_area(const Image& src, int width, int height) {
  require(width > 0 && height > 0, "resize to an empty image");
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(size_t(width) * height * 3);
  if (width == src.width && height == src.height) {
    out.rgb = src.rgb;
    return out;
  }
  // Box filter = area averaging when shrinking; sRGB-agnostic (linear on the
  // stored values), as OpenCV's INTER_AREA and Keras' loaders do.
  const int ok = stbir_resize_uint8_generic(src.rgb.data(), src.width, src.height, src.width * 3,
                                            out.rgb.data(), width, height, width * 3, 3,
                                            STBIR_ALPHA_CHANNEL_NONE, 0, STBIR_EDGE_CLAMP,
                                            STBIR_FILTER_BOX, STBIR_COLORSPACE_LINEAR, nullptr);
  require(ok != 0, "image resize failed");
  return out;
}

Image crop(const Image& src, int x, int y, int width, int height) {
  require(x >= 0 && y >= 0 && x + width <= src.width && y + height <= src.height,
          "crop outside the image");
  Image out;
  out.width = width;
  out.height = height;
  out.rgb.resize(size_t(width) * height * 3);
  for (int r = 0; r < height; ++r)
    std::memcpy(out.row(r), src.row(y + r) + size_t(x) * 3, size_t(width) * 3);
  return out;
}

}  // namespace histocnn
