// Hostile flag values and combinations of the whole-slide commands (slide,
// tiles, synth --slide), as a table (the fixture and the runner:
// hostile_fixture.h; the other commands' flags: test_hostile_flags.cpp).
// Each must end in a one-line message naming the flag, with nothing written.
#include <filesystem>

#include "core/atomic_file.h"
#include "hostile_fixture.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;

TEST_F(Hostile, EverySlideFlagRefusalNamesItsFlagAndWritesNothing) {
  const std::string d = path("d"), m = path("m/model.safetensors");
  const std::vector<HostileCase> cases = {
      {"slide --mpp nan",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --mpp nan -o " + path("never");
       },
       1,
       {"--mpp nan", "not a finite number"},
       {}},
      {"slide --min-tissue 2",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --min-tissue 2 -o " + path("never");
       },
       2,
       {"--min-tissue"},
       {}},
      {"slide --min-focus nan",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --min-focus nan -o " + path("never");
       },
       1,
       {"--min-focus nan", "not a finite number"},
       {}},
      {"slide --min-focus negative, and past any tile's",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --min-focus -5 -o " + path("never");
       },
       2,
       {"--min-focus"},
       {}},
      {"slide --min-focus huge",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --min-focus 1e300 -o " +
                path("never");
       },
       2,
       {"--min-focus"},
       {}},
      {"synth --out-of-focus without a slide",
       [&] { return "synth -o " + path("never") + " --out-of-focus 3"; },
       2,
       {"--out-of-focus", "--slide"},
       {}},
      {"synth --out-of-focus past 50 microns",
       [&] { return "synth --slide " + path("never.tif") + " --out-of-focus 80"; },
       2,
       {"--out-of-focus"},
       {}},
      {"slide --reader bogus",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --reader bogus -o " + path("never");
       },
       2,
       {"--reader"},
       {}},
      {"slide --slide-threshold 2",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --slide-labels " +
                path("d/Grade.csv") + " --slide-threshold 2 -o " + path("never");
       },
       2,
       {"--slide-threshold"},
       {}},
      {"slide --slide-threshold nan",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --slide-labels " +
                path("d/Grade.csv") + " --slide-threshold nan -o " + path("never");
       },
       1,
       {"--slide-threshold nan", "not a finite number"},
       {}},
      {"slide --slide-score bogus",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --slide-labels " +
                path("d/Grade.csv") + " --slide-score median -o " + path("never");
       },
       2,
       {"--slide-score"},
       {}},
      {"slide --slide-score without labels",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --mpp 0.6 --slide-score max -o " +
                path("never");
       },
       1,
       {"--slide-score", "labels are needed", "--tcga-labels"},
       {}},
      {"slide --tcga-labels on a slide whose name holds no TCGA barcode",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --mpp 0.6 --tcga-labels -o " +
                path("never");
       },
       1,
       {"--tcga-labels", "no TCGA barcode", "train_1"},
       {"d/train_1.png"}},
      {"tiles --tcga-labels with --slide-labels",
       [&] {
         return "tiles " + path("d/train_1.png") + " --tcga-labels --slide-labels " +
                path("d/Grade.csv") + " -o " + path("never");
       },
       2,
       {"--slide-labels", "excludes", "--tcga-labels"},
       {}},
      {"slide --slide-labels a folder",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --slide-labels " + d + " -o " +
                path("never");
       },
       1,
       {"--slide-labels", "not a regular file"},
       {}},
      {"slide --slide-labels an image",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --slide-labels " +
                path("d/train_1.png") + " -o " + path("never");
       },
       1,
       {"train_1.png", "'slide' and 'label'"},
       {}},
      {"slide --slide-labels Grade.csv (not a slide list)",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --slide-labels " +
                path("d/Grade.csv") + " -o " + path("never");
       },
       1,
       {"Grade.csv", "'slide' and 'label'"},
       {}},
      {"slide --annotations not a folder",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --annotations " +
                path("no-such-folder") + " -o " + path("never");
       },
       1,
       {"--annotations", "not a folder"},
       {}},
      {"slide --annotation-classes without --annotations",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --annotation-classes tumor -o " +
                path("never");
       },
       2,
       {"--annotation-classes", "--annotations"},
       {}},
      {"tiles without --annotations or --slide-labels",
       [&] { return "tiles " + path("d/train_1.png") + " -o " + path("never"); },
       1,
       {"--annotations", "--slide-labels", "a known class"},
       {}},
      {"tiles -o a dataset without --force",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d") + " -o " + d;
       },
       1,
       {"already holds a dataset", "--force"},
       {"d/Grade.csv"}},
      {"tiles -o the slide labels",
       [&] {
         return "tiles " + path("d/train_1.png") + " --slide-labels " + path("d/Grade.csv") +
                " -o " + path("d/Grade.csv");
       },
       1,
       {"--output", "the slide labels"},
       {"d/Grade.csv"}},
      {"tiles --prefix with a comma",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d") +
                " --prefix a,b -o " + path("never");
       },
       1,
       {"--prefix a,b", "letters, digits"},
       {}},
      {"tiles --purity 0.3",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d") +
                " --purity 0.3 -o " + path("never");
       },
       2,
       {"--purity"},
       {}},
      {"tiles --tile-size 8",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d") +
                " --tile-size 8 -o " + path("never");
       },
       2,
       {"--tile-size"},
       {}},
      {"tiles --tile-mpp nan",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d") +
                " --tile-mpp nan -o " + path("never");
       },
       1,
       {"--tile-mpp nan", "not a finite number"},
       {}},
      {"tiles --tile-size huge",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d") +
                " --tile-size 99999999 -o " + path("never");
       },
       2,
       {"--tile-size"},
       {}},
      {"tiles --max-per-class -1",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d") +
                " --max-per-class -1 -o " + path("never");
       },
       2,
       {"--max-per-class"},
       {}},
      {"tiles on a missing slide",
       [&] {
         return "tiles " + path("no-such.svs") + " --annotations " + path("d") + " -o " +
                path("never");
       },
       1,
       {"no-such.svs", "no such slide file"},
       {}},
      {"tiles -o onto the slide",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d") + " -o " +
                path("d/train_1.png");
       },
       1,
       {"--output", "a slide"},
       {"d/train_1.png"}},
      {"tiles --annotations not a folder",
       [&] {
         return "tiles " + path("d/train_1.png") + " --annotations " + path("d/Grade.csv") +
                " -o " + path("never");
       },
       1,
       {"--annotations", "not a folder"},
       {"d/Grade.csv"}},
      {"synth --slide-annotations onto the slide itself",
       [&] {
         return "synth --slide " + path("self.tif") + " --slide-annotations " + path("self.tif");
       },
       1,
       {"--slide-annotations", "the slide's own file"},
       {}},
      {"synth --slide-annotations over the model",
       [&] {
         return "synth --slide " + path("fresh.tif") + " --slide-size 600x600 --pieces 1 " +
                "--slide-annotations " + m;
       },
       1,
       {"--slide-annotations", "the file exists; --force replaces it"},
       {"m/model.safetensors"}},
      {"synth --slide-tissue bogus",
       [&] { return "synth --slide " + path("never.tif") + " --slide-tissue tumour"; },
       2,
       {"--slide-tissue"},
       {}},
      {"synth --pen-marks without a slide",
       [&] { return "synth -o " + path("never") + " --images 2 --pen-marks"; },
       2,
       {"--pen-marks", "--slide"},
       {}},
      {"slide --no-pen-filter=maybe",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --mpp 0.6 --no-pen-filter=maybe " +
                "-o " + path("never");
       },
       2,
       {"--no-pen-filter"},
       {}},
      {"slide --explain negative",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " -o " + path("sx") + " --explain -1";
       },
       2,
       {"--explain"},
       {}},
      {"synth --slide of a garbage size",
       [&] { return "synth --slide " + path("bad.tif") + " --slide-size lots"; },
       1,
       {"--slide-size lots"},
       {}},
      {"slide --slide-score mil without a slide model",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --slide-labels " +
                path("d/Grade.csv") + " --slide-score mil -o " + path("never");
       },
       1,
       {"--slide-score mil", "--mil MODEL"},
       {}},
      {"slide-info --mpp nan",
       [&] { return "slide-info " + path("d/train_1.png") + " --mpp nan"; },
       1,
       {"--mpp nan", "not a finite number"},
       {}},
      {"slide-info --mpp 0",
       [&] { return "slide-info " + path("d/train_1.png") + " --mpp 0"; },
       2,
       {"--mpp"},
       {}},
      {"slide-info --mpp-model huge",
       [&] { return "slide-info " + path("d/train_1.png") + " -m " + m + " --mpp-model 1e300"; },
       2,
       {"--mpp-model"},
       {}},
      {"slide-info --reader of another name",
       [&] { return "slide-info " + path("d/train_1.png") + " --reader vips"; },
       2,
       {"--reader"},
       {}},
      {"slide-info without a slide", [&] { return std::string("slide-info"); }, 2, {"slides"}, {}},
      {"slide-info -m a missing model, --json in a new folder",
       [&] {
         return "slide-info " + path("d/train_1.png") + " -m " + path("missing.safetensors") +
                " --json " + path("never/info.json");
       },
       1,
       {"missing.safetensors"},
       {}},
      {"slide-info --json over the model",
       [&] { return "slide-info " + path("d/train_1.png") + " -m " + m + " --json " + m; },
       1,
       {"--json", "would overwrite the model"},
       {"m/model.safetensors"}},
      {"slide-info --json over a slide",
       [&] { return "slide-info " + path("d/train_1.png") + " --json " + path("d/train_1.png"); },
       1,
       {"--json", "would overwrite a slide"},
       {"d/train_1.png"}},
      {"slide-info of a missing slide and one without a scale: each named, status 1",
       [&] {
         return "slide-info " + path("missing.svs") + " " + path("d/train_1.png") + " --json " +
                path("info/slides.json");  // written: the problems are what it reports
       },
       1,
       {"missing.svs: no such slide file", "give --mpp", "2 with a problem"},
       {}},
      {"predict of a whole slide",
       [&] {
         write_file_atomically(path("case.ndpi"), "a slide's name is enough");
         return "predict -m " + m + " " + path("case.ndpi");
       },
       1,
       {"case.ndpi: a whole-slide image", "histocnn slide"},
       {"case.ndpi"}},
  };
  expect_answers(cases);
  EXPECT_FALSE(fs::exists(path("never"))) << "a refused run created its output folder";
}

}  // namespace
}  // namespace histocnn
