// Region annotations as QuPath, ASAP and Aperio ImageScope write them
// (data/annotations.h) and a slide's tiles checked against them
// (slide/tile_truth.h): polygons with holes, multipolygons, classes that
// count and those that do not, regions cut out of tumours, markers, our own
// detections never read as annotations, and one-line errors.
#include <gtest/gtest.h>

#include "data/annotations.h"
#include "slide/tile_truth.h"
#include "test_util.h"

namespace histocnn {
namespace {

using testing::error_of;

// A 10 x 10 "Tumor" square with a 2 x 2 hole at (4..6, 4..6), a "Stroma"
// square at x 20..30, and a second tumour as a MultiPolygon at x 40..50 and
// x 60..70; our own tiles.geojson detection over everything.
const char* kQuPath = R"({"type": "FeatureCollection", "features": [
  {"type": "Feature", "properties": {"objectType": "annotation",
     "classification": {"name": "Tumor", "color": [200, 0, 0]}},
   "geometry": {"type": "Polygon", "coordinates": [
     [[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]],
     [[4, 4], [6, 4], [6, 6], [4, 6], [4, 4]]]}},
  {"type": "Feature", "properties": {"classification": {"name": "Stroma"}},
   "geometry": {"type": "Polygon", "coordinates": [[[20, 0], [30, 0], [30, 10], [20, 10]]]}},
  {"type": "Feature", "properties": {"classification": "carcinoma"},
   "geometry": {"type": "MultiPolygon", "coordinates": [
     [[[40, 0], [50, 0], [50, 10], [40, 10]]], [[[60, 0], [70, 0], [70, 10], [60, 10]]]]}},
  {"type": "Feature", "properties": {"objectType": "detection",
     "classification": {"name": "Malignant"}},
   "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [99, 0], [99, 99], [0, 99]]]}}
]})";

TEST(Annotations, PolygonsHolesAndClassesAsQuPathWritesThem) {
  const Annotations a = parse_annotations(kQuPath, "a.geojson", default_annotation_classes());
  EXPECT_EQ(a.malignant.size(), 3u);  // the square and the multipolygon's two
  EXPECT_EQ(a.ignored, 1);            // stroma; the detection is not an annotation
  EXPECT_TRUE(a.malignant_at(2, 2));
  EXPECT_FALSE(a.malignant_at(5, 5)) << "in the hole";
  EXPECT_FALSE(a.malignant_at(25, 5)) << "stroma";
  EXPECT_TRUE(a.malignant_at(45, 5));
  EXPECT_TRUE(a.malignant_at(65, 5));
  EXPECT_FALSE(a.malignant_at(55, 5));
  EXPECT_FALSE(a.malignant_at(80, 80)) << "only the detection covers it";
  EXPECT_DOUBLE_EQ(a.malignant_fraction(45, 0, 10, 10), 0.5);  // half on x 40..50
  EXPECT_DOUBLE_EQ(a.malignant_fraction(3, 3, 4, 4), 0.75);    // the hole's quarter of it
  const Annotations every = parse_annotations(kQuPath, "a.geojson", {"any"});
  EXPECT_EQ(every.malignant.size(), 4u);
  EXPECT_TRUE(every.malignant_at(25, 5));
  const Annotations stroma = parse_annotations(kQuPath, "a.geojson", {"STROMA"});
  EXPECT_EQ(stroma.malignant.size(), 1u);
  EXPECT_EQ(stroma.ignored, 2);
  // A bare array of features, as QuPath writes for a selection.
  const Annotations bare = parse_annotations(
      R"([{"type": "Feature", "properties": {"classification": {"name": "Tumour"}},
           "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [4, 0], [0, 4]]]}}])",
      "b.json", default_annotation_classes());
  EXPECT_TRUE(bare.malignant_at(1, 1));
  EXPECT_FALSE(bare.malignant_at(3, 3));
}

