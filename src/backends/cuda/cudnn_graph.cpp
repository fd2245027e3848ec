// cuDNN's graph API for the step's convolutions: see cudnn_graph.h.
#include "backends/cuda/cudnn_graph.h"

#include <algorithm>
#include <utility>

#include "core/error.h"

namespace histocnn::cuda {

namespace {

// Why a graph could not be built or run: the caller stays on the legacy API.
struct GraphRefused {
  std::string why;
};

void check_graph(cudnnStatus_t status, const char* what) {
  if (status != CUDNN_STATUS_SUCCESS)
    throw GraphRefused{std::string(what) + ": " + cudnnGetErrorString(status)};
}

// A backend descriptor owned here (destroyed unless released).
class GraphDesc {
 public:
  explicit GraphDesc(cudnnBackendDescriptorType_t type) {
    check_graph(cudnnBackendCreateDescriptor(type, &d_), "cudnnBackendCreateDescriptor");
  }
  ~GraphDesc() {
    if (d_) cudnnBackendDestroyDescriptor(d_);
  }
  GraphDesc(GraphDesc&& other) noexcept : d_(std::exchange(other.d_, nullptr)) {}
  GraphDesc& operator=(GraphDesc&& other) noexcept {
    if (this != &other) {
      if (d_) cudnnBackendDestroyDescriptor(d_);
      d_ = std::exchange(other.d_, nullptr);
    }
    return *this;
  }
  GraphDesc(const GraphDesc&) = delete;
  GraphDesc& operator=(const GraphDesc&) = delete;
  cudnnBackendDescriptor_t get() const { return d_; }
  cudnnBackendDescriptor_t* address() { return &d_; }
  cudnnBackendDescriptor_t release() { return std::exchange(d_, nullptr); }
  GraphDesc& set(cudnnBackendAttributeName_t name, cudnnBackendAttributeType_t type, int64_t count,
                 const void* values) {
    check_graph(cudnnBackendSetAttribute(d_, name, type, count, values),
                "cudnnBackendSetAttribute");
    return *this;
  }
  GraphDesc& finalize(const char* what) {
    check_graph(cudnnBackendFinalize(d_), what);
    return *this;
  }

