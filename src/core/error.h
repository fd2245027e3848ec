// Errors that reach the user. Every failure the user can cause (a bad flag, a
// missing file, a corrupt image) is thrown as histocnn::Error with a one-line
// message that names the file or flag and says what is wrong; the CLI prints
// it as "histocnn: <message>" and exits non-zero.
#pragma once

#include <stdexcept>
#include <string>
#include <utility>

namespace histocnn {

class Error : public std::runtime_error {
 public:
  explicit Error(std::string message) : std::runtime_error(std::move(message)) {}
};

// Raised when training diverges (NaN/Inf loss); distinct so the trainer can
// keep the last good checkpoint and the CLI can say so.
class DivergenceError : public Error {
 public:
  using Error::Error;
};

[[noreturn]] inline void fail(const std::string& message) {
  throw Error(message);
}

inline void require(bool condition, const std::string& message) {
  if (!condition) fail(message);
}

}  // namespace histocnn
