// Limits shared by the layers that must agree on them.
#pragma once

namespace histocnn {

// Classes a network may tell apart (its last dense layer; a label scheme).
constexpr int kMaxClasses = 64;

}  // namespace histocnn
