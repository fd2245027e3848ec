#include "data/frame_codecs.h"

// clang-format off
#include <cstdio>  // jpeglib.h needs FILE declared first
#include <jpeglib.h>
#include <jerror.h>
// clang-format on
#include <openjpeg.h>

#include <algorithm>
#include <csetjmp>
#include <cstdlib>
#include <cstring>
#include <memory>

#include "core/error.h"

namespace histocnn {
namespace {

// libjpeg reports errors by calling error_exit, which must not return: it
// jumps back to the decoding function, which then throws (no C++ object
// lives across the jump).
struct JpegErrors {
  jpeg_error_mgr manager{};
  std::jmp_buf jump{};
  char message[JMSG_LENGTH_MAX] = {};
};

[[noreturn]] void jpeg_error_exit(j_common_ptr codec) {
  auto* errors = reinterpret_cast<JpegErrors*>(codec->err);
  (*codec->err->format_message)(codec, errors->message);
  std::longjmp(errors->jump, 1);
}

// Warnings are ignored (real scanners' tiles carry harmless ones, such as
// extraneous bytes before a marker) except a stream that ends too early: the
// decoder would fill the rest of the tile with grey and say nothing.
void jpeg_emit_message(j_common_ptr codec, int level) {
  if (level < 0 && codec->err->msg_code == JWRN_JPEG_EOF) jpeg_error_exit(codec);
}

// Decodes into `out` (width x height x 3). False with errors->message set
// when the stream is corrupt or not of these dimensions.
bool jpeg_decode_into(const uint8_t* data, size_t size, int width, int height, JpegColours colours,
                      uint8_t* out, JpegErrors* errors) {
  jpeg_decompress_struct codec{};
  codec.err = jpeg_std_error(&errors->manager);
  errors->manager.error_exit = jpeg_error_exit;
  errors->manager.emit_message = jpeg_emit_message;
  if (setjmp(errors->jump)) {
    jpeg_destroy_decompress(&codec);
    return false;
  }
  jpeg_create_decompress(&codec);
  jpeg_mem_src(&codec, data, static_cast<unsigned long>(size));
  jpeg_read_header(&codec, TRUE);
  if (codec.num_components == 3)
    codec.jpeg_color_space = colours == JpegColours::ycbcr ? JCS_YCbCr : JCS_RGB;
  codec.out_color_space = JCS_RGB;
  jpeg_start_decompress(&codec);
  if (int(codec.output_width) != width || int(codec.output_height) != height ||
      codec.output_components != 3) {
    std::snprintf(errors->message, sizeof errors->message, "a %ux%u JPEG of %d components",
                  codec.output_width, codec.output_height, codec.output_components);
    jpeg_destroy_decompress(&codec);
    return false;
  }
  while (codec.output_scanline < codec.output_height) {
    JSAMPROW row = out + size_t(codec.output_scanline) * size_t(width) * 3;
    jpeg_read_scanlines(&codec, &row, 1);
  }
  jpeg_finish_decompress(&codec);
  jpeg_destroy_decompress(&codec);
  return true;
}

// Encodes into a buffer libjpeg allocates (freed by the caller with free()).
bool jpeg_encode_into(const uint8_t* rgb, int width, int height, int quality,
                      unsigned char** buffer, unsigned long* size, JpegErrors* errors) {
  jpeg_compress_struct codec{};
  codec.err = jpeg_std_error(&errors->manager);
  errors->manager.error_exit = jpeg_error_exit;
  if (setjmp(errors->jump)) {
    jpeg_destroy_compress(&codec);
    return false;
  }
  jpeg_create_compress(&codec);
  jpeg_mem_dest(&codec, buffer, size);
  codec.image_width = JDIMENSION(width);
  codec.image_height = JDIMENSION(height);
  codec.input_components = 3;
  codec.in_color_space = JCS_RGB;
  jpeg_set_defaults(&codec);
  jpeg_set_quality(&codec, quality, TRUE);
  jpeg_start_compress(&codec, TRUE);
  while (codec.next_scanline < codec.image_height) {
    JSAMPROW row = const_cast<uint8_t*>(rgb) + size_t(codec.next_scanline) * size_t(width) * 3;
    jpeg_write_scanlines(&codec, &row, 1);
  }
  jpeg_finish_compress(&codec);
  jpeg_destroy_compress(&codec);
  return true;
}

// OpenJPEG reads its input through callbacks; this is the frame in memory.
struct MemoryStream {
  const uint8_t* data;
  size_t size, position = 0;
};

OPJ_SIZE_T stream_read(void* buffer, OPJ_SIZE_T bytes, void* user) {
  auto* s = static_cast<MemoryStream*>(user);
  const size_t n = std::min<size_t>(bytes, s->size - s->position);
  if (n == 0) return OPJ_SIZE_T(-1);
  std::memcpy(buffer, s->data + s->position, n);
  s->position += n;
  return n;
}
OPJ_OFF_T stream_skip(OPJ_OFF_T bytes, void* user) {
  auto* s = static_cast<MemoryStream*>(user);
  const OPJ_OFF_T n =
      std::clamp<OPJ_OFF_T>(bytes, -OPJ_OFF_T(s->position), OPJ_OFF_T(s->size - s->position));
  s->position = size_t(OPJ_OFF_T(s->position) + n);
  return n;
}
OPJ_BOOL stream_seek(OPJ_OFF_T to, void* user) {
  auto* s = static_cast<MemoryStream*>(user);
  if (to < 0 || size_t(to) > s->size) return OPJ_FALSE;
  s->position = size_t(to);
  return OPJ_TRUE;
}
void keep_opj_error(const char* message, void* user) {
  auto* kept = static_cast<std::string*>(user);
  if (kept->empty()) *kept = message;
  while (!kept->empty() && (kept->back() == '\n' || kept->back() == ' ')) kept->pop_back();
}
void ignore_opj_message(const char*, void*) {}

struct OpjCodecCloser {
  void operator()(opj_codec_t* c) const { opj_destroy_codec(c); }
};
struct OpjStreamCloser {
  void operator()(opj_stream_t* s) const { opj_stream_destroy(s); }
};
struct OpjImageCloser {
  void operator()(opj_image_t* i) const { opj_image_destroy(i); }
};

bool is_jp2_file(const uint8_t* data, size_t size) {
  static const uint8_t kSignature[] = {0, 0, 0, 12, 'j', 'P', ' ', ' '};
  return size >= sizeof kSignature && std::memcmp(data, kSignature, sizeof kSignature) == 0;
}

// The decoded image, or nullptr with `error` saying why.
std::unique_ptr<opj_image_t, OpjImageCloser> opj_decode_memory(const uint8_t* data, size_t size,
                                                               std::string* error) {
  std::unique_ptr<opj_codec_t, OpjCodecCloser> codec(
      opj_create_decompress(is_jp2_file(data, size) ? OPJ_CODEC_JP2 : OPJ_CODEC_J2K));
  opj_set_error_handler(codec.get(), keep_opj_error, error);
  opj_set_warning_handler(codec.get(), ignore_opj_message, nullptr);
  opj_set_info_handler(codec.get(), ignore_opj_message, nullptr);
  opj_dparameters_t parameters;
  opj_set_default_decoder_parameters(&parameters);
  if (!opj_setup_decoder(codec.get(), &parameters)) return nullptr;
  MemoryStream memory{data, size};
  std::unique_ptr<opj_stream_t, OpjStreamCloser> stream(opj_stream_create(1 << 16, OPJ_TRUE));
  opj_stream_set_user_data(stream.get(), &memory, nullptr);
  opj_stream_set_user_data_length(stream.get(), size);
  opj_stream_set_read_function(stream.get(), stream_read);
  opj_stream_set_skip_function(stream.get(), stream_skip);
  opj_stream_set_seek_function(stream.get(), stream_seek);
  opj_image_t* raw = nullptr;
  if (!opj_read_header(stream.get(), codec.get(), &raw)) return nullptr;
  std::unique_ptr<opj_image_t, OpjImageCloser> image(raw);
  if (!opj_decode(codec.get(), stream.get(), image.get()) ||
      !opj_end_decompress(codec.get(), stream.get()))
    return nullptr;
  return image;
}

}  // namespace

std::vector<uint8_t> decode_jpeg_rgb(const uint8_t* data, size_t size, int width, int height,
                                     JpegColours colours) {
  std::vector<uint8_t> rgb(size_t(width) * size_t(height) * 3);
  auto errors = std::make_unique<JpegErrors>();
  require(jpeg_decode_into(data, size, width, height, colours, rgb.data(), errors.get()),
          std::string("corrupt JPEG frame (") + errors->message + ")");
  return rgb;
}

std::vector<uint8_t> decode_jpeg2000_rgb(const uint8_t* data, size_t size, int width, int height) {
  std::string error;
  auto image = opj_decode_memory(data, size, &error);
  require(image != nullptr,
          "corrupt JPEG 2000 frame (" + (error.empty() ? "unreadable" : error) + ")");
  require(image->numcomps >= 3,
          "a JPEG 2000 frame of " + std::to_string(image->numcomps) + " components (RGB needs 3)");
  for (int c = 0; c < 3; ++c) {
    const opj_image_comp_t& comp = image->comps[c];
    require(int(comp.w) == width && int(comp.h) == height && comp.dx == 1 && comp.dy == 1,
            "a JPEG 2000 frame of " + std::to_string(comp.w) + "x" + std::to_string(comp.h) +
                " pixels in component " + std::to_string(c) + " (expected " +
                std::to_string(width) + "x" + std::to_string(height) + ")");
    require(comp.prec == 8 && !comp.sgnd, "a JPEG 2000 frame of " + std::to_string(comp.prec) +
                                              "-bit samples (8-bit unsigned needed)");
  }
  std::vector<uint8_t> rgb(size_t(width) * size_t(height) * 3);
  for (size_t i = 0; i < size_t(width) * size_t(height); ++i)
    for (int c = 0; c < 3; ++c)
      rgb[3 * i + size_t(c)] = uint8_t(std::clamp(image->comps[c].data[i], 0, 255));
  return rgb;
}

std::vector<uint8_t> encode_jpeg_rgb(const uint8_t* rgb, int width, int height, int quality) {
  require(quality >= 1 && quality <= 100, "JPEG quality must be 1..100");
  unsigned char* buffer = nullptr;
  unsigned long size = 0;
  auto errors = std::make_unique<JpegErrors>();
  const bool ok = jpeg_encode_into(rgb, width, height, quality, &buffer, &size, errors.get());
  std::vector<uint8_t> out;
  if (ok) out.assign(buffer, buffer + size);
  std::free(buffer);
  require(ok, std::string("cannot encode a JPEG frame (") + errors->message + ")");
  return out;
}

}  // namespace histocnn
