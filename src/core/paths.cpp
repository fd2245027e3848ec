#include "core/paths.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <set>

#include "core/atomic_file.h"
#include "core/error.h"

namespace histocnn {
namespace fs = std::filesystem;

namespace {
fs::path resolved(const std::string& p) {
  std::error_code ec;
  fs::path r = fs::weakly_canonical(fs::absolute(p, ec), ec);
  return ec ? fs::absolute(p).lexically_normal() : r;
}
}  // namespace

bool same_path(const std::string& a, const std::string& b) {
  std::error_code ec;
  if (fs::exists(a, ec) && fs::exists(b, ec)) return fs::equivalent(a, b, ec);
  return resolved(a) == resolved(b);
}

void refuse_overwriting_inputs(const std::string& flag, const std::string& output,
                               const std::vector<NamedInput>& inputs) {
  for (const auto& in : inputs)
    if (same_path(output, in.path))
      fail(flag + " " + output + ": would overwrite " + in.what + " " + in.path +
           " (an input of this command); write somewhere else");
}

void prepare_output_file(const std::string& flag, const std::string& output_file) {
  const fs::path folder = resolved(output_file).parent_path();
  std::error_code ec;
  fs::create_directories(folder, ec);
  if (ec)
    fail(flag + " " + output_file + ": cannot create " + folder.string() + " (" + ec.message() +
         ")");
  require(!fs::is_directory(output_file), flag + " " + output_file + ": is a folder, not a file");
  require(!fs::exists(output_file) || !is_dataset_folder(folder.string()),
          flag + " " + output_file + ": would overwrite a file of the dataset in " +
              folder.string() + " (it holds Grade.csv)");
  std::string probe = (folder / ".histocnn-write-test.XXXXXX").string();
  const int fd = ::mkostemp(probe.data(), O_CLOEXEC);
  if (fd < 0)
    fail(flag + " " + output_file + ": cannot write in " + folder.string() + " (" +
         std::strerror(errno) + ")");
  ::close(fd);
  ::unlink(probe.c_str());
}

OutputFolder::OutputFolder(const std::string& path) : path_(path) {
  std::error_code ec;
  created_ = !fs::exists(path, ec);
  make_directories(path);
}

OutputFolder::~OutputFolder() {
  std::error_code ec;
  if (created_ && fs::is_empty(path_, ec) && !ec) fs::remove(path_, ec);
}

bool is_dataset_folder(const std::string& folder) {
  std::error_code ec;
  return fs::is_regular_file(fs::path(folder) / "Grade.csv", ec);
}

FolderEntries list_folder(const std::string& folder) {
  FolderEntries entries;
  std::error_code ec;
  for (fs::directory_iterator it(folder, ec), end; !ec && it != end; it.increment(ec)) {
    std::error_code unreadable;  // a dangling link: skipped, the listing goes on
    if (it->is_directory(unreadable))
      entries.folders.push_back(it->path().string());
    else if (it->is_regular_file(unreadable))
      entries.files.push_back(it->path().string());
  }
  require(!ec, folder + ": cannot list the folder (" + ec.message() + ")");
  std::sort(entries.files.begin(), entries.files.end());
  std::sort(entries.folders.begin(), entries.folders.end());
  return entries;
}

namespace {

void walk_below(const std::string& folder, std::set<std::string>* seen,
                const std::function<void(const std::string&, const FolderEntries&)>& visit) {
  std::error_code ec;
  const std::string real = fs::canonical(folder, ec).string();
  require(!ec, folder + ": cannot open the folder (" + ec.message() + ")");
  if (!seen->insert(real).second) return;
  const FolderEntries entries = list_folder(folder);
  visit(folder, entries);
  for (const std::string& sub : entries.folders)
    if (fs::path(sub).filename().string().front() != '.') walk_below(sub, seen, visit);
}

}  // namespace

void walk_folders(const std::string& folder,
                  const std::function<void(const std::string&, const FolderEntries&)>& visit) {
  std::set<std::string> seen;
  walk_below(folder, &seen, visit);
}

}  // namespace histocnn
