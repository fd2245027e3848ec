// The CUDA training step as data: every tensor (NCHW, fp32), every operation in
// execution order with the tensors it touches, the cuBLAS calls of the dense
// layers and the cuDNN descriptors' dimensions — as plain functions with no
// CUDA dependency. The CUDA step (cuda_step_ops.cpp) is a dispatcher over this
// schedule; host tests execute the same schedule with naive kernels over a
// host resource (planned and per tensor) and compare with the reference
// network, and `histocnn memplan --device cuda` prints its plan without a GPU.
//
// Data flow of one step (conv block k, dense layer j; shapes for batch N):
//   input [N,3,H,W] --conv_fwd(+bias+ReLU)--> conv_out_k [N,C,Hc,Wc]
//     --pool_fwd--> pooled_k [N,C,Hp,Wp] + argmax_k (one byte per pooled element:
//     where each window's maximum was, so backward never reads conv_out_k again)
//                                                      (pool=1: pooled_k is conv_out_k)
//   with batch norm: conv_fwd (no bias) -> conv_out_k --bn_fwd (+ReLU)--> bn_out_k
//     --pool_fwd--> pooled_k; "act_k" names what the pool reads (bn_out or conv_out)
//   pooled_last viewed as [N, C*Hp*Wp] (NCHW is already PyTorch's flatten order),
//     or averaged by gap_fwd into [N, C] (spec 'gap')
//     --gemm_fwd--> out_j [N,O] --bias_act(+ReLU, dropout mask from the counter hash)-->
//   logits --loss (softmax-xent; writes d_logits in place, accumulates loss/correct on device)
//   backward: act_bwd_j (ReLU' x mask, in place on d_out_j) -> gemm dW, gemv db, gemm dx
//     [-> gap_bwd] -> pool_relu_bwd: ReLU' on pooled_k, the max-pool scatter through
//     argmax_k, and the conv bias gradient's per-plane sums, in one pass -> d_act_k
//     [-> bn_bwd -> d_conv_out_k] -> conv_bwd_filter -> conv_bwd_data (k > 0)
//     -> d_pooled_{k-1}
//   conv1's own routes (ConvRoutes): conv_pool_fwd (conv + pool + bias + ReLU,
//     no conv_out_1); conv_bwd_filter reading pooled_1, d_pooled_1 and
//     argmax_1 and writing the weight and bias gradients (no pool_relu_bwd,
//     no d_act_1)
//   later blocks' conv_bwd_filter from the pooled gradient (ConvRoutes):
//     reading pooled_k, d_pooled_k and argmax_k instead of d_conv_out_k
//     (pool_relu_bwd still writes it, for conv_bwd_data); their
//     conv_bwd_data likewise; with both, pool_relu_bwd writes only the bias
//     sums and no d_conv_out_k exists
//   update: one fused Adam kernel over the flat parameter vector (not planned:
//   parameters, gradients and moments persist across steps).
// --precision bf16: the input op also writes input.bf16 (what conv1 reads);
//   the conv blocks' maps and gradients are bf16; to_float copies the last
//   pooled map into fp32 `features` for the dense part, and to_bf16 rounds
//   its gradient `d_features` back into the last d_pooled.
// --channels-last: the input op writes input.channels_last (NHWC, fp32 or
//   bf16: what conv1 reads); every conv block's maps and gradients are
//   channels last except the last block's pooled map and its gradient, which
//   its pool writes channels first (the dense part's flatten), so nothing
//   after the conv part changes. The bias gradient's partial sums are per
//   image band (pool_kernels.h: bias_partial_rows).
#pragma once

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "backends/cuda/map_layout.h"
#include "backends/cuda/pool_kernels.h"
#include "core/byte_images.h"
#include "memory/memory_plan.h"
#include "nn/spec.h"