 private:
  cudnnBackendDescriptor_t d_ = nullptr;
};

GraphDesc graph_tensor(int64_t uid, const Dims4& d, cudnnDataType_t type, int64_t alignment,
                       bool channels_last) {
  GraphDesc t(CUDNN_BACKEND_TENSOR_DESCRIPTOR);
  const int64_t dims[4] = {d.n, d.c, d.h, d.w};
  const auto strides = packed_strides(d, channels_last);
  t.set(CUDNN_ATTR_TENSOR_DATA_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &type)
      .set(CUDNN_ATTR_TENSOR_DIMENSIONS, CUDNN_TYPE_INT64, 4, dims)
      .set(CUDNN_ATTR_TENSOR_STRIDES, CUDNN_TYPE_INT64, 4, strides.data())
      .set(CUDNN_ATTR_TENSOR_UNIQUE_ID, CUDNN_TYPE_INT64, 1, &uid)
      .set(CUDNN_ATTR_TENSOR_BYTE_ALIGNMENT, CUDNN_TYPE_INT64, 1, &alignment)
      .finalize("tensor descriptor");
  return t;
}

GraphDesc graph_convolution(const GraphConvShape& s) {
  GraphDesc c(CUDNN_BACKEND_CONVOLUTION_DESCRIPTOR);
  const cudnnDataType_t compute = CUDNN_DATA_FLOAT;
  const cudnnConvolutionMode_t mode = CUDNN_CROSS_CORRELATION;
  const int64_t spatial = 2, pad[2] = {s.pad, s.pad}, one[2] = {1, 1};
  c.set(CUDNN_ATTR_CONVOLUTION_COMP_TYPE, CUDNN_TYPE_DATA_TYPE, 1, &compute)
      .set(CUDNN_ATTR_CONVOLUTION_CONV_MODE, CUDNN_TYPE_CONVOLUTION_MODE, 1, &mode)
      .set(CUDNN_ATTR_CONVOLUTION_SPATIAL_DIMS, CUDNN_TYPE_INT64, 1, &spatial)
      .set(CUDNN_ATTR_CONVOLUTION_DILATIONS, CUDNN_TYPE_INT64, 2, one)
      .set(CUDNN_ATTR_CONVOLUTION_FILTER_STRIDES, CUDNN_TYPE_INT64, 2, one)
      .set(CUDNN_ATTR_CONVOLUTION_PRE_PADDINGS, CUDNN_TYPE_INT64, 2, pad)
      .set(CUDNN_ATTR_CONVOLUTION_POST_PADDINGS, CUDNN_TYPE_INT64, 2, pad)
      .finalize("convolution descriptor");
  return c;
}

// The operation's attribute names per direction: x, w, y, conv, alpha, beta.
struct GraphOperationAttributes {
  cudnnBackendDescriptorType_t type;
  cudnnBackendAttributeName_t x, w, y, conv, alpha, beta;
};
GraphOperationAttributes graph_attributes(ConvDirection d) {
  switch (d) {
    case ConvDirection::kForward:
      return {CUDNN_BACKEND_OPERATION_CONVOLUTION_FORWARD_DESCRIPTOR,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_X,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_W,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_Y,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_CONV_DESC,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_ALPHA,
              CUDNN_ATTR_OPERATION_CONVOLUTION_FORWARD_BETA};
    case ConvDirection::kBackwardData:
      return {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_DATA_DESCRIPTOR,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DX,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_W,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_DY,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_CONV_DESC,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_ALPHA,
              CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_DATA_BETA};
    case ConvDirection::kBackwardFilter:
      break;
  }
  return {CUDNN_BACKEND_OPERATION_CONVOLUTION_BACKWARD_FILTER_DESCRIPTOR,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_X,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DW,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_DY,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_CONV_DESC,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_ALPHA,
          CUDNN_ATTR_OPERATION_CONVOLUTION_BWD_FILTER_BETA};
}

// A convolution's operation graph and every descriptor it refers to.
struct ConvOperationGraph {
  std::vector<GraphDesc> parts;  // tensors, convolution, operation
  GraphDesc graph{CUDNN_BACKEND_OPERATIONGRAPH_DESCRIPTOR};
};

ConvOperationGraph conv_operation_graph(cudnnHandle_t handle, const GraphConvShape& s,
                                        ConvDirection direction) {
  const cudnnDataType_t type = s.bf16() ? CUDNN_DATA_BFLOAT16 : CUDNN_DATA_FLOAT;
  const bool last = s.channels_last;
  GraphDesc x = graph_tensor(kUidX, s.x, type, 16, last),
            y = graph_tensor(kUidY, s.y, type, 16, last);
  GraphDesc w = graph_tensor(
      kUidW, s.w(), type,
      direction == ConvDirection::kBackwardFilter ? s.dw_alignment : s.w_alignment, last);
  GraphDesc conv = graph_convolution(s);
  const GraphOperationAttributes a = graph_attributes(direction);
  const float alpha = 1, beta = 0;
  GraphDesc op(a.type);
  op.set(a.x, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, x.address())
      .set(a.w, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, w.address())
      .set(a.y, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, y.address())
      .set(a.conv, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, conv.address())
      .set(a.alpha, CUDNN_TYPE_FLOAT, 1, &alpha)
      .set(a.beta, CUDNN_TYPE_FLOAT, 1, &beta)
      .finalize("convolution operation");
  ConvOperationGraph g;
  g.graph.set(CUDNN_ATTR_OPERATIONGRAPH_OPS, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, op.address())
      .set(CUDNN_ATTR_OPERATIONGRAPH_HANDLE, CUDNN_TYPE_HANDLE, 1, &handle)
      .finalize("operation graph");
  for (GraphDesc* part : {&x, &y, &w, &conv, &op}) g.parts.push_back(std::move(*part));
  return g;
}

EngineNotes engine_notes_of(cudnnBackendDescriptor_t engine) {
  cudnnBackendNumericalNote_t notes[CUDNN_NUMERICAL_NOTE_TYPE_COUNT];
  int64_t count = 0;
  check_graph(
      cudnnBackendGetAttribute(engine, CUDNN_ATTR_ENGINE_NUMERICAL_NOTE, CUDNN_TYPE_NUMERICAL_NOTE,
                               CUDNN_NUMERICAL_NOTE_TYPE_COUNT, &count, notes),
      "engine notes");
  EngineNotes n;
  for (int64_t i = 0; i < count; ++i) {
    n.nondeterministic |= notes[i] == CUDNN_NUMERICAL_NOTE_NONDETERMINISTIC;
    n.tensor_core |= notes[i] == CUDNN_NUMERICAL_NOTE_TENSOR_CORE;
    n.down_converts |= notes[i] == CUDNN_NUMERICAL_NOTE_DOWN_CONVERT_INPUTS;
    n.reduced_precision_reduction |= notes[i] == CUDNN_NUMERICAL_NOTE_REDUCED_PRECISION_REDUCTION;
  }
  return n;
}

// The engine configurations cuDNN's heuristics rank for `graph`, best first.
std::vector<GraphDesc> ranked_engine_configs(const GraphDesc& graph) {
  GraphDesc heuristics(CUDNN_BACKEND_ENGINEHEUR_DESCRIPTOR);
  const cudnnBackendHeurMode_t mode = CUDNN_HEUR_MODE_A;
  cudnnBackendDescriptor_t g = graph.get();
  heuristics.set(CUDNN_ATTR_ENGINEHEUR_OPERATION_GRAPH, CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &g)
      .set(CUDNN_ATTR_ENGINEHEUR_MODE, CUDNN_TYPE_HEUR_MODE, 1, &mode)
      .finalize("engine heuristics");
  int64_t count = 0;
  check_graph(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, 0, &count, nullptr),
              "heuristics count");
  std::vector<GraphDesc> configs;
  std::vector<cudnnBackendDescriptor_t> raw;
  for (int64_t i = 0; i < count; ++i) {
    configs.emplace_back(CUDNN_BACKEND_ENGINECFG_DESCRIPTOR);
    raw.push_back(configs.back().get());
  }
  int64_t returned = 0;
  check_graph(cudnnBackendGetAttribute(heuristics.get(), CUDNN_ATTR_ENGINEHEUR_RESULTS,
                                       CUDNN_TYPE_BACKEND_DESCRIPTOR, count, &returned, raw.data()),
              "heuristics results");
  configs.erase(configs.begin() + std::min(returned, count), configs.end());
  return configs;
}

GraphDesc graph_variant_pack(const std::array<int64_t, 3>& uids,
                             const std::array<const void*, 4>& pointers) {
  GraphDesc pack(CUDNN_BACKEND_VARIANT_PACK_DESCRIPTOR);
  void* data[3] = {const_cast<void*>(pointers[0]), const_cast<void*>(pointers[1]),
                   const_cast<void*>(pointers[2])};
  void* workspace = const_cast<void*>(pointers[3]);
  pack.set(CUDNN_ATTR_VARIANT_PACK_UNIQUE_IDS, CUDNN_TYPE_INT64, 3, uids.data())
      .set(CUDNN_ATTR_VARIANT_PACK_DATA_POINTERS, CUDNN_TYPE_VOID_PTR, 3, data)
      .set(CUDNN_ATTR_VARIANT_PACK_WORKSPACE, CUDNN_TYPE_VOID_PTR, 1, &workspace)
      .finalize("variant pack");
  return pack;
}

}  // namespace

