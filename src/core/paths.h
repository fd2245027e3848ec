// Rules every command applies to the files it is given and writes, each
// enforced here once:
//   * no output replaces an input: paths are compared after symlinks are
//     resolved (weakly_canonical: an output need not exist yet);
//   * an output is known writable before any expensive work: its folder is
//     created and a probe file written and removed there;
//   * a folder that holds a dataset (Grade.csv) is never written into
//     unless the user forces it.
// Each failure is one line naming the flag, the path and what it would hit.
#pragma once

#include <functional>
#include <string>
#include <vector>

namespace histocnn {

// True when a and b name the same file or folder (after symlinks).
bool same_path(const std::string& a, const std::string& b);

struct NamedInput {
  std::string path;
  std::string what;  // "the model", "an input image", ...
};
// Throws "<flag> <output>: would overwrite <what> <path>" when `output` is
// one of `inputs`.
void refuse_overwriting_inputs(const std::string& flag, const std::string& output,
                               const std::vector<NamedInput>& inputs);

// Creates the folder `output_file` goes into and checks a file can be
// written there, before the work that produces it. Refuses to replace a
// file of a dataset (an existing file in a folder holding Grade.csv: the
// labels, an image). Throws naming `flag`.
void prepare_output_file(const std::string& flag, const std::string& output_file);

// The folder a command writes into, made if absent; when this command made
// it and fails before writing anything there, the destructor removes it
// again, so an error leaves no empty folder behind (a folder that existed,
// or holds anything, is left alone).
class OutputFolder {
 public:
  explicit OutputFolder(const std::string& path);
  ~OutputFolder();
  OutputFolder(const OutputFolder&) = delete;
  OutputFolder& operator=(const OutputFolder&) = delete;

 private:
  std::string path_;
  bool created_ = false;
};

// What a folder holds directly, each list sorted by path: its regular files
// and its folders (links followed; a dangling link is neither, and not an
// error). Throws "<folder>: cannot list the folder (<reason>)".
struct FolderEntries {
  std::vector<std::string> files, folders;
};
FolderEntries list_folder(const std::string& folder);

// Calls `visit` with `folder`'s entries and then with those of every folder
// below it, depth first in sorted order. Links are followed, but a folder
// met again (a cycle, or two links to one place) is not entered twice;
// hidden folders (".git", ".Trash", ".snapshot") are skipped. Throws
// "<folder>: cannot open the folder (<reason>)".
void walk_folders(
    const std::string& folder,
    const std::function<void(const std::string& folder, const FolderEntries&)>& visit);

// A GlaS-layout dataset: a folder holding Grade.csv.
bool is_dataset_folder(const std::string& folder);

}  // namespace histocnn
