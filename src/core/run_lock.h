// One writer per run folder: `<folder>/.lock` holds the owner's PID, created
// exclusively. A second histocnn writing the same folder is refused in one
// line naming the owner; a lock whose process is gone (killed, power loss) is
// taken over. Released (removed) on destruction.
#pragma once

#include <string>

namespace histocnn {

class RunLock {
 public:
  explicit RunLock(const std::string& folder);
  ~RunLock();
  RunLock(const RunLock&) = delete;
  RunLock& operator=(const RunLock&) = delete;
  // The lock changes hands (a slide's folder stays locked until its maps,
  // drawn on another thread, are written); the moved-from one holds nothing.
  RunLock(RunLock&& other) noexcept;
  RunLock& operator=(RunLock&&) = delete;

 private:
  std::string path_;
};

}  // namespace histocnn
