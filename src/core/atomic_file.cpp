#include "core/atomic_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "core/error.h"

namespace histocnn {
namespace {

std::string error_text() {
  return std::strerror(errno);
}

// Makes a rename or a new directory entry durable.
void sync_directory_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  if (dir.empty()) dir = ".";
  const int fd = ::open(dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
  if (fd < 0) return;  // nothing more we can do; the data itself is synced
  ::fsync(fd);
  ::close(fd);
}

void write_all(int fd, std::string_view content, const std::string& path, const std::string& tmp) {
  size_t written = 0;
  while (written < content.size()) {
    const ssize_t n = ::write(fd, content.data() + written, content.size() - written);
    if (n < 0) {
      if (errno == EINTR) continue;
      const std::string reason = error_text();
      ::close(fd);
      if (!tmp.empty()) ::unlink(tmp.c_str());
      fail(path + ": write failed (" + reason + ")");
    }
    written += static_cast<size_t>(n);
  }
}

// The last steps of every atomic write: fsync the temporary through `fd`
// (closed here), rename it over `path`, fsync the directory.
void sync_and_rename(int fd, const std::string& temporary, const std::string& path) {
  if (::fsync(fd) != 0) {
    const std::string reason = error_text();
    ::close(fd);
    fail(path + ": flush failed (" + reason + ")");
  }
  if (::close(fd) != 0) fail(path + ": flush failed (" + error_text() + ")");
  if (::rename(temporary.c_str(), path.c_str()) != 0)
    fail(path + ": rename failed (" + error_text() + ")");
  sync_directory_of(path);
}

}  // namespace

AtomicFileWriter::AtomicFileWriter(std::string path) : path_(std::move(path)) {
  // A unique temporary per writer (several threads or processes may write the
  // same path): mkostemp, then the usual permissions.
  tmp_ = path_ + ".tmp.XXXXXX";
  fd_ = ::mkostemp(tmp_.data(), O_CLOEXEC);
  if (fd_ < 0) fail(path_ + ": cannot write (" + error_text() + ")");
  const mode_t mask = ::umask(0);
  ::umask(mask);
  ::fchmod(fd_, 0666 & ~mask);
}

AtomicFileWriter::~AtomicFileWriter() {
  if (fd_ >= 0) ::close(fd_);
  if (!committed_) ::unlink(tmp_.c_str());
}

void AtomicFileWriter::write(std::string_view text) {
  buffer_.append(text);
  if (buffer_.size() >= (size_t(1) << 20)) flush_buffer();
}

void AtomicFileWriter::flush_buffer() {
  require(fd_ >= 0, path_ + ": written after it was committed");
  const int fd = fd_;
  fd_ = -1;  // write_all closes it on failure
  write_all(fd, buffer_, path_, "");
  fd_ = fd;
  buffer_.clear();
}

void AtomicFileWriter::commit() {
  flush_buffer();
  const int fd = fd_;
  fd_ = -1;
  sync_and_rename(fd, tmp_, path_);
  committed_ = true;
}

void write_file_atomically(const std::string& path, std::string_view content) {
  AtomicFileWriter file(path);
  file.write(content);
  file.commit();
}

void rename_into_place(const std::string& temporary, const std::string& path) {
  const int fd = ::open(temporary.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) fail(path + ": cannot open what was written (" + error_text() + ")");
  sync_and_rename(fd, temporary, path);
}

void append_atomically(const std::string& path, std::string_view bytes) {
  // One write() with O_APPEND: O(1), and a reader or a killed process never
  // sees half of it (the kernel completes the call).
  const bool created = !std::filesystem::exists(path);
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0666);
  if (fd < 0) fail(path + ": cannot append (" + error_text() + ")");
  write_all(fd, bytes, path, "");
  if (::fsync(fd) != 0 || ::close(fd) != 0) fail(path + ": flush failed (" + error_text() + ")");
  if (created) sync_directory_of(path);
}

void append_line_atomically(const std::string& path, std::string_view line) {
  std::string text(line);
  text.push_back('\n');
  append_atomically(path, text);
}

void truncate_file(const std::string& path, size_t bytes) {
  const int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0 || ::ftruncate(fd, off_t(bytes)) != 0 || ::fsync(fd) != 0) {
    const std::string why = error_text();
    if (fd >= 0) ::close(fd);
    fail(path + ": cannot truncate (" + why + ")");
  }
  ::close(fd);
}

std::string repair_torn_last_line(const std::string& path) {
  if (!std::filesystem::exists(path)) return "";
  const std::string text = read_file(path);
  if (text.empty() || text.back() == '\n') return "";
  const size_t keep = text.rfind('\n') == std::string::npos ? 0 : text.rfind('\n') + 1;
  const std::string torn = text.substr(keep);
  append_line_atomically(path + ".torn", torn);  // kept, never lost
  truncate_file(path, keep);
  return torn;
}

std::string read_file(const std::string& path, size_t max_bytes) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0)
    fail(path + ": cannot open for reading (" + error_text() + ")");
  if (S_ISDIR(st.st_mode)) fail(path + ": is a folder, not a file");
  if (!S_ISREG(st.st_mode))
    fail(path + ": not a regular file (a device, FIFO or socket cannot be read as input)");
  if (uint64_t(st.st_size) > max_bytes)
    fail(path + ": " + std::to_string(st.st_size >> 20) + " MB, more than the " +
         std::to_string(max_bytes >> 20) + " MB such a file may have");
  std::ifstream in(path, std::ios::binary);
  if (!in) fail(path + ": cannot open for reading");
  std::ostringstream buffer;
  buffer << in.rdbuf();
  if (in.bad()) fail(path + ": read failed");
  return buffer.str();
}

void make_directories(const std::string& path) {
  std::error_code ec;
  std::filesystem::create_directories(path, ec);
  if (ec) fail(path + ": cannot create directory (" + ec.message() + ")");
}

void remove_stale_temporaries(const std::string& folder) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(folder, ec)) {
    const std::string name = entry.path().filename().string();
    const auto at = name.rfind(".tmp.");
    if (at != std::string::npos && name.size() - at == 11)  // ".tmp." + 6 mkostemp characters
      std::filesystem::remove(entry.path(), ec);
  }
}

}  // namespace histocnn
