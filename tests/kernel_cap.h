// Tests: run one family of the CPU step's own kernels at most at an ISA while
// in scope (cap_conv_pool, cap_winograd_pool, ...: "avx512", "avx2" or
// "portable"), and at the default after ("avx512": the best the machine
// allows), so each test can run every version the machine has.
#pragma once

#include <string>

namespace histocnn::testing {

class CappedKernels {
 public:
  using Cap = void (*)(const std::string&);
  CappedKernels(Cap cap, const std::string& isa) : cap_(cap) { cap_(isa); }
  ~CappedKernels() { cap_("avx512"); }
  CappedKernels(const CappedKernels&) = delete;
  CappedKernels& operator=(const CappedKernels&) = delete;

 private:
  Cap cap_;
};

}  // namespace histocnn::testing