GraphConv::GraphConv(cudnnHandle_t handle, const GraphConvShape& shape, ConvDirection direction,
                     size_t workspace_limit, const Timer& time_ms)
    : direction_(direction) {
  try {
    build(handle, shape, direction, workspace_limit, time_ms);
  } catch (const GraphRefused& r) {
    if (plan_) cudnnBackendDestroyDescriptor(plan_);
    plan_ = nullptr;
    why_not_ = r.why;
  }
}

GraphConv::~GraphConv() {
  if (pack_) cudnnBackendDestroyDescriptor(pack_);
  if (plan_) cudnnBackendDestroyDescriptor(plan_);
  for (auto d = kept_.rbegin(); d != kept_.rend(); ++d) cudnnBackendDestroyDescriptor(*d);
}

void GraphConv::build(cudnnHandle_t handle, const GraphConvShape& shape, ConvDirection direction,
                      size_t workspace_limit, const Timer& time_ms) {
  ConvOperationGraph graph = conv_operation_graph(handle, shape, direction);
  std::vector<GraphDesc> configs = ranked_engine_configs(graph.graph);
  GraphDesc* chosen = nullptr;
  float best_ms = 0;
  int refused = 0;
  for (GraphDesc& config : configs) {
    GraphDesc engine(CUDNN_BACKEND_ENGINE_DESCRIPTOR);
    int64_t n = 0;
    bool allowed = false;
    try {
      check_graph(cudnnBackendGetAttribute(config.get(), CUDNN_ATTR_ENGINECFG_ENGINE,
                                           CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &n, engine.address()),
                  "engine of a configuration");
      allowed = engine_allowed(engine_notes_of(engine.get()), shape.precision);
    } catch (const GraphRefused&) {
      allowed = false;  // an engine we cannot inspect is not one we can vouch for
    }
    if (!allowed) {
      ++refused;
      continue;
    }
    int64_t index = -1;
    cudnnBackendGetAttribute(engine.get(), CUDNN_ATTR_ENGINE_GLOBAL_INDEX, CUDNN_TYPE_INT64, 1, &n,
                             &index);
    GraphDesc plan(CUDNN_BACKEND_EXECUTION_PLAN_DESCRIPTOR);
    cudnnBackendDescriptor_t c = config.get();
    int64_t workspace = 0;
    if (cudnnBackendSetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_HANDLE, CUDNN_TYPE_HANDLE, 1,
                                 &handle) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendSetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_ENGINE_CONFIG,
                                 CUDNN_TYPE_BACKEND_DESCRIPTOR, 1, &c) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendFinalize(plan.get()) != CUDNN_STATUS_SUCCESS ||
        cudnnBackendGetAttribute(plan.get(), CUDNN_ATTR_EXECUTION_PLAN_WORKSPACE_SIZE,
                                 CUDNN_TYPE_INT64, 1, &n, &workspace) != CUDNN_STATUS_SUCCESS ||
        size_t(workspace) > workspace_limit) {
      ++refused;
      continue;
    }
    ++candidates_;
    float ms = -1;
    if (time_ms) {
      const auto uids = execute_uids(direction);
      cudnnBackendDescriptor_t p = plan.get();
      ms = time_ms([&](const std::array<void*, 4>& scratch) {  // x, w, y, workspace
        std::array<const void*, 4> pointers{};
        for (size_t i = 0; i < 3; ++i)
          pointers[i] = uids[i] == kUidX ? scratch[0] : uids[i] == kUidW ? scratch[1] : scratch[2];
        pointers[3] = scratch[3];
        const GraphDesc pack = graph_variant_pack(uids, pointers);
        check_graph(cudnnBackendExecute(handle, p, pack.get()), "cudnnBackendExecute (timing)");
      });
    }
    if (time_ms && ms < 0) {  // it failed to run on the scratch buffers
      ++refused;
      continue;
    }
    if (plan_ && (!time_ms || ms >= best_ms)) continue;
    if (plan_) cudnnBackendDestroyDescriptor(plan_);
    plan_ = plan.release();
    workspace_ = size_t(workspace);
    engine_ = index;
    best_ms = ms;
    chosen = &config;
    if (!time_ms) break;  // heuristics: the first allowed one
  }
  if (!plan_)
    throw GraphRefused{"no engine among " + std::to_string(configs.size()) +
                       " that is deterministic, keeps --precision " + shape.precision +
                       " and fits the workspace limit (" + std::to_string(refused) + " refused)"};
  for (GraphDesc& part : graph.parts) kept_.push_back(part.release());
  kept_.push_back(graph.graph.release());
  kept_.push_back(chosen->release());
}

void GraphConv::execute(cudnnHandle_t handle, const void* a, const void* b, void* out,
                        void* workspace) {
  const std::array<const void*, 4> pointers = {a, b, out, workspace};
  if (!pack_ || pointers != packed_) {  // the plan allocator: built once
    if (pack_) cudnnBackendDestroyDescriptor(pack_);
    pack_ = nullptr;
    try {
      pack_ = graph_variant_pack(execute_uids(direction_), pointers).release();
    } catch (const GraphRefused& r) {
      fail(std::string("cuDNN graph ") + direction_name(direction_) + ": " + r.why);
    }
    packed_ = pointers;
  }
  const cudnnStatus_t status = cudnnBackendExecute(handle, plan_, pack_);
  if (status != CUDNN_STATUS_SUCCESS)
    fail(std::string("cuDNN graph ") + direction_name(direction_) + ": " +
         cudnnGetErrorString(status));
}

}  // namespace histocnn::cuda