TEST(Annotations, MistakesGetOneLineNamingTheFileAndFeature) {
  auto error = [](const std::string& content) {
    return error_of([&] { parse_annotations(content, "r.geojson", {"any"}); });
  };
  EXPECT_EQ(error("{\"features\": ["),
            "r.geojson: neither JSON nor XML (expected QuPath GeoJSON, ASAP XML or Aperio "
            "ImageScope XML annotations)");
  EXPECT_EQ(error(R"({"type": "Feature"})"),
            "r.geojson: not GeoJSON annotations (expected a FeatureCollection, as QuPath's File "
            "> Export objects as GeoJSON writes)");
  EXPECT_EQ(error(R"([{"geometry": {"type": "Point", "coordinates": [1, 2]}}])"),
            "r.geojson feature 0: a Point region (only Polygon and MultiPolygon outline an area)");
  EXPECT_EQ(error(R"([{"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, 1]]]}}])"),
            "r.geojson feature 0: a ring needs at least 3 [x, y] points");
  EXPECT_EQ(
      error(R"([{"geometry": {"type": "Polygon", "coordinates": [[[0, 0], [1, "a"], [2, 2]]]}}])"),
      "r.geojson feature 0: a point is not [x, y] numbers");
  EXPECT_EQ(error(R"([{"properties": {}}])"), "r.geojson feature 0: no geometry");
  EXPECT_EQ(error("[3]"), "r.geojson feature 0: not a GeoJSON feature");
  testing::TempDir dir;
  EXPECT_EQ(error_of([&] { read_annotations(dir / "x.geojson", {"any"}); }),
            (dir / "x.geojson") + ": no such annotation file");
}

// CAMELYON16's layout: groups _0 and _1 are tumour, _2 is normal tissue
// inside a tumour. A 100 x 100 square (_0) with a 20 x 20 cut-out (_2) at
// 40..60, its points given out of Order; a triangle (_1) beside it; a
// "Tumor" group nested under "Lesions" holding a rectangle at y 200..210; a
// dot and a ruler in tumour groups, which outline nothing; a "Stroma" polygon.
const char* kAsap = R"(<?xml version="1.0"?>
<ASAP_Annotations>
  <Annotations>
    <Annotation Name="Annotation 0" Type="Polygon" PartOfGroup="_0" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="2" X="100" Y="100" />
        <Coordinate Order="0" X="0" Y="0" />
        <Coordinate Order="3" X="0" Y="100" />
        <Coordinate Order="1" X="100" Y="0" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 1" Type="Polygon" PartOfGroup="_2" Color="#64FE2E">
      <Coordinates>
        <Coordinate Order="0" X="40" Y="40" /><Coordinate Order="1" X="60" Y="40" />
        <Coordinate Order="2" X="60" Y="60" /><Coordinate Order="3" X="40" Y="60" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 2" Type="Spline" PartOfGroup="_1" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="0" X="150" Y="0" /><Coordinate Order="1" X="190" Y="0" />
        <Coordinate Order="2" X="150" Y="40" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 3" Type="Rectangle" PartOfGroup="Micro" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="0" X="0" Y="200" /><Coordinate Order="1" X="10" Y="200" />
        <Coordinate Order="2" X="10" Y="210" /><Coordinate Order="3" X="0" Y="210" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 4" Type="Dot" PartOfGroup="_0" Color="#F4FA58">
      <Coordinates><Coordinate Order="0" X="500" Y="500" /></Coordinates>
    </Annotation>
    <Annotation Name="Annotation 5" Type="Measurement" PartOfGroup="_1" Color="#F4FA58">
      <Coordinates>
        <Coordinate Order="0" X="500" Y="500" /><Coordinate Order="1" X="600" Y="600" />
      </Coordinates>
    </Annotation>
    <Annotation Name="Annotation 6" Type="Polygon" PartOfGroup="Stroma" Color="#000000">
      <Coordinates>
        <Coordinate Order="0" X="300" Y="0" /><Coordinate Order="1" X="400" Y="0" />
        <Coordinate Order="2" X="400" Y="100" />
      </Coordinates>
    </Annotation>
  </Annotations>
  <AnnotationGroups>
    <Group Name="_0" PartOfGroup="None" Color="#FF0000"><Attributes /></Group>
    <Group Name="_1" PartOfGroup="None" Color="#FF0000"><Attributes /></Group>
    <Group Name="_2" PartOfGroup="None" Color="#00FF00"><Attributes /></Group>
    <Group Name="Micro" PartOfGroup="Tumor" Color="#FF0000"><Attributes /></Group>
    <Group Name="Tumor" PartOfGroup="Micro" Color="#FF0000"><Attributes /></Group>
    <Group Name="Stroma" PartOfGroup="None" Color="#00FF00"><Attributes /></Group>
  </AnnotationGroups>
