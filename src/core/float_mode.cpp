#include "core/float_mode.h"

#if defined(__SSE2__)
#include <xmmintrin.h>
#endif

namespace histocnn {
namespace {

#if defined(__SSE2__)
constexpr unsigned kFlushToZero = 0x8000, kDenormalsAreZero = 0x0040;
#endif

}  // namespace

FlushDenormals::FlushDenormals(bool enabled) {
#if defined(__SSE2__)
  if (!enabled) return;
  saved_ = _mm_getcsr();
  active_ = true;
  const unsigned mode = saved_ | kFlushToZero | kDenormalsAreZero;
  _mm_setcsr(mode);
#pragma omp parallel
  _mm_setcsr(_mm_getcsr() | kFlushToZero | kDenormalsAreZero);
#else
  (void)enabled;
#endif
}

FlushDenormals::~FlushDenormals() {
#if defined(__SSE2__)
  if (active_) _mm_setcsr(saved_);
#endif
}

bool denormals_flushed() {
#if defined(__SSE2__)
  const unsigned both = kFlushToZero | kDenormalsAreZero;
  return (_mm_getcsr() & both) == both;
#else
  return false;
#endif
}

}  // namespace histocnn
