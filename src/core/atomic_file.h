// Atomic file writes: the content goes to "<path>.tmp.<pid>", is flushed and
// fsync'ed, then renamed over <path>. A reader (or a crash) sees either the old
// file or the new one, never a torn one. Every file histocnn writes goes here.
#pragma once

#include <string>
#include <string_view>

namespace histocnn {

void write_file_atomically(const std::string& path, std::string_view content);
// Appends a line by rewriting the file atomically (files stay small: results, logs).
void append_line_atomically(const std::string& path, std::string_view line);
std::string read_file(const std::string& path);
void make_directories(const std::string& path);

}  // namespace histocnn