</ASAP_Annotations>
)";

TEST(Annotations, AsapXmlAsCamelyonShipsIt) {
  const Annotations a = parse_annotations(kAsap, "tumor_001.xml", default_annotation_classes());
  EXPECT_EQ(a.format, "ASAP XML");
  EXPECT_EQ(a.malignant.size(), 3u);  // the square, the triangle, the nested group's rectangle
  EXPECT_EQ(a.excluded.size(), 1u);   // _2
  EXPECT_EQ(a.markers, 2);            // the dot and the ruler
  EXPECT_EQ(a.ignored, 1);            // stroma
  EXPECT_TRUE(a.malignant_at(10, 10));
  EXPECT_TRUE(a.malignant_at(90, 10)) << "Order, not document order, joins the corners";
  EXPECT_FALSE(a.malignant_at(50, 50)) << "cut out by _2";
  EXPECT_TRUE(a.malignant_at(155, 5));
  EXPECT_FALSE(a.malignant_at(185, 35)) << "beyond the triangle's diagonal";
  EXPECT_TRUE(a.malignant_at(5, 205)) << "Micro is part of Tumor (the cycle back ends)";
  EXPECT_FALSE(a.malignant_at(350, 10)) << "stroma";
  EXPECT_DOUBLE_EQ(a.malignant_fraction(40, 0, 20, 80), 0.75);  // the cut-out's quarter of it
  // The ruler counts as nothing, whatever the classes; "any" takes stroma
  // but never the exclusion.
  const Annotations every = parse_annotations(kAsap, "tumor_001.xml", {"any"});
  EXPECT_EQ(every.malignant.size(), 4u);
  EXPECT_EQ(every.excluded.size(), 1u);
  EXPECT_FALSE(every.malignant_at(50, 50));
  const Annotations micro = parse_annotations(kAsap, "tumor_001.xml", {"MICRO"});
  EXPECT_EQ(micro.malignant.size(), 1u);
  EXPECT_EQ(micro.ignored, 5);  // _0 square, _1 triangle, the dot, the ruler, stroma
}

// Two layers as ImageScope saves them: "Tumor" (a 100 x 100 square with a
// negative 20 x 20 region cut out, and a two-point ellipse) and "Layer 2"
// whose region's Text is "carcinoma" beside one without text.
const char* kImageScope = R"(<?xml version="1.0" encoding="UTF-8"?>
<Annotations MicronsPerPixel="0.252100">
  <Annotation Id="1" Name="Tumor" ReadOnly="0" LineColor="65280" Visible="1">
    <Attributes><Attribute Name="Description" Id="0" Value=""/></Attributes>
    <Regions>
      <RegionAttributeHeaders><AttributeHeader Id="9999" Name="Region" ColumnWidth="-1"/>
      </RegionAttributeHeaders>
      <Region Id="1" Type="0" Zoom="0.5" Text="" NegativeROA="0">
        <Attributes/>
        <Vertices><Vertex X="0" Y="0" Z="0"/><Vertex X="100" Y="0" Z="0"/>
          <Vertex X="100" Y="100" Z="0"/><Vertex X="0" Y="100" Z="0"/></Vertices>
      </Region>
      <Region Id="2" Type="0" Zoom="0.5" Text="" NegativeROA="1">
        <Attributes/>
        <Vertices><Vertex X="40" Y="40"/><Vertex X="60" Y="40"/><Vertex X="60" Y="60"/>
          <Vertex X="40" Y="60"/></Vertices>
      </Region>
      <Region Id="3" Type="2" Zoom="0.5" Text="" NegativeROA="0">
        <Vertices><Vertex X="300" Y="300"/><Vertex X="400" Y="400"/></Vertices>
      </Region>
    </Regions>
    <Plots/>
  </Annotation>
  <Annotation Id="2" Name="Layer 2" LineColor="255">
    <Attributes><Attribute Name="Description" Id="0" Value=""/></Attributes>
    <Regions>
      <Region Id="1" Type="0" Text="carcinoma" NegativeROA="0">
        <Vertices><Vertex X="200" Y="0"/><Vertex X="210" Y="0"/><Vertex X="210" Y="10"/>
        </Vertices>
      </Region>
      <Region Id="2" Type="0" Text="" NegativeROA="1">
        <Vertices><Vertex X="500" Y="0"/><Vertex X="510" Y="0"/><Vertex X="510" Y="10"/>
        </Vertices>
      </Region>
      <Region Id="3" Type="0" Text="lymphocytes" NegativeROA="0">
        <Vertices><Vertex X="600" Y="0"/><Vertex X="610" Y="0"/><Vertex X="610" Y="10"/>
        </Vertices>
      </Region>
    </Regions>
  </Annotation>
