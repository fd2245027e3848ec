// What a network is taught to tell apart: a column of Grade.csv and its
// classes, in label order. Three are built in:
//
//   glas    "grade (GlaS)": benign, malignant (the paper's task; the default)
//   grade5  "grade (Sirinukunwattana et al. 2015)": healthy, adenomatous,
//           moderately differentiated, moderately-to-poorly differentiated,
//           poorly differentiated — the five ordered grades (the release
//           spells one "differentated"; both spellings are read)
//   NAME    any other column by its header; its classes are its distinct
//           values in sorted order, or as listed: "NAME=a,b,c" (ordered)
//
// A scheme knows which of its classes are malignant in the GlaS sense when
// that is fixed (glas, grade5) or when the data show it (every image of each
// class has one GlaS grade): the model then also answers benign/malignant,
// P(malignant) being the sum of its malignant classes' probabilities.
#pragma once

#include <string>
#include <vector>

#include "data/grade_csv.h"

namespace histocnn {

// LabelScheme::column of a scheme read from class folders, not a CSV column.
inline constexpr const char* kClassFolderColumn = "class folder";

struct LabelScheme {
  std::string name = "glas";            // as given to --labels
  std::string column = "grade (GlaS)";  // the Grade.csv header it reads
  std::vector<std::string> classes = {"benign", "malignant"};
  // Per class: true when it is malignant in the GlaS sense; empty: unknown
  // (no benign/malignant view).
  std::vector<bool> malignant = {false, true};

  int count() const { return int(classes.size()); }
  // Whether label order means something (neighbouring labels are closer):
  // the built-ins, and a column whose classes were listed ("NAME=a,b,c");
  // not a column's classes in sorted order.
  bool ordered() const {
    return name == "glas" || name == "grade5" || name.find('=') != std::string::npos;
  }
  bool has_binary_view() const { return !malignant.empty(); }
  bool from_class_folders() const { return column == kClassFolderColumn; }
  // The class index of a value (case, spaces and the release's spelling
  // forgiven); -1 when it is none of the classes.
  int find(const std::string& value) const;
  // The class index of a Grade.csv value (case, spaces and the release's
  // spelling forgiven); throws naming `where` for a value not in the scheme.
  int index_of(const std::string& value, const std::string& where) const;
};

// The scheme --labels names, its classes read from `rows` where the name is a
// column (and the binary view derived from the rows' GlaS grades). `origin`
// names the CSV in errors.
LabelScheme resolve_label_scheme(const std::string& labels, const std::vector<GradeRow>& rows,
                                 const std::string& origin);

// The scheme of a class-folder dataset (data/image_folders.h), `folders` its
// class folders' names in sorted order:
//   "folders"        every folder a class, in sorted order
//   "folders=a,b,c"  these folders, in this order (the others left out)
//   "glas"           (the default) folders named benign and malignant; any
//                    other folders as "folders"
// `malignant` lists the malignant classes; empty: by name, a class whose name
// holds a word such as malignant, tumour, carcinoma, TUM (Kather's
// NCT-CRC-HE-100K) or aca (LC25000's colon_aca). Every scheme needs a benign
// and a malignant class (eval, predict and slide answer benign/malignant);
// errors name `origin` (the folder) and the flag.
LabelScheme folder_label_scheme(const std::string& labels, const std::vector<std::string>& folders,
                                const std::string& malignant, const std::string& origin);

// Whether a class name reads as malignant (the default of folder_label_scheme).
bool malignant_by_name(const std::string& class_name);

// The built-in schemes, without data ("glas", "grade5"); throws for others.
LabelScheme builtin_label_scheme(const std::string& name);

// Every row's class under `scheme` (throws naming the CSV line's image).
std::vector<int> class_labels(const LabelScheme& scheme, const std::vector<GradeRow>& rows,
                              const std::string& origin);

}  // namespace histocnn
