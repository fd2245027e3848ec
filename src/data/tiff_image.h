// TIFF images through libtiff: any TIFF an H&E image comes in (strips or
// tiles, JPEG/LZW/Deflate/none, 8 or 16 bits, RGB or YCbCr), decoded to 8-bit
// RGB. Pyramidal slides go through data/slide.h instead; this is for images
// small enough to hold (the same size cap as the other formats).
#pragma once

#include <cstdint>
#include <string>
#include <utility>

#include "data/image.h"

namespace histocnn {

// True when the bytes start with a TIFF or BigTIFF signature.
bool is_tiff_signature(const std::string& first_bytes);
// The first page of `path`. Errors (not a TIFF, truncated, grayscale, too many
// pixels) raise an Error naming the file and what libtiff said.
Image load_tiff_image(const std::string& path);
// The first page's width and height, from its directory alone.
std::pair<int, int> tiff_image_size(const std::string& path);
// Whether `path` is a TIFF whose first page is over `side` pixels on a side
// and is followed by more pages or SubIFDs: a whole slide's pyramid. False
// for anything else (other files, unreadable TIFFs: the reader says why).
bool is_large_pyramidal_tiff(const std::string& path, int64_t side);
// The size of the first page after the first (among the first 64) with over
// four times its pixels, if any: a file whose main image is not its first
// page (an OME-TIFF that stores an overview photograph first). {0, 0} when
// there is none or `path` is not a readable TIFF.
std::pair<int64_t, int64_t> larger_later_tiff_page(const std::string& path);

// libtiff reports through process-wide handlers. These keep each thread's
// last error for its Error message and drop warnings (unknown private tags
// are common in scanner files): call tiff_errors_to_this_thread() before
// libtiff calls, and last_tiff_error_message() after one failed.
void tiff_errors_to_this_thread();
std::string last_tiff_error_message();

}  // namespace histocnn