</Annotations>
)";

TEST(Annotations, AperioImageScopeXmlWithNegativeRegions) {
  const Annotations a = parse_annotations(kImageScope, "TCGA-01.xml", default_annotation_classes());
  EXPECT_EQ(a.format, "Aperio ImageScope XML");
  EXPECT_EQ(a.malignant.size(), 2u);  // the Tumor layer's square, Layer 2's carcinoma
  EXPECT_EQ(a.excluded.size(), 1u);   // the negative region of the Tumor layer
  EXPECT_EQ(a.markers, 1);            // the two-point ellipse
  EXPECT_EQ(a.ignored, 2);            // Layer 2's negative region and its lymphocytes
  EXPECT_TRUE(a.malignant_at(10, 10));
  EXPECT_FALSE(a.malignant_at(50, 50)) << "the negative region";
  EXPECT_TRUE(a.malignant_at(208, 2));
  EXPECT_FALSE(a.malignant_at(605, 2));
  EXPECT_FALSE(a.malignant_at(350, 350)) << "an ellipse's two points outline nothing";
  const Annotations layer = parse_annotations(kImageScope, "TCGA-01.xml", {"layer 2"});
  EXPECT_EQ(layer.malignant.size(), 2u);  // carcinoma and lymphocytes
  EXPECT_EQ(layer.excluded.size(), 1u);   // Layer 2's negative region now
  EXPECT_FALSE(layer.malignant_at(10, 10));
}

// A HALO .annotations file (Indica Labs): layer "Tumor" with a polygon, a
// negative polygon cut out of it, a rectangle and an ellipse each given by
// two corners, a ruler and a pin; layer "Stroma" with a polygon.
const char* kHalo = R"(<Annotations>
  <Annotation LineColor="65280" Name="Tumor" Visible="True">
    <Regions>
      <Region Type="Polygon" HasEndcaps="0" NegativeROA="0">
        <Vertices><V X="0" Y="0"/><V X="100" Y="0"/><V X="100" Y="100"/><V X="0" Y="100"/>
        </Vertices>
      </Region>
      <Region Type="Polygon" HasEndcaps="0" NegativeROA="1">
        <Vertices><V X="40" Y="40"/><V X="60" Y="40"/><V X="60" Y="60"/><V X="40" Y="60"/>
        </Vertices>
      </Region>
      <Region Type="Rectangle" HasEndcaps="0" NegativeROA="0">
        <Vertices><V X="300" Y="100"/><V X="200" Y="0"/></Vertices>
      </Region>
      <Region Type="Ellipse" HasEndcaps="0" NegativeROA="0">
        <Vertices><V X="400" Y="0"/><V X="600" Y="100"/></Vertices>
      </Region>
      <Region Type="Ruler" HasEndcaps="1" NegativeROA="0">
        <Vertices><V X="700" Y="0"/><V X="800" Y="0"/></Vertices>
      </Region>
      <Region Type="Pin" HasEndcaps="0" NegativeROA="0">
        <Vertices><V X="900" Y="0"/></Vertices>
      </Region>
    </Regions>
  </Annotation>
  <Annotation LineColor="255" Name="Stroma" Visible="True">
    <Regions>
      <Region Type="Polygon" HasEndcaps="0" NegativeROA="0">
        <Vertices><V X="0" Y="500"/><V X="10" Y="500"/><V X="10" Y="510"/></Vertices>
      </Region>
    </Regions>
  </Annotation>
