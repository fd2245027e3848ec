# DICOM whole-slide images (src/data/dicom_slide.cpp): dcmtk parses the files
# (Debian libdcmtk-dev; only its three core libraries are linked, not the
# network and codec libraries its pkg-config file lists), libjpeg-turbo and
# OpenJPEG decode the frames (libjpeg62-turbo-dev, libopenjp2-7-dev).
find_path(DCMTK_INCLUDE_DIR dcmtk/dcmdata/dcfilefo.h REQUIRED)
find_library(DCMTK_DCMDATA_LIBRARY dcmdata REQUIRED)
find_library(DCMTK_OFLOG_LIBRARY oflog REQUIRED)
find_library(DCMTK_OFSTD_LIBRARY ofstd REQUIRED)
pkg_check_modules(LIBJPEG REQUIRED IMPORTED_TARGET libjpeg)
pkg_check_modules(OPENJPEG REQUIRED IMPORTED_TARGET libopenjp2)
add_library(histocnn_dcmtk INTERFACE)
target_include_directories(histocnn_dcmtk SYSTEM INTERFACE ${DCMTK_INCLUDE_DIR})
target_link_libraries(histocnn_dcmtk INTERFACE ${DCMTK_DCMDATA_LIBRARY} ${DCMTK_OFLOG_LIBRARY}
                      ${DCMTK_OFSTD_LIBRARY})
set(HISTOCNN_DICOM_LIBRARIES histocnn_dcmtk PkgConfig::LIBJPEG PkgConfig::OPENJPEG)
