# XML region annotations (ASAP, Aperio ImageScope: src/data/annotations_xml.cpp)
# are parsed by pugixml (Debian libpugixml-dev). Its static library is
# preferred, so the relocatable package (scripts/package.sh) carries no extra
# shared library for it.
find_package(pugixml REQUIRED)
if(TARGET pugixml::static)
  set(HISTOCNN_PUGIXML pugixml::static)
else()
  set(HISTOCNN_PUGIXML pugixml::pugixml)
endif()