</Annotations>
)";

TEST(Annotations, HaloXmlRectanglesAndEllipsesFromTheirCorners) {
  const Annotations a = parse_annotations(kHalo, "case.annotations", default_annotation_classes());
  EXPECT_EQ(a.format, "HALO XML");
  EXPECT_EQ(a.malignant.size(), 3u);  // the polygon, the rectangle, the ellipse
  EXPECT_EQ(a.excluded.size(), 1u);   // the negative polygon
  EXPECT_EQ(a.markers, 2);            // the ruler and the pin
  EXPECT_EQ(a.ignored, 1);            // the stroma
  EXPECT_TRUE(a.malignant_at(10, 10));
  EXPECT_FALSE(a.malignant_at(50, 50)) << "the negative region";
  EXPECT_TRUE(a.malignant_at(210, 90)) << "the rectangle, corners in either order";
  EXPECT_TRUE(a.malignant_at(500, 50)) << "the ellipse's centre";
  EXPECT_TRUE(a.malignant_at(405, 50)) << "inside, near the end of its long axis";
  EXPECT_FALSE(a.malignant_at(410, 10)) << "inside the rectangle around it, outside the ellipse";
  EXPECT_FALSE(a.malignant_at(750, 0));
  // The ellipse's area: pi * 100 * 50, from the shares of its bounding box.
  EXPECT_NEAR(a.malignant_fraction(400, 0, 200, 100), M_PI / 4, 0.03);
  auto error = [](const std::string& region) {
    return error_of([&] {
      parse_annotations("<Annotations><Annotation Name=\"Tumor\"><Regions>" + region +
                            "</Regions></Annotation></Annotations>",
                        "h.annotations", {"tumor"});
    });
  };
  EXPECT_EQ(error("<Region Type=\"Spiral\"><Vertices><V X=\"0\" Y=\"0\"/></Vertices></Region>"),
            "h.annotations layer 0 region 0: Type=\"Spiral\" (Polygon, Rectangle and Ellipse "
            "outline an area; Ruler and Pin mark points)");
  EXPECT_EQ(error("<Region Type=\"Ellipse\"><Vertices><V X=\"0\" Y=\"0\"/></Vertices></Region>"),
            "h.annotations layer 0 region 0: Ellipse with 1 vertices (two opposite corners "
            "expected)");
  EXPECT_EQ(error("<Region Type=\"Polygon\"><Vertices><V X=\"0\" Y=\"zero\"/></Vertices></Region>"),
            "h.annotations layer 0 region 0: Y=\"zero\" is not a number");
}

TEST(Annotations, XmlMistakesGetOneLineNamingTheFileAndShape) {
  auto error = [](const std::string& content) {
    return error_of([&] { parse_annotations(content, "r.xml", {"any"}); });
  };
  EXPECT_EQ(error("<ASAP_Annotations><Annotations>"),
            "r.xml: not well-formed XML (Start-end tags mismatch at byte 30)");
  EXPECT_EQ(error("<svg/>"),
            "r.xml: XML, but neither ASAP's <ASAP_Annotations> nor Aperio ImageScope's or "
            "HALO's <Annotations>");
  EXPECT_EQ(error("<ASAP_Annotations/>"), "r.xml: ASAP annotations without <Annotations>");
  auto asap = [](const std::string& type, const std::string& points) {
    return "<ASAP_Annotations><Annotations><Annotation Name=\"A 7\" Type=\"" + type +
           "\" PartOfGroup=\"_0\"><Coordinates>" + points +
           "</Coordinates></Annotation></Annotations></ASAP_Annotations>";
  };
  const std::string three =
      R"(<Coordinate X="0" Y="0"/><Coordinate X="1" Y="0"/><Coordinate X="1" Y="1"/>)";
  EXPECT_EQ(parse_annotations(asap("Polygon", three), "r.xml", {"any"}).malignant.size(), 1u);
  EXPECT_EQ(error(asap("Ellipse", three)),
            "r.xml annotation 0 (A 7): Type=\"Ellipse\" (Polygon, Spline and Rectangle outline an "
            "area; Dot, PointSet and Measurement mark points)");
  EXPECT_EQ(error(asap("Polygon", R"(<Coordinate X="0" Y="0"/><Coordinate X="1" Y="1"/>)")),
            "r.xml annotation 0 (A 7): a ring needs at least 3 [x, y] points");
  EXPECT_EQ(error(asap("Polygon", R"(<Coordinate X="0" Y="0"/><Coordinate X="1,5" Y="0"/>)")),
            "r.xml annotation 0 (A 7): X=\"1,5\" is not a number");
  EXPECT_EQ(error(asap("Polygon", R"(<Coordinate X="0"/>)")),
            "r.xml annotation 0 (A 7): a <Coordinate> without Y");
  EXPECT_EQ(error(asap("Polygon", R"(<Coordinate X="nan" Y="0"/>)")),
            "r.xml annotation 0 (A 7): X=\"nan\" is not a number");
  EXPECT_EQ(error(R"(<Annotations><Annotation Name="Tumor"><Regions><Region>
                     <Vertices><Vertex X="1e999" Y="0"/></Vertices></Region></Regions>
                     </Annotation></Annotations>)"),
            "r.xml layer 0 region 0: X=\"1e999\" is not a number");
}

