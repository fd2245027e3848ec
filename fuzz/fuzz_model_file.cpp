// libFuzzer target: a model, checkpoint or ensemble file as eval, predict,
// slide and resume read it — the safetensors container, then every metadata
// field (spec, sizes, scale, normalisation, stain target, recipe, state) and
// tensor checked against the spec. Only histocnn::Error may come out.
#include <cstddef>
#include <cstdint>
#include <string>

#include "core/error.h"
#include "nn/safetensors.h"
#include "train/checkpoint.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    const histocnn::SafetensorsFile in = histocnn::parse_safetensors(
        std::string(reinterpret_cast<const char*>(data), size), "fuzz.safetensors");
    for (const histocnn::ModelFile& m : histocnn::models_from(in, "fuzz.safetensors")) {
      // What the commands read from a loaded model.
      if (m.stain_target) (void)m.stain_recipe();
      (void)m.trained.value("eval_tta", false);
      (void)m.trained.value("eval_crops", 8);
      (void)m.trained.value("max_background", 1.0f);
      if (!m.has_optimizer) continue;  // a checkpoint's state, as resume reads it
      (void)m.state.value("epoch", 0);
      (void)m.state.value("step", int64_t(0));
      (void)m.state.value("history", nlohmann::json::array());
      (void)m.state.value("best", nlohmann::json::object());
    }
  } catch (const histocnn::Error&) {
  }
  return 0;
}
