// The fused Winograd forward of a later block
// (backends/cpu/winograd_pool_kernels.h) against a double-precision
// convolution + bias + ReLU + 2x2 max pool written here: maps with odd
// pooled sides (a tile's second window row or column past the map), groups
// of 4, 8 and 12 tiles and a row of more than 12, output channels in 32s
// and a leftover 16, 'valid' and 'same' padding; every element written,
// the same bits on any thread count. Each case runs the AVX-512 version
// (nChw16c) and the AVX2 one (nChw8c), each capped in turn, where the
// machine runs it; the two give the same bits. And each on fp32 maps and on
// bf16 ones (--precision bf16), where the result must be the fp32 kernel's
// on the same input, rounded once, to the bit (the kernel needs no bf16
// instructions: these run on any AVX2 machine).
#include <gtest/gtest.h>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <dnnl.hpp>
#include <tuple>

#include "backends/cpu/kernel_isa.h"
#include "backends/cpu/winograd_pool_kernels.h"
#include "core/bf16.h"
#include "kernel_cap.h"
#include "onednn_layouts.h"
#include "test_util.h"

namespace histocnn::cpu {
namespace winograd_pool_test {  // named: unity builds share anonymous namespaces

using Mem = dnnl::memory;
using tag = Mem::format_tag;
using dt = Mem::data_type;

struct WinogradCase {
  std::string name;
  int n, in_c, out_c, h, w, pad;
};
void PrintTo(const WinogradCase& c, std::ostream* os) {
  *os << c.name;
}

std::vector<float> uniform(size_t count, uint64_t seed, float scale) {
  return testing::random_vector(count, seed, -scale, scale);
}

// The case's input map: in bf16 rounded to it here, so the reference and
// the fp32 kernel see the values the bf16 kernel reads.
std::vector<float> input_map(const WinogradCase& k, uint64_t seed, dt type) {
  std::vector<float> x = uniform(size_t(k.n) * k.in_c * k.h * k.w, seed, 1.0f);
  if (type == dt::bf16)
    for (float& v : x) v = round_to_bf16(v);
  return x;
}

std::string precision_name(dt type) {
  return type == dt::bf16 ? "bf16" : "fp32";
}

// The case's block in double, plain NCHW: conv output after bias and ReLU,
// and the sum of |terms| of each output (the scale its rounding error has).
struct Reference {
  const WinogradCase& k;
  const std::vector<float>& x;
  const std::vector<float>& w;
  const std::vector<float>& b;
  int conv_h() const { return k.h + 2 * k.pad - 2; }
  int conv_w() const { return k.w + 2 * k.pad - 2; }
  void at(int n, int o, int y, int x0, double* act, double* scale) const {
    double sum = b[o], size = std::abs(b[o]);
    for (int c = 0; c < k.in_c; ++c)
      for (int ky = 0; ky < 3; ++ky)
        for (int kx = 0; kx < 3; ++kx) {
          const int iy = y + ky - k.pad, ix = x0 + kx - k.pad;
          if (iy < 0 || ix < 0 || iy >= k.h || ix >= k.w) continue;
          const double term = double(w[((o * k.in_c + c) * 3 + ky) * 3 + kx]) *
                              x[((int64_t(n) * k.in_c + c) * k.h + iy) * k.w + ix];
          sum += term, size += std::abs(term);
        }
    *act = std::max(sum, 0.0), *scale = size;
  }
};

// Whether the machine runs version `isa`.
bool runs(const std::string& isa) {
  const testing::CappedKernels cap(cap_winograd_pool, isa);
  return winograd_pool_available() && winograd_pool_isa() == isa;
}

// The channels a block of a version's layout: 16 for AVX-512, 8 for AVX2.
int lanes_of(const std::string& isa) {
  return isa == "avx512" ? 16 : 8;
}

// The blocked layout of a version: nChw16c for AVX-512, nChw8c for AVX2.
tag blocks_of(const std::string& isa) {
  return lanes_of(isa) == 16 ? tag::nChw16c : tag::nChw8c;
}

// Whether version `isa` (the one capped) takes the case's shapes in its own
// layout (channels padded up to the lanes where they are not a multiple).
bool applies_to(const WinogradCase& k, const std::string& isa) {
  const int ph = (k.h + 2 * k.pad - 2) / 2, pw = (k.w + 2 * k.pad - 2) / 2;
  const auto in = lane_layout(Mem::desc({k.n, k.in_c, k.h, k.w}, dt::f32, blocks_of(isa)));
  const auto out = lane_layout(Mem::desc({k.n, k.out_c, ph, pw}, dt::f32, blocks_of(isa)));
  return in && out && winograd_pool_applies(*in, *out, PooledConv{k.in_c, k.out_c, 3, k.pad, 2});
}

using VersionCase = std::tuple<WinogradCase, std::string, dt>;
void PrintTo(const VersionCase& v, std::ostream* os) {  // not the enum's bytes
  *os << std::get<0>(v).name << ", " << std::get<1>(v) << ", " << precision_name(std::get<2>(v));
}

class CpuWinogradPool : public ::testing::TestWithParam<VersionCase>,
                        protected testing::OneDnnLayouts {
 protected:
  void SetUp() override {
    isa_ = std::get<1>(GetParam());
    type_ = std::get<2>(GetParam());
    if (!runs(isa_)) GTEST_SKIP() << "this machine does not run the " << isa_ << " version";
    cap_winograd_pool(isa_);
    const WinogradCase& k = std::get<0>(GetParam());
    if (k.in_c % lanes_of(isa_) != 0 || k.out_c % lanes_of(isa_) != 0) {
      // The step falls back to oneDNN there: the version must say it cannot run.
      EXPECT_FALSE(applies_to(k, isa_)) << k.name << ": channels not in " << isa_ << "'s lanes";
      GTEST_SKIP() << "channels not in the " << isa_ << " version's lanes (it refuses them)";
    }
  }
  void TearDown() override { cap_winograd_pool("avx512"); }
  std::string isa_;
  dt type_ = dt::f32;
  struct Run {
    std::vector<float> pooled;  // plain NCHW
    std::vector<uint8_t> argmax;
    std::vector<uint8_t> raw;  // the pooled map's bytes, in its layout
  };
  // The kernel on maps of `type` (the case's precision unless named).
  Run run(const WinogradCase& k, const std::vector<float>& x, const std::vector<float>& w,
          const std::vector<float>& b, int threads) {
    return run(k, x, w, b, threads, type_);
  }
  // A bf16 run `got`: the fp32 kernel's result on the same (bf16) input,
  // each maximum rounded once to the nearest bf16, and the same argmax
  // bytes, to the bit.
  void expect_fp32_rounded_once(const WinogradCase& k, const std::vector<float>& x,
                                const std::vector<float>& w, const std::vector<float>& b,
                                const Run& got) {
    const Run fp32 = run(k, x, w, b, 2, dt::f32);
    ASSERT_EQ(got.pooled.size(), fp32.pooled.size());
    size_t rounded = 0;
    for (size_t i = 0; i < got.pooled.size(); ++i) {
      const float want = round_to_bf16(fp32.pooled[i]);
      ASSERT_EQ(std::memcmp(&got.pooled[i], &want, sizeof want), 0)
          << k.name << " element " << i << ": " << got.pooled[i] << " against " << want;
      rounded += got.pooled[i] != fp32.pooled[i] ? 1 : 0;
    }
    EXPECT_EQ(got.argmax, fp32.argmax) << k.name;
    EXPECT_GT(rounded, got.pooled.size() / 2) << "the bf16 run kept fp32's bits: not rounded?";
  }
  Run run(const WinogradCase& k, const std::vector<float>& x, const std::vector<float>& w,
          const std::vector<float>& b, int threads, dt type) {
    const int ph = (k.h + 2 * k.pad - 2) / 2, pw = (k.w + 2 * k.pad - 2) / 2;
    const Mem::desc plain_x({k.n, k.in_c, k.h, k.w}, dt::f32, tag::nchw);
    const Mem::desc plain_p({k.n, k.out_c, ph, pw}, dt::f32, tag::nchw);
    const Mem::desc md_x({k.n, k.in_c, k.h, k.w}, type, blocks_of(isa_));
    const Mem::desc md_p({k.n, k.out_c, ph, pw}, type, blocks_of(isa_));
    const Mem x_l = to_layout(x, plain_x, md_x);
    Mem pooled(md_p, engine());
    const auto in = lane_layout(md_x), out = lane_layout(md_p);
    const PooledConv conv{k.in_c, k.out_c, 3, k.pad, 2};
    EXPECT_TRUE(in && out && winograd_pool_applies(*in, *out, conv));
    std::vector<float> u(winograd_weights_floats(conv));
    winograd_transform_weights(w.data(), conv, u.data());
    std::memset(pooled.get_data_handle(), 0xff, md_p.get_size());  // NaN in fp32 and in bf16
    Run r;
    r.argmax.assign(md_p.get_size(), 0xff);
    HostFloats scratch;
    const int before = omp_get_max_threads();
    omp_set_num_threads(threads);
    winograd_pool_forward(type, x_l.get_data_handle(), *in, u.data(), b.data(),
                          pooled.get_data_handle(), r.argmax.data(), *out, conv, scratch);
    omp_set_num_threads(before);
    const auto* bytes = static_cast<const uint8_t*>(pooled.get_data_handle());
    r.raw.assign(bytes, bytes + md_p.get_size());
    r.pooled = to_nchw(pooled, plain_p);
    // The argmax bytes in the pooled layout, read back in NCHW order.
    const Mem::desc plain_bytes({k.n, k.out_c, ph, pw}, dt::u8, tag::nchw);
    const Mem::desc md_bytes({k.n, k.out_c, ph, pw}, dt::u8, blocks_of(isa_));
    Mem from(md_bytes, engine(), r.argmax.data());
    std::vector<uint8_t> nchw(plain_bytes.get_size());
    Mem to(plain_bytes, engine(), nchw.data());
    dnnl::stream s(engine());
    dnnl::reorder(from, to).execute(s, from, to);
    s.wait();
    r.argmax = nchw;
    return r;
  }
};

TEST_P(CpuWinogradPool, EqualsTheReferenceConvolutionAndPool) {
  const WinogradCase& k = std::get<0>(GetParam());
  const auto x = input_map(k, 11, type_);
  const auto w = uniform(size_t(k.out_c) * k.in_c * 9, 12, 0.3f);
  const auto b = uniform(size_t(k.out_c), 13, 0.2f);
  const Run got = run(k, x, w, b, 2);
  const Reference ref{k, x, w, b};
  const int ph = ref.conv_h() / 2, pw = ref.conv_w() / 2;
  // bf16 keeps 8 significant bits: its rounding, 2^-9 of the value at most.
  const double rounding = type_ == dt::bf16 ? 1.0 / 256 : 0.0;
  size_t argmax_checked = 0, i = 0, flagged = 0;
  for (int n = 0; n < k.n; ++n)
    for (int o = 0; o < k.out_c; ++o)
      for (int py = 0; py < ph; ++py)
        for (int px = 0; px < pw; ++px, ++i) {
          double act[4], scale[4], best = -1, second = -1, worst_scale = 0;
          int where = 0;
          for (int q = 0; q < 4; ++q) {
            ref.at(n, o, 2 * py + q / 2, 2 * px + q % 2, &act[q], &scale[q]);
            worst_scale = std::max(worst_scale, scale[q]);
            if (act[q] > best)
              second = best, best = act[q], where = q;
            else
              second = std::max(second, act[q]);
          }
          ASSERT_FALSE(std::isnan(got.pooled[i])) << k.name << ": element " << i << " unwritten";
          // Winograd's rounding: a few ulps of the terms' magnitudes.
          ASSERT_NEAR(got.pooled[i], best, 2e-6 * worst_scale + 1e-7 + rounding * best)
              << k.name << " at n " << n << " o " << o << " (" << py << ", " << px << ")";
          // The flag: exactly where the stored maximum is not positive.
          ASSERT_EQ(argmax_passes(got.argmax[i]), got.pooled[i] > 0)
              << k.name << " at n " << n << " o " << o << " (" << py << ", " << px << ")";
          flagged += argmax_passes(got.argmax[i]) ? 0 : 1;
          // The first maximum, where the window's top two are told apart
          // by more than the rounding (ties of zeros: the first, 0).
          if (best == 0.0 || best - second > 1e-4 * worst_scale) {
            ASSERT_EQ(argmax_position(got.argmax[i]), best == 0.0 ? 0 : where)
                << k.name << " at n " << n << " o " << o << " (" << py << ", " << px << ")";
            ++argmax_checked;
          }
        }
  EXPECT_GT(argmax_checked, i * 9 / 10) << "too few windows told apart to check the argmax";
  (void)flagged;  // every window's flag checked; NotPositiveWindowsAreFlagged makes sure of some
  if (type_ == dt::bf16) expect_fp32_rounded_once(k, x, w, b, got);
}

// A bias of -1000 on every other output channel (beyond any sum of the
// inputs: at most in_c x 9 x 1 x 0.3) keeps its whole map at zero
// after the ReLU: every one of its windows flagged, and (the cases' other
// channels) most of the rest not.
TEST_P(CpuWinogradPool, NotPositiveWindowsAreFlagged) {
  const WinogradCase& k = std::get<0>(GetParam());
  const auto x = input_map(k, 11, type_);
  const auto w = uniform(size_t(k.out_c) * k.in_c * 9, 12, 0.3f);
  auto b = uniform(size_t(k.out_c), 13, 0.2f);
  for (size_t o = 1; o < b.size(); o += 2) b[o] = -1000.0f;
  const Run got = run(k, x, w, b, 2);
  const Reference ref{k, x, w, b};
  const size_t plane = size_t(ref.conv_h() / 2) * size_t(ref.conv_w() / 2);
  size_t passing = 0;
  for (size_t i = 0; i < got.argmax.size(); ++i) {
    ASSERT_EQ(argmax_passes(got.argmax[i]), got.pooled[i] > 0) << k.name << " element " << i;
    if ((i / plane) % size_t(k.out_c) % 2 == 1) {
      ASSERT_FALSE(argmax_passes(got.argmax[i])) << k.name << " element " << i;
    }
    passing += argmax_passes(got.argmax[i]) ? 1 : 0;
  }
  EXPECT_GT(passing, 0u) << k.name;
}

TEST_P(CpuWinogradPool, TheSameBitsOnAnyThreadCount) {
  const WinogradCase& k = std::get<0>(GetParam());
  const auto x = input_map(k, 21, type_);
  const auto w = uniform(size_t(k.out_c) * k.in_c * 9, 22, 0.3f);
  const auto b = uniform(size_t(k.out_c), 23, 0.2f);
  const Run one = run(k, x, w, b, 1), three = run(k, x, w, b, 3);
  EXPECT_EQ(one.raw, three.raw) << k.name;
  EXPECT_EQ(one.argmax, three.argmax) << k.name;
}

std::vector<WinogradCase> winograd_cases() {
  return {// 13 -> conv 11 -> pooled 5: odd, the last tile's second window past the map.
          WinogradCase{"valid_odd_32to32_group4", 2, 32, 32, 13, 13, 0},
          WinogradCase{"valid_32to64_group8", 1, 32, 64, 30, 26, 0},
          // 60 wide -> 15 tiles a row: a group of 12, then one of 4 (3 live).
          WinogradCase{"valid_row_of_15_tiles", 1, 32, 32, 20, 60, 0},
          WinogradCase{"valid_16to48_leftover_16", 2, 16, 48, 11, 10, 0},
          WinogradCase{"same_pad_32to32", 2, 32, 32, 9, 14, 1},
          WinogradCase{"same_pad_1x1_pooled", 1, 16, 16, 2, 3, 1},
          // Channels in eights, not sixteens (the AVX2 version runs them,
          // the AVX-512 one must refuse them): a leftover 8 in the GEMM,
          // and 8 -> 8, one block each way.
          WinogradCase{"valid_24to40_group12", 1, 24, 40, 14, 50, 0},
          WinogradCase{"same_pad_8to8", 2, 8, 8, 10, 9, 1}};
}

INSTANTIATE_TEST_SUITE_P(Shapes, CpuWinogradPool,
                         ::testing::Combine(::testing::ValuesIn(winograd_cases()),
                                            ::testing::Values("avx512", "avx2"),
                                            ::testing::Values(dt::f32, dt::bf16)),
                         [](const ::testing::TestParamInfo<VersionCase>& info) {
                           return std::get<0>(info.param).name + "_" + std::get<1>(info.param) +
                                  "_" + precision_name(std::get<2>(info.param));
                         });

// Both versions take each output's terms in one order: the same pooled map
// and argmax bytes to the bit (where the machine runs both), in fp32 and bf16.
TEST(CpuWinogradPoolVersions, GiveTheSameBits) {
  if (!runs("avx512") || !runs("avx2")) GTEST_SKIP() << "needs both versions";
  testing::OneDnnLayouts layouts;
  const WinogradCase k{"paper_conv2_like", 2, 32, 32, 27, 30, 0};
  const auto w = uniform(size_t(k.out_c) * k.in_c * 9, 32, 0.3f);
  const auto b = uniform(size_t(k.out_c), 33, 0.2f);
  const PooledConv conv{k.in_c, k.out_c, 3, k.pad, 2};
  std::vector<float> u(winograd_weights_floats(conv));
  winograd_transform_weights(w.data(), conv, u.data());
  const int ph = (k.h - 2) / 2, pw = (k.w - 2) / 2;
  const Mem::desc plain_x({k.n, k.in_c, k.h, k.w}, dt::f32, tag::nchw);
  const Mem::desc plain_p({k.n, k.out_c, ph, pw}, dt::f32, tag::nchw);
  for (const dt type : {dt::f32, dt::bf16}) {
    const auto x = input_map(k, 31, type);
    const auto run = [&](const std::string& isa) {
      const testing::CappedKernels cap(cap_winograd_pool, isa);
      const Mem::desc md_x({k.n, k.in_c, k.h, k.w}, type, blocks_of(isa));
      const Mem::desc md_p({k.n, k.out_c, ph, pw}, type, blocks_of(isa));
      const Mem x_l = layouts.to_layout(x, plain_x, md_x);
      Mem pooled(md_p, layouts.engine());
      std::vector<uint8_t> argmax(md_p.get_size());
      HostFloats scratch;
      winograd_pool_forward(type, x_l.get_data_handle(), *lane_layout(md_x), u.data(), b.data(),
                            pooled.get_data_handle(), argmax.data(), *lane_layout(md_p), conv,
                            scratch);
      // The argmax bytes in NCHW order: the versions' layouts differ.
      const Mem::desc bytes_l({k.n, k.out_c, ph, pw}, dt::u8, blocks_of(isa));
      const Mem::desc bytes_plain({k.n, k.out_c, ph, pw}, dt::u8, tag::nchw);
      std::vector<uint8_t> nchw(bytes_plain.get_size());
      Mem from(bytes_l, layouts.engine(), argmax.data()),
          to(bytes_plain, layouts.engine(), nchw.data());
      dnnl::stream s(layouts.engine());
      dnnl::reorder(from, to).execute(s, from, to);
      s.wait();
      return std::make_pair(layouts.to_nchw(pooled, plain_p), nchw);
    };
    const auto wide = run("avx512"), narrow = run("avx2");
    ASSERT_EQ(wide.first.size(), narrow.first.size());
    EXPECT_EQ(
        std::memcmp(wide.first.data(), narrow.first.data(), wide.first.size() * sizeof(float)), 0)
        << precision_name(type);
    EXPECT_EQ(wide.second, narrow.second) << precision_name(type);
  }
}

TEST(CpuWinogradPoolVersions, RunTheBestWithinTheirCap) {
  {
    const testing::CappedKernels cap(cap_winograd_pool, "portable");
    EXPECT_FALSE(winograd_pool_available());
    EXPECT_EQ(winograd_pool_isa(), "portable");
  }
  EXPECT_EQ(winograd_pool_isa(), kernel_isa_name(machine_kernel_isa()));
  EXPECT_EQ(winograd_pool_available(), machine_kernel_isa() >= KernelIsa::avx2);
  EXPECT_THROW(cap_winograd_pool("neon"), Error);
}

TEST(CpuWinogradPoolApplies, TakesOnly3x3WithA2x2PoolInBlocksOf16) {
  if (!runs("avx512")) GTEST_SKIP() << "the AVX-512 version's blocks";
  const testing::CappedKernels cap(cap_winograd_pool, "avx512");
  LaneLayout in{1, 20, 20, 2, 16, 0, 0, 0, 16}, out{1, 9, 9, 2, 16, 0, 0, 0, 16};
  EXPECT_TRUE(winograd_pool_applies(in, out, {32, 32, 3, 0, 2}));
  EXPECT_FALSE(winograd_pool_applies(in, out, {32, 32, 5, 0, 2})) << "kernel 5";
  EXPECT_FALSE(winograd_pool_applies(in, out, {32, 32, 3, 0, 3})) << "pool 3";
  EXPECT_FALSE(winograd_pool_applies(in, out, {32, 32, 3, 2, 2})) << "pad 2";
  EXPECT_FALSE(winograd_pool_applies(in, out, {24, 32, 3, 0, 2})) << "channels not in 16s";
  LaneLayout nhwc = in;
  nhwc.lanes = 32, nhwc.blocks = 1, nhwc.column = 32;
  EXPECT_FALSE(winograd_pool_applies(nhwc, out, {32, 32, 3, 0, 2})) << "nhwc input";
  LaneLayout other = out;
  other.h = 8;
  EXPECT_FALSE(winograd_pool_applies(in, other, {32, 32, 3, 0, 2})) << "pooled map of another size";
}

TEST(CpuWinogradPoolApplies, TakesBlocksOf8OnAvx2) {
  if (!runs("avx2")) GTEST_SKIP() << "no AVX2 here";
  const testing::CappedKernels cap(cap_winograd_pool, "avx2");
  LaneLayout in{1, 20, 20, 4, 8, 0, 0, 0, 8}, out{1, 9, 9, 4, 8, 0, 0, 0, 8};
  EXPECT_TRUE(winograd_pool_applies(in, out, {32, 32, 3, 0, 2}));
  EXPECT_FALSE(winograd_pool_applies(in, out, {32, 32, 3, 0, 3})) << "pool 3";
  LaneLayout in3 = in, out3 = out;
  in3.blocks = 3, out3.blocks = 3;
  EXPECT_TRUE(winograd_pool_applies(in3, out3, {24, 24, 3, 0, 2})) << "channels in 8s";
  EXPECT_FALSE(winograd_pool_applies(in3, out3, {20, 24, 3, 0, 2})) << "channels not in 8s";
  LaneLayout wide = in, wide_out = out;  // nChw16c: the AVX-512 version's blocks
  wide.lanes = 16, wide.blocks = 2, wide.column = 16;
  wide_out.lanes = 16, wide_out.blocks = 2, wide_out.column = 16;
  EXPECT_FALSE(winograd_pool_applies(wide, wide_out, {32, 32, 3, 0, 2})) << "16-lane blocks";
}

// The weight transform, element by element: (G g G^T) of each (o, c) pair in
// double, rounded once, at u[(xi * in_c + c) * out_c + o] — the same bits as
// this straightforward loop (the kernel computes 16 output channels at a
// time), for output channels in and not in whole blocks of 16.
TEST(CpuWinogradPoolWeights, TransformEqualsGgGtPairByPairToTheBit) {
  static constexpr double G[6][3] = {{1.0 / 4, 0, 0},
                                     {-1.0 / 6, -1.0 / 6, -1.0 / 6},
                                     {-1.0 / 6, 1.0 / 6, -1.0 / 6},
                                     {1.0 / 24, 1.0 / 12, 1.0 / 6},
                                     {1.0 / 24, -1.0 / 12, 1.0 / 6},
                                     {0, 0, 1}};
  for (const auto& [in_c, out_c] : std::vector<std::pair<int, int>>{{32, 64}, {3, 20}, {16, 5}}) {
    const PooledConv conv{in_c, out_c, 3, 0, 2};
    const auto w = uniform(size_t(out_c) * in_c * 9, 21, 0.5f);
    std::vector<float> u(winograd_weights_floats(conv), NAN);
    winograd_transform_weights(w.data(), conv, u.data());
    for (int o = 0; o < out_c; ++o)
      for (int c = 0; c < in_c; ++c) {
        const float* g = w.data() + (size_t(o) * in_c + c) * 9;
        for (int i = 0; i < 6; ++i)
          for (int j = 0; j < 6; ++j) {
            double gg[3];
            for (int s = 0; s < 3; ++s)
              gg[s] = G[i][0] * g[s] + G[i][1] * g[3 + s] + G[i][2] * g[6 + s];
            const float want = float(gg[0] * G[j][0] + gg[1] * G[j][1] + gg[2] * G[j][2]);
            const float got = u[(size_t(i * 6 + j) * in_c + c) * out_c + o];
            ASSERT_EQ(std::memcmp(&got, &want, sizeof got), 0)
                << in_c << " -> " << out_c << ": o " << o << " c " << c << " xi " << i * 6 + j
                << ": " << got << " against " << want;
          }
      }
  }
}

}  // namespace winograd_pool_test
}  // namespace histocnn::cpu
