// Atomic file writes: the content goes to a unique "<path>.tmp.XXXXXX", is
// flushed and fsync'ed, renamed over <path>, and the directory fsync'ed. A
// reader (or a crash, even kill -9 or a power cut) sees either the old file or
// the new one, never a torn one. Every file histocnn writes goes here.
#pragma once

#include <string>
#include <string_view>

namespace histocnn {

void write_file_atomically(const std::string& path, std::string_view content);

// The same for a file too large to build in memory first: written through a
// 1 MB buffer to the temporary; commit() makes it the file. Destroyed
// without commit (an error on the way), the temporary is removed and the
// old file stays.
class AtomicFileWriter {
 public:
  explicit AtomicFileWriter(std::string path);
  ~AtomicFileWriter();
  AtomicFileWriter(const AtomicFileWriter&) = delete;
  AtomicFileWriter& operator=(const AtomicFileWriter&) = delete;
  void write(std::string_view text);
  void commit();
  // The temporary, for a writer in another process (gnuplot): it may open
  // and truncate this path and write the content itself; commit() then
  // flushes that content through this writer's descriptor (the same inode)
  // and renames it.
  const std::string& temporary_path() const { return tmp_; }

 private:
  void flush_buffer();
  std::string path_, tmp_, buffer_;
  int fd_ = -1;
  bool committed_ = false;
};
// Gives a file written elsewhere (a library writing a temporary beside
// `path`) its name as atomically: fsync, rename over `path`, fsync the
// directory. Errors name `path`.
void rename_into_place(const std::string& temporary, const std::string& path);
// Appends one line with a single O_APPEND write, then fsync: O(1). A killed
// writer leaves whole lines (a power cut may lose the last one, never tear an
// earlier one; readers ignore an unterminated last line).
void append_line_atomically(const std::string& path, std::string_view line);
// The same for bytes of a binary record file (no newline added).
void append_atomically(const std::string& path, std::string_view bytes);
// Cuts a file to its first `bytes` (a record file's unconfirmed tail), fsync'ed.
void truncate_file(const std::string& path, size_t bytes);
// Repairs an append-only file before appending to it: a last line without
// its newline (a write cut by a power loss) is moved to "<path>.torn" and
// removed, so the next append starts on a fresh line instead of gluing onto
// it. Returns the torn text ("" when the file was whole or absent).
std::string repair_torn_last_line(const std::string& path);
// Every file histocnn reads goes through here, so one rule holds for all of
// them: a regular file (a folder, a FIFO or a device such as /dev/zero is
// refused by its type) of at most max_bytes (refused by its size, before any
// memory is committed). Errors name the file.
constexpr size_t kMaxReadBytes = size_t(2) << 30;
std::string read_file(const std::string& path, size_t max_bytes = kMaxReadBytes);
void make_directories(const std::string& path);
// Removes the temporaries a killed writer left in `folder` (their names are
// unique, so no live writer of this run owns them when a run starts).
void remove_stale_temporaries(const std::string& folder);

}  // namespace histocnn
