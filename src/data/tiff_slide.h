// A direct libtiff reader for tiled pyramidal TIFF slides (OpenSlide's
// "generic-tiff" and "aperio" formats: one tiled directory per level, JPEG
// YCbCr/RGB, LZW, Deflate or uncompressed 8-bit RGB tiles, interleaved or
// in three planes), and for a
// pyramid kept in level 0's SubIFDs (OME-TIFF as Bio-Formats, QuPath and
// bfconvert write it; libvips' `--subifd`), which OpenSlide 3.4 does not
// see: without this reader such a slide is one level, and its thumbnail and
// every coarse read decode level 0.
//
// Why: OpenSlide 3.4 paints every read_region through cairo, whose
// compositing was half the reading profile (docs/results/slide-throughput.md),
// while a region that starts on a whole pixel of its level is only a copy of
// decoded tiles. This reader decodes tiles with libtiff (libjpeg-turbo, the
// same decoder OpenSlide uses, so the same pixels), keeps recent tiles in a
// small cache (the tiling reads each tile row in several row groups), and
// hands every other request to the OpenSlide reader it wraps: a region that
// starts between level pixels (OpenSlide resamples it), and any slide it
// cannot decode.
//
// "On a level pixel" means the level-0 start (x, y) is within half a level-0
// pixel of k * downsample. With a whole downsample (2, 4: the usual pyramid)
// that is exact alignment and the pixels equal OpenSlide's; with the
// fractional downsample of an odd-sized level (OpenSlide averages the two
// axes' ratios: 8.0094) no whole x is exactly aligned, and this reader
// returns level pixel k itself where OpenSlide resamples by the fraction
// (a blur of up to 0.06 pixel): the region the tiling asked for.
//
// SubIFD levels: when level 0's directory lists SubIFDs, the pyramid is
// level 0 and those of them this reader decodes (largest first, each smaller
// than the one before; the others are named in reader_note), and OpenSlide's
// other levels are dropped (in such a file the main chain holds other images:
// a label, a macro photograph). OpenSlide cannot read the SubIFD levels, so
// a read between their level pixels starts at the nearest one (less than
// half a level pixel off) instead of being resampled.
//
// Contract: the Slide contract (data/slide.h); format and microns per pixel
// are the wrapped reader's, and so are the levels but for a SubIFD pyramid.
// read_region is thread-safe: each thread takes its own libtiff handle of the
// level from a pool.
#pragma once

#include <memory>
#include <string>

#include "data/slide.h"

namespace histocnn {

// `openslide` read `path` as generic-tiff, ome-tiff or aperio. Returns the direct reader
// when every level is a tiled directory this reader can decode with the
// dimensions OpenSlide reports and none of its tiles is empty (Aperio's
// missing tiles, which OpenSlide paints from the finer level; directories
// that are not levels, like Aperio's stripped thumbnail, are passed over),
// else `openslide` itself (a note says why on
// stderr when HISTOCNN_VERBOSE is set).
std::unique_ptr<Slide> with_direct_tiff_reads(std::unique_ptr<Slide> openslide,
                                              size_t cache_bytes = size_t(64) << 20);

}  // namespace histocnn
