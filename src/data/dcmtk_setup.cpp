#include "data/dcmtk_setup.h"

#include <dcmtk/config/osconfig.h>  // dcmtk's own configuration comes first
#include <dcmtk/dcmdata/dcdict.h>
#include <dcmtk/oflog/oflog.h>
#include <unistd.h>

#include <climits>
#include <filesystem>
#include <mutex>
#include <string>

namespace histocnn {
namespace {

// <package>/share/dicom.dic for an executable in <package>/libexec or bin.
std::string packaged_dictionary() {
  char buf[PATH_MAX];
  const ssize_t n = readlink("/proc/self/exe", buf, sizeof buf - 1);
  if (n <= 0) return "";
  const std::filesystem::path exe(std::string(buf, size_t(n)));
  return (exe.parent_path().parent_path() / "share" / "dicom.dic").string();
}

}  // namespace

void prepare_dcmtk() {
  static std::once_flag once;
  std::call_once(once, [] {
    OFLog::configure(OFLogger::FATAL_LOG_LEVEL);
    if (dcmDataDict.isDictionaryLoaded()) return;
    const std::string packaged = packaged_dictionary();
    std::error_code ec;
    if (packaged.empty() || !std::filesystem::is_regular_file(packaged, ec)) return;
    dcmDataDict.wrlock().loadDictionary(packaged.c_str());
    dcmDataDict.wrunlock();
  });
}

}  // namespace histocnn