namespace histocnn::cuda {

struct Dims4 {
  int n, c, h, w;
  int64_t count() const { return int64_t(n) * c * h * w; }
  // Fully packed NCHW strides, as cudnnSetTensor4dDescriptor(NCHW) implies.
  int64_t stride_n() const { return int64_t(c) * h * w; }
  int64_t stride_c() const { return int64_t(h) * w; }
  MapLayout layout(bool channels_last) const { return {c, h, w, channels_last}; }
};

// How the step stores the conv blocks' maps: their type (fp32, or bf16 under
// --precision bf16) and their layout (channels first, or last under
// --channels-last).
struct MapFormat {
  bool bf16 = false;
  bool channels_last = false;
};
// Why --channels-last cannot run this network (one sentence), or "": the
// last block's pool is what turns its map back into the dense part's
// channels-first flatten.
std::string channels_last_unsupported(const NetworkShape& shape);

// What cudnnGetConvolution2dForwardOutputDim returns for a stride-1,
// dilation-1 cross-correlation with symmetric padding.
Dims4 conv_output_dims(const Dims4& x, int filters, int kernel, int pad);
// What cudnnGetPooling2dForwardOutputDim returns for a p x p window, stride p,
// no padding: floor division (Keras, PyTorch).
Dims4 pool_output_dims(const Dims4& x, int window);

// One cublasSgemm in column-major terms: C[m,n] = op(A)[m,k] op(B)[k,n] (+ beta C).
struct GemmCall {
  bool trans_a, trans_b;
  int m, n, k;
  int lda, ldb, ldc;
  enum Operand { kInput, kWeight, kOutput, kInputGrad, kWeightGrad, kOutputGrad } a, b, c;
};
// The dense layer y[N,out] = x[N,in] W[out,in]^T + b, row-major (PyTorch),
// mapped onto column-major cuBLAS.
GemmCall dense_forward_gemm(int batch, int in, int out);
GemmCall dense_backward_data_gemm(int batch, int in, int out);    // dx = dy W
GemmCall dense_backward_weight_gemm(int batch, int in, int out);  // dW = dy^T x
// Runs a GemmCall on host arrays with naive loops (the definition the tests
// hold cuBLAS's mapping to).
void host_gemm(const GemmCall& g, const float* a, const float* b, float* c, float beta = 0);

enum class OpKind {
  kInput,        // host -> device copy of the batch
  kConvForward,  // conv + bias + ReLU
  kPoolForward,
  kDenseForward,             // gemm
  kDenseActivation,          // bias, ReLU (hidden layers), dropout (where the spec has it)
  kLoss,                     // softmax cross-entropy, accuracy, d_logits
  kDenseActivationBackward,  // ReLU' and the dropout mask, in place
  kDenseBackwardWeights,     // gemm dW, gemv db
  kDenseBackwardData,        // gemm dx
  kPoolReluBackward,         // ReLU' (argmax flag), max-pool scatter, bias gradient
  kConvBackwardFilter,
  kConvBackwardData,
  kBatchNormForward,   // batch statistics (training) or running ones, then ReLU in place
  kBatchNormBackward,  // dx, dgamma, dbeta from the saved batch statistics
  kGlobalPoolForward,  // average over the last pooled map: [N, C]
  kGlobalPoolBackward,
  kToFloat,  // --precision bf16: the last pooled map's fp32 copy, for the dense part
  kToBf16,   // and its gradient rounded back to bf16 for the conv part
  // conv + max pool + bias + ReLU in one kernel of ours (ConvRoutes::fused_forward)
  kConvPoolForward,
};

struct ScheduledOp {
  OpKind kind;
  int layer;                 // conv or dense index
  std::vector<int> tensors;  // the planned tensors it touches
  std::string name() const;
};

// Per conv block: the workspace bytes of the algorithms chosen (0 when none
// or not known yet).
struct ConvWorkspaces {
  size_t forward = 0, backward_data = 0, backward_filter = 0;
};

// A conv block's own kernels where they apply, chosen by time on the device
// when the step is built (cuda_step_conv_pool.cpp, cuda_step_wgrad.cpp,
// cuda_step_pooled_wgrad.cpp). conv1's each remove a tensor of the size of
// its conv output from the plan (251 MB at 200x200, batch 50 in fp32).
struct ConvRoutes {
  // conv1 only: convolution, max pool, bias and ReLU in one kernel
  // (conv_pool_kernels.h): the conv output is never written.
  bool fused_forward = false;
  // The weight gradient from the pooled gradient. conv1 (wgrad_kernels.h):
  // the bias gradient too, so no pool backward runs, and the conv output's
  // gradient is never written (conv1 has no data gradient to need it).
  // Later blocks (pooled_wgrad_kernels.h): the pool backward still writes
  // the conv output's gradient and the bias sums, for the data gradient.
  bool pooled_weight_gradient = false;
  // Later blocks: the data gradient from the pooled gradient
  // (pooled_dgrad_kernels.h). With pooled_weight_gradient too, nothing reads
  // the conv output's gradient: the pool backward sums the bias gradient
  // alone and the plan holds no d_conv_out for the block.
  bool pooled_data_gradient = false;
};
// Why the first block cannot take `routes` (one sentence), or "": both need
// a max pool with the bias and ReLU after it (no batch norm) and a layer
// their kernels were compiled for (conv_pool_supported, small_wgrad_supported).
std::string conv1_routes_unsupported(const NetworkShape& shape, const ConvRoutes& routes);
// The same for every block's (routes[k]: block k's; more routes than blocks
// is refused too).
std::string conv_routes_unsupported(const NetworkShape& shape,
                                    const std::vector<ConvRoutes>& routes);

struct CudaSchedule {
  struct ConvTensors {
    int src = -1, conv_out = -1, pooled = -1, d_pooled = -1, d_conv_out = -1;
    int ws_forward = -1, ws_backward_data = -1, ws_backward_filter = -1;
    bool batch_norm = false;
    ConvRoutes routes;  // its own kernels' routes
    int bn_out = -1;    // batch norm's output (ReLU applied in place)
    int act = -1;       // what the pool reads: bn_out, or conv_out
    int d_act = -1;     // its gradient: what pool backward writes
    int argmax = -1;    // pool > 1: each window's maximum's position (uint8 per pooled element)
    int bias_partials = -1;  // no batch norm: [rows, C] sums of d_conv_out (channel_sum_rows)
    // batch norm as our kernels (bf16, channels last): 2 x [rows, C] partial
    // sums (bn_kernels.h, channel_sum_rows)
    int bn_partials = -1;
    Dims4 x, y, pooled_dims;
    int pool = 1;
    // Layouts: x, y, act and their gradients; pooled and d_pooled (channels
    // first in the last block even under --channels-last).
    bool channels_last = false, pooled_channels_last = false;
    PoolMaps pool_maps() const {
      return {y.n, y.layout(channels_last), pooled_channels_last, pool};
    }
  };
  struct DenseTensors {
    int src = -1, out = -1, d_out = -1, d_src = -1;
    int in = 0, outputs = 0;
  };
  std::vector<TensorLifetime> tensors;  // lifetimes filled from `ops`
  std::vector<ScheduledOp> ops;
  std::vector<ConvTensors> convs;
  std::vector<DenseTensors> denses;
  int input = -1, logits = -1, d_logits = -1;
  // --precision bf16 (`bf16`): the conv blocks' maps and their gradients are
  // stored in bfloat16 (bf16_tensor[id]), the dense part in fp32; batch norm
  // runs as our kernels (bn_kernels.h) over bn_partials.
  // conv_input: what conv1 reads (input, or its bf16 copy made by the input
  // op); features / d_features: what the dense part (or the global pool) reads
  // and writes (the last pooled map and its gradient, or their fp32 copies).
  bool bf16 = false;
  bool channels_last = false;
  std::vector<bool> bf16_tensor;
  int conv_input = -1, features = -1, d_features = -1;
  int gap_out = -1, d_gap = -1;  // global average pooling [N, C] (spec 'gap'), else -1
  int loss_op = -1;              // index of the loss operation
};

// cuBLAS's workspace, handed to it from the resource (NVIDIA recommends 32 MB on Hopper).
constexpr size_t kCublasWorkspace = size_t(32) << 20;
// The conv weights' element count (all conv blocks).
inline int64_t conv_weight_count(const NetworkShape& shape) {
  int64_t count = 0;
  for (const auto& c : shape.convs) count += int64_t(c.out_c) * c.in_c * c.kernel * c.kernel;
  return count;
}

// The device buffer a batch lands in from the host, copied on its own
// stream while the previous batch computes, then into the step's input
// (cuda_step.h). It holds a batch in either form the step takes: fp32
// images (batch x C x H x W, copied device-to-device), or bytes and their
// tables (core/byte_images.h, expanded by launch_expand_byte_images): the
// pixels at 0, the tables after them on a 256-byte boundary.
struct LandingLayout {
  size_t float_bytes = 0;    // the fp32 batch
  size_t pixel_bytes = 0;    // batch x H x W x C bytes
  size_t tables_offset = 0;  // where the tables start
  size_t table_bytes = 0;    // batch x 3 x 256 floats
  size_t total = 0;          // the larger form
};
inline LandingLayout landing_layout(const NetworkShape& shape) {
  LandingLayout l;
  const size_t values =
      size_t(shape.batch) * size_t(shape.channels) * size_t(shape.height) * size_t(shape.width);
  l.float_bytes = values * sizeof(float);
  l.pixel_bytes = values;
  l.tables_offset = (l.pixel_bytes + 255) / 256 * 256;
  l.table_bytes = size_t(shape.batch) * kByteTablesPerImage * sizeof(float);
  l.total = std::max(l.float_bytes, l.tables_offset + l.table_bytes);
  return l;
}
inline size_t landing_bytes(const NetworkShape& shape) {
  return landing_layout(shape).total;
}

// What a step keeps across steps, besides its planned tensors: the landing
// buffer of the batch in flight (landing_bytes), parameters,
// gradients and Adam's two moments (fp32), cuBLAS's workspace, and per
// batch-norm layer its running mean/variance and the batch's saved mean and
// inverse deviation; under bf16 also a bf16 copy of the parameters (what the
// convolutions read) and of their gradients (what cuDNN's bf16 weight
// gradients are written to before they are widened); under --channels-last
// the conv weights as KRSC filters and their KRSC gradients, in the maps' type.
inline size_t persistent_bytes(const NetworkShape& shape, MapFormat format = {}) {
  size_t batch_norm = 0;
  for (const auto& c : shape.convs)
    if (c.batch_norm) batch_norm += 4 * size_t(c.out_c) * sizeof(float);
  const size_t element = format.bf16 ? 2 : 4;
  const size_t shadows = format.bf16 ? size_t(shape.parameter_count()) * 2 * 2 : 0;
  const size_t filters = format.channels_last ? size_t(conv_weight_count(shape)) * 2 * element : 0;
  return size_t(shape.parameter_count()) * 4 * sizeof(float) + kCublasWorkspace + batch_norm +
         shadows + filters + landing_bytes(shape);
}

// cuDNN's algorithm candidates (from the heuristics, or timed by --cudnn-benchmark)
// reduced to what the choice depends on.
struct AlgorithmCandidate {
  int algorithm;
  bool ok;           // status == CUDNN_STATUS_SUCCESS
  size_t workspace;  // bytes
  bool deterministic;
  float milliseconds;  // < 0: not timed (heuristics: the list is in preference order)
};
// The first candidate (the fastest when timed) that succeeded, fits the
// workspace budget and, when `deterministic`, is deterministic; -1 if none.
int choose_algorithm(const std::vector<AlgorithmCandidate>& candidates, size_t workspace_limit,
                     bool deterministic);

// A timed contest's winner among named routes: the one of the lowest time (a
// negative time: not a contender), or `forced` (when not empty) where it is
// a contender; throws histocnn::Error naming `what` where it is not.
std::string fastest_route(const std::vector<std::pair<std::string, float>>& times,
                          const std::string& forced, const std::string& what);

// What the step takes at `batch` before cuDNN's workspaces: its planned
// tensors (the arena) and what it keeps across steps (persistent_bytes).
size_t planned_step_bytes(const ModelSpec& spec, int batch, int height, int width,
                          MapFormat format = {});

// The largest batch whose planned_step_bytes fit `budget`; 0 if not even
// one. A plain search over the schedule.
int largest_batch_that_fits(const ModelSpec& spec, int height, int width, size_t budget,
                            MapFormat format = {});

// cuDNN's tensor descriptors count elements in 32 bits: no tensor of the step
// may hold more than this many.
constexpr int64_t kCudnnMaxElements = 2147483647;
// The step's largest tensor (elements) and its name.
struct LargestTensor {
  int64_t elements = 0;
  std::string name;
};
LargestTensor largest_tensor(const CudaSchedule& schedule);
// The largest batch whose every tensor stays within kCudnnMaxElements (0 if
// not even one image does).
int largest_batch_within_element_limit(const ModelSpec& spec, int height, int width);

// Requires workspaces.size() == shape.convs.size() (or empty: none); throws
// histocnn::Error (a user's error) for format.channels_last when
// channels_last_unsupported(shape) says why not, std::logic_error for
// routes that conv_routes_unsupported refuses. routes[k]: conv block k's
// (the blocks past the end: none).
CudaSchedule build_cuda_schedule(const NetworkShape& shape,
                                 const std::vector<ConvWorkspaces>& workspaces = {},
                                 MapFormat format = {}, std::vector<ConvRoutes> routes = {});

}  // namespace histocnn::cuda
