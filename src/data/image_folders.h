// Training data in either of the two layouts pathology datasets ship in:
//
//   GlaS       DIR/Grade.csv beside DIR/NAME.bmp|png|jpg|tif (data/dataset.h)
//   classes    DIR/<class>/<images>, one folder per class, as torchvision's
//              ImageFolder reads it: Kather's NCT-CRC-HE-100K (nine tissue
//              classes), LC25000's colon_image_sets (colon_aca, colon_n).
//              The images lie directly in their class folder (a folder
//              of folders is a split, not a class; hidden files and
//              folders are skipped). Split folders may hold the class folders
//              (DIR/train/<class>/, DIR/val/<class>/): --split and
//              --val-split name them.
//
// Class folders carry no patients. DIR/patients.csv (columns image, patient;
// image the file's path under DIR, e.g. TUM/TUM-AAAFLCLY.tif) groups them.
// Without it, when every file name holds a TCGA barcode (tiles cut from TCGA
// slides) its participant is the patient; otherwise every image is its own
// patient and the folder says so in its notes, since folds then split tiles
// of one slide between training and validation.
#pragma once

#include <string>
#include <vector>

#include "data/dataset.h"

namespace histocnn {

// The images of `split` under `root` in whichever layout it has. `labels`
// is --labels (data/labels.h; for class folders folder_label_scheme's
// forms), `malignant` is --malignant-classes (class folders only: Grade.csv
// says which images are malignant). Images are named by their path under
// `root` without the extension ("TUM/TUM-AAAFLCLY", "train/TUM/..."), in
// sorted order. Errors name the folder or file and the flag.
GlasFolder open_dataset_folder(const std::string& root, const std::string& split = "",
                               const std::string& labels = "glas",
                               const std::string& malignant = "");

// The class-folder layout alone (what open_dataset_folder reads when `root`
// has no Grade.csv).
GlasFolder open_class_folders(const std::string& root, const std::string& split,
                              const std::string& labels, const std::string& malignant);

// Every image file (bmp, png, jpg/jpeg, tif/tiff, by extension) in `folder`
// or below, sorted by path; hidden files and folders and GlaS annotation
// masks (NAME_anno.bmp) left out; links followed, each folder read once.
// An Error names a folder holding none.
std::vector<std::string> images_under(const std::string& folder);

}  // namespace histocnn