TEST(Annotations, ExclusionClassesCutGeoJsonRegionsToo) {
  const Annotations a = parse_annotations(
      R"([{"properties": {"classification": {"name": "Tumor"}},
           "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [10, 0], [10, 10], [0, 10]]]}},
          {"properties": {"classification": {"name": "Exclusion"}},
           "geometry": {"type": "Polygon", "coordinates": [[[0, 0], [5, 0], [5, 10], [0, 10]]]}}])",
      "e.geojson", default_annotation_classes());
  EXPECT_EQ(a.format, "QuPath GeoJSON");
  EXPECT_EQ(a.excluded.size(), 1u);
  EXPECT_FALSE(a.malignant_at(2, 2));
  EXPECT_TRUE(a.malignant_at(8, 2));
  EXPECT_DOUBLE_EQ(a.malignant_fraction(0, 0, 10, 10), 0.5);
}

TEST(TileTruth, TilesHalfInsideAreMalignantAndScoredAsAClassifier) {
  const Annotations a = parse_annotations(kQuPath, "a.geojson", default_annotation_classes());
  // x 0..10 inside (less the hole), x 42..52 80% inside, x 48..58 20%, far out.
  const std::vector<Tile> tiles = {{0, 0, 10, 10, 1, 0, 0},
                                   {42, 0, 10, 10, 1, 0, 0},
                                   {48, 0, 10, 10, 1, 0, 0},
                                   {80, 0, 10, 10, 1, 0, 0}};
  const std::vector<TileScore> scores = {
      {0.9, 0, 0, {}, {}}, {0.4, 0, 0, {}, {}}, {0.6, 0, 0, {}, {}}, {0.1, 0, 0, {}, {}}};
  const nlohmann::json j = annotation_summary(&a, annotated_tiles(&a, tiles, scores));
  EXPECT_EQ(j["malignant_tiles"], 2);
  EXPECT_DOUBLE_EQ(j["auc"].get<double>(), 0.75);  // 0.9 > 0.6, 0.1; 0.4 > 0.1 only
  EXPECT_DOUBLE_EQ(j["sensitivity"].get<double>(), 0.5);
  EXPECT_DOUBLE_EQ(j["specificity"].get<double>(), 0.5);
  EXPECT_EQ(j["regions"], 3);
  EXPECT_EQ(j["ignored_annotations"], 1);
  EXPECT_EQ(j["format"], "QuPath GeoJSON");
  EXPECT_EQ(j["excluded_regions"], 0);
  EXPECT_EQ(j["markers"], 0);
  // A benign slide without a file: every tile benign, no AUC.
  const nlohmann::json benign =
      annotation_summary(nullptr, annotated_tiles(nullptr, tiles, scores));
  EXPECT_EQ(benign["malignant_tiles"], 0);
  EXPECT_TRUE(benign["auc"].is_null());
  EXPECT_DOUBLE_EQ(benign["specificity"].get<double>(), 0.5);
  EXPECT_TRUE(benign["file"].is_null());
}

}  // namespace
}  // namespace histocnn
