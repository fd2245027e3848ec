#include "data/labels.h"

#include <algorithm>
#include <cctype>
#include <map>
#include <set>

#include "core/error.h"
#include "core/limits.h"
#include "data/csv_text.h"

namespace histocnn {
namespace {

// Lower case, inner runs of spaces as one, and the GlaS release's
// "differentated" read as "differentiated".
std::string canonical(const std::string& value) {
  std::string out;
  for (const unsigned char c : value) {
    if (std::isspace(c)) {
      if (!out.empty() && out.back() != ' ') out.push_back(' ');
    } else {
      out.push_back(char(std::tolower(c)));
    }
  }
  while (!out.empty() && out.back() == ' ') out.pop_back();
  for (size_t at; (at = out.find("differentated")) != std::string::npos;)
    out.replace(at, 13, "differentiated");
  return out;
}

std::vector<std::string> split_list(const std::string& text) {
  std::vector<std::string> items;
  size_t start = 0;
  for (size_t at; (at = text.find(',', start)) != std::string::npos; start = at + 1)
    items.push_back(text.substr(start, at - start));
  items.push_back(text.substr(start));
  for (auto& item : items) {
    const auto first = item.find_first_not_of(' ');
    const auto last = item.find_last_not_of(' ');
    item = first == std::string::npos ? "" : item.substr(first, last - first + 1);
  }
  return items;
}

// The benign/malignant view the rows show: each class's images all of one
// GlaS grade; empty when some class mixes both.
std::vector<bool> observed_malignancy(const LabelScheme& scheme, const std::vector<GradeRow>& rows,
                                      const std::vector<int>& labels) {
  std::vector<std::set<int>> grades(size_t(scheme.count()));
  for (size_t i = 0; i < rows.size(); ++i) grades[size_t(labels[i])].insert(rows[i].label);
  std::vector<bool> malignant;
  for (const auto& g : grades) {
    if (g.size() != 1) return {};
    malignant.push_back(*g.begin() == 1);
  }
  return malignant;
}

// The classes "folders=a,b,c" lists, each matched to a folder (case
// forgiven), in the listed order.
std::vector<std::string> listed_folders(const std::string& labels,
                                        const std::vector<std::string>& folders,
                                        const std::string& origin) {
  std::vector<std::string> classes;
  std::set<std::string> seen;
  for (const auto& item : split_list(labels.substr(labels.find('=') + 1))) {
    require(!item.empty() && seen.insert(canonical(item)).second,
            "--labels " + labels + ": class names must be non-empty and distinct");
    const auto folder = std::find_if(folders.begin(), folders.end(), [&](const std::string& f) {
      return canonical(f) == canonical(item);
    });
    require(folder != folders.end(), "--labels " + labels + ": " + origin +
                                         " has no class folder '" + item + "' (it has " +
                                         comma_list(folders) + ")");
    classes.push_back(*folder);
  }
  return classes;
}

// The classes --malignant-classes names, or those whose names read as
// malignant when it names none.
void mark_malignant(LabelScheme& s, const std::string& malignant) {
  s.malignant.assign(size_t(s.count()), false);
  if (malignant.empty()) {
    for (int k = 0; k < s.count(); ++k)
      s.malignant[size_t(k)] = malignant_by_name(s.classes[size_t(k)]);
    return;
  }
  for (const auto& item : split_list(malignant))
    s.malignant[size_t(s.index_of(item, "--malignant-classes"))] = true;
}

}  // namespace

int LabelScheme::find(const std::string& value) const {
  const std::string key = canonical(value);
  for (size_t k = 0; k < classes.size(); ++k)
    if (canonical(classes[k]) == key) return int(k);
  return -1;
}

int LabelScheme::index_of(const std::string& value, const std::string& where) const {
  if (const int k = find(value); k >= 0) return k;
  std::string known;
  for (const auto& c : classes) known += (known.empty() ? "" : ", ") + c;
  fail(where + ": '" + value + "' in column '" + column +
       "' is not one of the classes of --labels " + name + " (" + known + ")");
}

LabelScheme builtin_label_scheme(const std::string& name) {
  LabelScheme s;
  if (name == "glas") return s;
  require(name == "grade5", "--labels: '" + name + "' is not a built-in scheme (glas, grade5)");
  s.name = "grade5";
  s.column = "grade (Sirinukunwattana et al. 2015)";
  s.classes = {"healthy", "adenomatous", "moderately differentiated",
               "moderately-to-poorly differentiated", "poorly differentiated"};
  s.malignant = {false, false, true, true, true};
  return s;
}

std::vector<int> class_labels(const LabelScheme& scheme, const std::vector<GradeRow>& rows,
                              const std::string& origin) {
  std::vector<int> labels;
  for (const auto& row : rows) {
    const std::string where = origin + ", image " + row.name;
    if (scheme.name == "glas") {
      labels.push_back(row.label);
      continue;
    }
    const std::string* value = row.column(scheme.column);
    require(value != nullptr,
            origin + ": no column '" + scheme.column + "' for --labels " + scheme.name);
    labels.push_back(scheme.index_of(*value, where));
  }
  return labels;
}

LabelScheme resolve_label_scheme(const std::string& labels, const std::vector<GradeRow>& rows,
                                 const std::string& origin) {
  require(!labels.empty(), "--labels: empty (glas, grade5, or a Grade.csv column)");
  if (labels == "glas" || labels == "grade5") return builtin_label_scheme(labels);
  LabelScheme s;
  s.name = labels;
  const size_t equals = labels.find('=');
  s.column = labels.substr(0, equals);
  require(!rows.empty() && rows.front().column(s.column) != nullptr,
          "--labels " + labels + ": " + origin + " has no column '" + s.column + "'");
  s.classes.clear();
  if (equals != std::string::npos) {
    s.classes = split_list(labels.substr(equals + 1));
    std::set<std::string> seen;
    for (const auto& c : s.classes)
      require(!c.empty() && seen.insert(canonical(c)).second,
              "--labels " + labels + ": class names must be non-empty and distinct");
  } else {
    std::map<std::string, std::string> spelled;  // sorted, the first spelling of each
    for (const auto& row : rows) {
      const std::string& v = *row.column(s.column);
      require(!canonical(v).empty(),
              "--labels " + labels + ": " + origin + ", image " + row.name + " has no value");
      spelled.emplace(canonical(v), v);
    }
    for (const auto& [key, value] : spelled) s.classes.push_back(value);
  }
  require(s.count() >= 2 && s.count() <= kMaxClasses,
          "--labels " + labels + ": needs 2..64 classes, found " + std::to_string(s.count()));
  s.malignant = observed_malignancy(s, rows, class_labels(s, rows, origin));
  // eval, predict and slide report benign/malignant besides the classes.
  require(s.has_binary_view(),
          "--labels " + labels + ": some class of '" + s.column +
              "' holds both benign and malignant images (its 'grade (GlaS)'), so its model "
              "could not also answer benign/malignant; histocnn needs classes that do");
  return s;
}

bool malignant_by_name(const std::string& class_name) {
  static const std::set<std::string> kMalignant = {
      "malignant", "malignancy",     "tumor", "tumour",     "tum",       "cancer",
      "carcinoma", "adenocarcinoma", "aca",   "metastasis", "metastases"};
  // "non-tumour", "tumour-free", "benign tumour": a word that negates.
  static const std::set<std::string> kNegating = {"non",     "no",     "not",   "free",
                                                  "without", "benign", "normal"};
  bool malignant = false;
  std::string word;
  for (const unsigned char c : canonical(class_name) + " ") {
    if (std::isalnum(c)) {
      word.push_back(char(c));
      continue;
    }
    if (kNegating.count(word)) return false;
    malignant = malignant || kMalignant.count(word) > 0;
    word.clear();
  }
  return malignant;
}

LabelScheme folder_label_scheme(const std::string& labels, const std::vector<std::string>& folders,
                                const std::string& malignant, const std::string& origin) {
  LabelScheme s;
  s.column = kClassFolderColumn;
  std::vector<std::string> canonical_folders;
  for (const auto& f : folders) canonical_folders.push_back(canonical(f));
  std::sort(canonical_folders.begin(), canonical_folders.end());
  const bool glas_named = canonical_folders == std::vector<std::string>{"benign", "malignant"};
  if (labels == "glas" && glas_named) {
    // the GlaS scheme's own classes, so a GlaS model evaluates these folders
  } else if (labels == "glas" || labels == "folders") {
    s.name = "folders";
    s.classes = folders;
  } else {
    require(labels.rfind("folders=", 0) == 0,
            "--labels " + labels + ": " + origin +
                " holds class folders, not Grade.csv: use folders (every folder a class) or "
                "folders=a,b,c (these, in this order)");
    s.name = labels;
    s.classes = listed_folders(labels, folders, origin);
  }
  require(s.count() >= 2 && s.count() <= kMaxClasses,
          origin + ": needs 2..64 class folders, found " + std::to_string(s.count()) +
              (s.classes.empty() ? "" : " (" + comma_list(s.classes) + ")"));
  mark_malignant(s, malignant);
  const auto malignant_count = std::count(s.malignant.begin(), s.malignant.end(), true);
  require(malignant_count > 0,
          origin + ": no class reads as malignant (" + comma_list(s.classes) +
              "): name them with --malignant-classes (eval, predict and slide answer "
              "benign/malignant)");
  require(malignant_count < s.count(), origin + ": every class is malignant (" +
                                           comma_list(s.classes) +
                                           "): --malignant-classes must leave a benign class");
  return s;
}

}  // namespace histocnn
