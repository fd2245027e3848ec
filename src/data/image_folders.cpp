#include "data/image_folders.h"

#include <algorithm>
#include <filesystem>
#include <map>
#include <optional>

#include "core/atomic_file.h"
#include "core/error.h"
#include "core/paths.h"
#include "data/csv_text.h"
#include "data/patients_csv.h"
#include "data/tcga_barcode.h"

namespace histocnn {
namespace fs = std::filesystem;
namespace {

bool has_image_extension(const fs::path& path) {
  const std::string ext = ascii_lower(path.extension().string());
  return ext == ".bmp" || ext == ".png" || ext == ".jpg" || ext == ".jpeg" || ext == ".tif" ||
         ext == ".tiff";
}

bool is_image_file(const fs::directory_entry& entry) {
  return entry.is_regular_file() && has_image_extension(entry.path());
}

bool is_hidden(const fs::path& path) {
  return path.filename().string().rfind('.', 0) == 0;
}

// The image files directly in `folder`, sorted (directory order differs
// between file systems, and the crops follow the image order).
std::vector<fs::path> images_in(const fs::path& folder) {
  std::vector<fs::path> images;
  for (const auto& entry : fs::directory_iterator(folder))
    if (!is_hidden(entry.path()) && is_image_file(entry)) images.push_back(entry.path());
  std::sort(images.begin(), images.end());
  return images;
}

std::vector<fs::path> subfolders(const fs::path& folder) {
  std::vector<fs::path> folders;
  for (const auto& entry : fs::directory_iterator(folder))
    if (entry.is_directory() && !is_hidden(entry.path())) folders.push_back(entry.path());
  std::sort(folders.begin(), folders.end());
  return folders;
}

std::string folder_names(const std::vector<fs::path>& paths) {
  std::vector<std::string> names;
  for (const auto& p : paths) names.push_back(p.filename().string());
  return comma_list(names);
}

// The folder holding the class folders: DIR/<split> where it exists, DIR
// itself for the default split (train) and for all.
fs::path split_folder(const fs::path& root, const std::string& split) {
  if (split.empty() || split == "all") return root;
  if (fs::is_directory(root / split)) return root / split;
  require(split == "train", (root / split).string() +
                                ": no such split folder (with class folders, --split and "
                                "--val-split name a subfolder that holds class folders)");
  return root;
}

// Each class folder of `base` with its images; a folder without images is
// no class. Throws, naming the folders, when there is none.
std::map<std::string, std::vector<fs::path>> class_folders(const fs::path& root,
                                                           const fs::path& base) {
  std::map<std::string, std::vector<fs::path>> classes;
  std::vector<fs::path> split_like;  // folders of folders: splits, not classes
  for (const auto& folder : subfolders(base)) {
    std::vector<fs::path> images = images_in(folder);
    if (!images.empty())
      classes[folder.filename().string()] = std::move(images);
    else if (!subfolders(folder).empty())
      split_like.push_back(folder);
  }
  if (!classes.empty()) return classes;
  require(split_like.empty(), base.string() + ": no class folders, but " +
                                  folder_names(split_like) +
                                  " hold folders: name the split with --split (and "
                                  "--val-split), or point --data at a folder of class folders");
  fail(root.string() +
       ": neither Grade.csv (the GlaS layout) nor class folders of images (DIR/<class>/*.png)");
}

// DIR/patients.csv: image (path under DIR) -> patient; nothing when absent.
std::optional<std::map<std::string, std::string>> read_patients(const fs::path& root) {
  const fs::path csv = root / "patients.csv";
  if (!fs::exists(csv)) return std::nullopt;
  return parse_patients_csv(read_file(csv.string()), csv.string());
}

// The TCGA participant whose barcode the file name holds anywhere (tiles cut
// from TCGA slides carry it: Kather's MSI sets name theirs
// blk-AAADLNDHLGPR-TCGA-AA-3512-01Z-00-DX1.png); "" when it holds none.
std::string tcga_participant_in(const std::string& file_name) {
  for (size_t at = file_name.find("TCGA-"); at != std::string::npos;
       at = file_name.find("TCGA-", at + 1))
    if (const auto sample = tcga_sample_of(file_name.substr(at))) return sample->participant;
  return "";
}

// Without patients.csv: the TCGA participants when every image names one,
// else each image its own patient; a note says which.
void default_patients(GlasFolder& folder) {
  std::vector<std::string> participants;
  for (const SlideImage& im : folder.images) {
    participants.push_back(tcga_participant_in(fs::path(im.path).filename().string()));
    if (participants.back().empty()) {
      folder.notes.push_back(
          folder.root +
          ": no patients.csv, so every image is its own patient: patient-level figures are "
          "per image, and cross-validation folds may split a slide's tiles between training "
          "and validation (optimistic); patients.csv (columns image, patient) groups them");
      return;
    }
  }
  for (size_t i = 0; i < participants.size(); ++i) folder.images[i].patient = participants[i];
  std::sort(participants.begin(), participants.end());
  const auto count = std::unique(participants.begin(), participants.end()) - participants.begin();
  folder.notes.push_back(folder.root + ": patients from the TCGA barcodes in the file names (" +
                         std::to_string(count) + " patients; patients.csv overrides)");
}

}  // namespace

GlasFolder open_class_folders(const std::string& root_name, const std::string& split,
                              const std::string& labels, const std::string& malignant) {
  const fs::path root(root_name);
  const fs::path base = split_folder(root, split);
  // Images are named by their path under the root: "TUM/x", "train/TUM/x".
  const std::string prefix = base == root ? "" : split + "/";
  const auto classes = class_folders(root, base);
  std::vector<std::string> names;
  for (const auto& [name, images] : classes) names.push_back(name);
  GlasFolder folder;
  folder.root = root_name;
  folder.labels = folder_label_scheme(labels, names, malignant, base.string());
  const auto patients = read_patients(root);
  std::vector<fs::path> left_out;
  for (const auto& [name, images] : classes) {
    const int label = folder.labels.find(name);
    if (label < 0) {
      left_out.push_back(name);
      continue;
    }
    for (const auto& path : images) {
      const std::string relative = prefix + name + "/" + path.filename().string();
      std::string name_only = fs::path(relative).replace_extension().generic_string();
      std::string patient = name_only;
      if (patients) {
        const auto row = patients->find(relative);
        require(row != patients->end(),
                (root / "patients.csv").string() + ": no row for image " + relative);
        patient = row->second;
      }
      folder.images.push_back({name_only, path.string(), patient, label});
    }
  }
  if (!left_out.empty())
    folder.notes.push_back(base.string() + ": class folders left out by --labels " + labels + ": " +
                           folder_names(left_out));
  if (!patients) default_patients(folder);
  return folder;
}

std::vector<std::string> images_under(const std::string& folder) {
  std::vector<std::string> images;
  walk_folders(folder, [&](const std::string&, const FolderEntries& entries) {
    for (const std::string& file : entries.files) {
      const fs::path path(file);
      const std::string stem = path.stem().string();
      const bool mask = stem.size() > 5 && stem.compare(stem.size() - 5, 5, "_anno") == 0;
      if (has_image_extension(path) && !mask && !is_hidden(path)) images.push_back(file);
    }
  });
  std::sort(images.begin(), images.end());
  require(!images.empty(), folder + ": no images (bmp, png, jpg, tif) in this folder or below");
  return images;
}

GlasFolder open_dataset_folder(const std::string& root, const std::string& split,
                               const std::string& labels, const std::string& malignant) {
  require(fs::is_directory(root), root + ": data folder not found");
  if (!fs::exists(fs::path(root) / "Grade.csv"))
    return open_class_folders(root, split, labels, malignant);
  require(malignant.empty(), "--malignant-classes: only for class-folder data; " + root +
                                 "/Grade.csv's 'grade (GlaS)' column says which images are "
                                 "malignant");
  return open_glas_folder(root, split, labels);
}

}  // namespace histocnn
