// The architecture's one rule, checked: dependencies point down. A file under
// src/<folder>/ may include headers of its own folder or of folders of a lower
// layer (docs/design.md, "The map"), never of a layer above or beside it, so
// each layer can be read, tested and replaced without the ones above it.
#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <vector>

namespace fs = std::filesystem;

namespace {

// Layer of each top-level folder of src/: lower numbers are lower layers.
// nn, data, memory and dist are peers (none includes another).
const std::map<std::string, int>& layers() {
  static const std::map<std::string, int> l = {
      {"core", 0},     {"nn", 1},    {"data", 1},  {"memory", 1}, {"dist", 1},
      {"backends", 2}, {"train", 3}, {"study", 4}, {"slide", 5},  {"cli", 6}};
  return l;
}

bool is_source(const fs::path& p) {
  const std::string e = p.extension().string();
  return e == ".h" || e == ".cpp" || e == ".cu" || e == ".cuh";
}

// The top folder a quoted include names ("train/trainer.h" -> "train"), or
// "" when the line is not a quoted include of a path with a folder. Parsed by
// hand: std::regex trips GCC 12's maybe-uninitialized warning under ASan.
std::string included_folder(const std::string& line) {
  size_t i = line.find_first_not_of(" \t");
  if (i == std::string::npos || line[i] != '#') return "";
  i = line.find_first_not_of(" \t", i + 1);
  if (i == std::string::npos || line.compare(i, 7, "include") != 0) return "";
  i = line.find_first_not_of(" \t", i + 7);
  if (i == std::string::npos || line[i] != '"') return "";
  const size_t slash = line.find('/', i + 1), quote = line.find('"', i + 1);
  if (slash == std::string::npos || slash > quote) return "";
  const std::string folder = line.substr(i + 1, slash - i - 1);
  const bool plain = !folder.empty() &&
                     folder.find_first_not_of("abcdefghijklmnopqrstuvwxyz_") == std::string::npos;
  return plain ? folder : "";
}

// One line per include that breaks the rule (or names a folder the table
// does not know, so a new folder must be given its layer).
std::vector<std::string> layering_violations(const fs::path& src) {
  std::vector<std::string> found;
  for (const auto& entry : fs::recursive_directory_iterator(src)) {
    if (!entry.is_regular_file() || !is_source(entry.path())) continue;
    const fs::path relative = fs::relative(entry.path(), src);
    const std::string folder = relative.begin()->string();
    if (relative.begin() == std::prev(relative.end())) continue;  // a file directly in src/
    const auto self = layers().find(folder);
    if (self == layers().end()) {
      found.push_back("src/" + relative.string() + ": folder " + folder + " has no layer");
      continue;
    }
    std::ifstream in(entry.path());
    std::string line;
    for (int number = 1; std::getline(in, line); ++number) {
      const std::string target = included_folder(line);
      if (target.empty()) continue;
      const auto other = layers().find(target);
      if (target == folder) continue;
      if (other == layers().end() || other->second >= self->second)
        found.push_back("src/" + relative.string() + ":" + std::to_string(number) + " includes " +
                        target + "/ (" + folder + " may include only lower layers)");
    }
  }
  return found;
}

TEST(Layering, DependenciesPointDown) {
  const fs::path src = fs::path(HISTOCNN_SOURCE_DIR) / "src";
  ASSERT_TRUE(fs::is_directory(src)) << src;
  const std::vector<std::string> found = layering_violations(src);
  for (const auto& v : found) ADD_FAILURE() << v;
}

// The checker itself: it must see an upward include, a sideways one between
// peers and an unknown folder, and accept a downward one.
TEST(Layering, CheckerCatchesUpwardSidewaysAndUnknown) {
  const fs::path root =
      fs::temp_directory_path() /
      ("histocnn-layering-" + std::to_string(::testing::UnitTest::GetInstance()->random_seed()));
  fs::remove_all(root);
  const auto write = [&](const std::string& file, const std::string& text) {
    fs::create_directories((root / file).parent_path());
    std::ofstream(root / file) << text;
  };
  write("core/ok.h", "#include \"core/error.h\"\n");
  write("train/ok.cpp", "#include \"backends/backend.h\"\n#include <vector>\n");
  write("core/up.h", "#pragma once\n  #  include \"train/trainer.h\"\n");
  write("nn/sideways.cpp", "#include \"data/dataset.h\"\n");
  write("plugins/x.cpp", "#include \"core/error.h\"\n");
  const std::vector<std::string> found = layering_violations(root);
  fs::remove_all(root);
  ASSERT_EQ(found.size(), 3u);
  std::string all;
  for (const auto& v : found) all += v + "\n";
  EXPECT_NE(all.find("src/core/up.h:2 includes train/"), std::string::npos) << all;
  EXPECT_NE(all.find("src/nn/sideways.cpp:1 includes data/"), std::string::npos) << all;
  EXPECT_NE(all.find("folder plugins has no layer"), std::string::npos) << all;
}

}  // namespace
