// Hostile inputs, as a table: each case is a command (with the files it is
// given made first), the exit status it must end with, words its one-line
// message must hold, and files that must come out unchanged. Every command
// runs under `timeout`: a hang is a failure, not a stuck suite. The rules
// behind the answers live in one place each (core/paths.h for outputs,
// checkpoint.cpp for model metadata, metrics.cpp for scores, select_images
// for splits, atomic_file.h for appends). This file: hostile files, models
// and outputs; test_hostile_flags.cpp: hostile flag values;
// test_hostile_runs.cpp: torn appends, a full disk, stale locks, predict's
// rows around a failing input.
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <limits>
#include <map>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "data/image.h"
#include "hostile_fixture.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;

TEST_F(Hostile, EveryCaseEndsInItsAnswerWithNothingOverwritten) {
  const float nan = std::numeric_limits<float>::quiet_NaN();
  const std::string d = path("d"), m = path("m/model.safetensors");
  auto crop = [&](const std::string& value) {
    return [=] {
      return "predict -m " +
             forged("crop-" + std::to_string(std::hash<std::string>()(value)) + ".safetensors",
                    [&](SafetensorsFile& f) { f.metadata["histocnn.crop"] = value; }) +
             " " + path("d/train_1.png");
    };
  };
  const std::vector<HostileCase> cases = {
      {"NaN weights: eval ends with a sentence, no hang",
       [&] {
         return "eval --data " + d + " --split train --folds 0 -m " +
                forged("nan.safetensors", [&](SafetensorsFile& f) {
                  for (auto& [name, t] : f.tensors)
                    std::fill(t.values.begin(), t.values.end(), nan);
                });
       },
       1,
       {"not numbers"},
       {}},
      {"weights that overflow: training says it diverged, and that no checkpoint exists yet",
       [&] {
         return "train --data " + d +
                " --size 32 --crop 96 --batch 80 --crops-benign 40 "
                "--crops-malignant 40 --epochs 2 --threads 1 --no-progress -o " +
                path("blowup") + " --init " +
                forged("overflow.safetensors", [](SafetensorsFile& f) {
                  for (auto& [name, t] : f.tensors)
                    std::fill(t.values.begin(), t.values.end(), 1e30f);
                });
       },
       1,
       {"diverged", "no checkpoint was written yet"},
       {}},
      {"crop metadata 0x0", crop("0x0"), 1, {"histocnn.crop", "0x0"}, {}},
      {"crop metadata garbage", crop("garbage"), 1, {"histocnn.crop", "garbage"}, {}},
      {"crop metadata -5x-5", crop("-5x-5"), 1, {"histocnn.crop"}, {}},
      {"synth over an existing dataset",
       [&] { return "synth -o " + d + " --images 4"; },
       1,
       {"already holds a dataset", "--force"},
       {"d/Grade.csv", "d/train_1.png"}},
      {"synth --prefix outside its folder",
       [&] { return "synth -o " + path("evil") + " --images 4 --prefix ../evil"; },
       1,
       {"--prefix"},
       {}},
      {"validation split inside the training split",
       [&] {
         return "train --data " + d +
                " --split train --val-split train_1 --size 32 --crop 96 "
                "--epochs 1 --threads 1 --no-progress -o " +
                path("overlap");
       },
       1,
       {"--val-split train_1", "also training images"},
       {}},
      {"input metadata far larger than the weights",
       [&] {
         return "predict -m " +
                forged("huge.safetensors",
                       [](SafetensorsFile& f) { f.metadata["histocnn.input"] = "3000x3000"; }) +
                " " + path("d/train_1.png");
       },
       1,
       {"does not match the weights"},
       {}},
      {"eval -o onto the model",
       [&] { return "eval --data " + d + " -m " + m + " -o " + m; },
       1,
       {"would overwrite the model"},
       {"m/model.safetensors"}},
      {"eval -o onto Grade.csv",
       [&] { return "eval --data " + d + " -m " + m + " -o " + d + "/Grade.csv"; },
       1,
       {"would overwrite"},
       {"d/Grade.csv"}},
      {"stain -o into the images' own folder",
       [&] { return "stain --reference " + d + "/train_2.png " + d + "/train_1.png -o " + d; },
       1,
       {"would overwrite the input image"},
       {"d/train_1.png"}},
      {"stain: two inputs with one file name",
       [&] {
         fs::create_directories(path("other"));
         fs::copy_file(path("d/train_1.png"), path("other/train_1.png"),
                       fs::copy_options::overwrite_existing);
         return "stain --reference " + d + "/train_2.png " + d + "/train_1.png " +
                path("other/train_1.png") + " -o " + path("stained");
       },
       1,
       {"would both be written"},
       {"d/train_1.png", "other/train_1.png"}},
      {"tiles with a cut-off ASAP annotation file",
       [&] {
         fs::create_directories(path("regions"));
         write_file_atomically(path("regions/train_1.xml"),
                               "<ASAP_Annotations><Annotations><Annotation Type=\"Polygon\"");
         return "tiles " + path("d/train_1.png") + " --annotations " + path("regions") +
                " --mpp 0.62 -o " + path("never");
       },
       1,
       {"regions/train_1.xml", "not well-formed XML"},
       {"regions/train_1.xml"}},
      {"tiles with an ImageScope vertex that is not a number",
       [&] {
         fs::create_directories(path("regions2"));
         write_file_atomically(path("regions2/train_1.xml"),
                               "<Annotations><Annotation Name=\"Tumor\"><Regions><Region>"
                               "<Vertices><Vertex X=\"1e999\" Y=\"0\"/></Vertices></Region>"
                               "</Regions></Annotation></Annotations>");
         return "tiles " + path("d/train_1.png") + " --annotations " + path("regions2") +
                " --mpp 0.62 -o " + path("never");
       },
       1,
       {"layer 0 region 0", "X=\"1e999\" is not a number"},
       {"regions2/train_1.xml"}},
      {"tiles with a HALO ellipse of three points",
       [&] {
         fs::create_directories(path("regions3"));
         write_file_atomically(path("regions3/train_1.annotations"),
                               "<Annotations><Annotation Name=\"Tumor\"><Regions>"
                               "<Region Type=\"Ellipse\" NegativeROA=\"0\"><Vertices><V X=\"0\" "
                               "Y=\"0\"/><V X=\"5\" Y=\"5\"/><V X=\"9\" Y=\"1\"/></Vertices>"
                               "</Region></Regions></Annotation></Annotations>");
         return "tiles " + path("d/train_1.png") + " --annotations " + path("regions3") +
                " --mpp 0.62 -o " + path("never");
       },
       1,
       {"regions3/train_1.annotations", "layer 0 region 0", "Ellipse with 3 vertices"},
       {"regions3/train_1.annotations"}},
      {"predict /dev/zero",
       [&] { return "predict -m " + m + " /dev/zero"; },
       1,
       {"/dev/zero", "not a regular file"},
       {}},
      {"a model spec that is a device",
       [&] { return "train --data " + d + " --model /dev/zero -o " + path("never"); },
       1,
       {"/dev/zero", "not a regular file"},
       {}},
      {"a 70 MB Grade.csv, refused by its size",
       [&] {
         fs::create_directories(path("big"));
         std::FILE* f = std::fopen(path("big/Grade.csv").c_str(), "w");  // sparse: no disk
         std::fclose(f);
         fs::resize_file(path("big/Grade.csv"), std::uintmax_t(70) << 20);
         return "train --data " + path("big") + " -o " + path("big-run");
       },
       1,
       {"Grade.csv", "MB"},
       {}},
      {"training into a finished run without --resume",
       [&] { return "train --data " + d + " --size 32 --crop 96 -o " + path("m"); },
       1,
       {"already holds a run", "--resume", "--force"},
       {"m/model.safetensors"}},
      {"training into the dataset folder",
       [&] { return "train --data " + d + " --size 32 --crop 96 -o " + d; },
       1,
       {"is a dataset folder"},
       {"d/Grade.csv"}},
      {"a second writer of one run folder",
       [&] {
         fs::create_directories(path("locked"));
         write_file_atomically(path("locked/.lock"), std::to_string(getpid()) + "\n");
         return "train --data " + d + " --size 32 --crop 96 -o " + path("locked");
       },
       1,
       {"another histocnn (PID " + std::to_string(getpid()) + ")"},
       {"locked/.lock"}},
      {"slide: output onto the model",
       [&] { return "slide " + m + " " + path("d/train_1.png") + " --mpp 0.62 -o " + m; },
       1,
       {"would overwrite the model"},
       {"m/model.safetensors"}},
      {"slide: a device as the slide",
       [&] { return "slide " + m + " /dev/zero -o " + path("never"); },
       1,
       {"/dev/zero", "not a regular file"},
       {}},
      {"slide: a missing slide",
       [&] { return "slide " + m + " " + path("absent.svs") + " -o " + path("never"); },
       1,
       {"absent.svs", "no such slide file"},
       {}},
      {"slide: a model file given as the slide",
       [&] { return "slide " + m + " " + m + " --mpp 0.5 -o " + path("slide-out"); },
       1,
       {"model.safetensors", "not a readable image"},
       {"m/model.safetensors"}},
      {"slide: an image that does not say its scale",
       [&] { return "slide " + m + " " + path("d/train_1.png") + " -o " + path("slide-out"); },
       1,
       {"train_1.png", "--mpp"},
       {"d/train_1.png"}},
      {"synth --slide over the model",
       [&] { return "synth --slide " + m; },
       1,
       {"the file exists", "--force"},
       {"m/model.safetensors"}},
      {"synth --slide X.svs (Aperio's layout) over an existing slide",
       [&] {
         write_file_atomically(path("mine.svs"), "a slide the user already has\n");
         return "synth --slide " + path("mine.svs");
       },
       1,
       {"mine.svs", "the file exists", "--force"},
       {"mine.svs"}},
      {"synth --slide X.svs below the smallest slide",
       [&] { return "synth --slide " + path("small.svs") + " --slide-size 511x600"; },
       1,
       {"--slide-size", "at least 512x512"},
       {}},
      {"synth --slide of a huge size",
       [&] { return "synth --slide " + path("huge.tif") + " --slide-size 99999999x600"; },
       1,
       {"99999999x600"},
       {}},
      {"slide: a DICOM series cut short in its frames",
       [&] {
         dicom_series("cut");
         fs::resize_file(path("cut/level-0.dcm"), fs::file_size(path("cut/level-0.dcm")) / 2);
         return "slide " + m + " " + path("cut") + " -o " + path("cut-out");
       },
       1,
       {"level-0.dcm"},
       {"cut/level-1.dcm"}},
      {"slide: a file that only starts like DICOM",
       [&] {
         write_file_atomically(path("fake.dcm"), std::string(128, '\0') + "DICMnot a dataset");
         return "slide " + m + " " + path("fake.dcm") + " -o " + path("never");
       },
       1,
       {"fake.dcm", "not a DICOM whole-slide image"},
       {"fake.dcm"}},
      {"slide: DICOM frames in a transfer syntax we do not decode (JPEG-LS)",
       [&] {
         dicom_series("jpegls");
         // The same length, so the file stays well formed: baseline JPEG
         // (1.2.840.10008.1.2.4.50) becomes JPEG-LS (...4.80).
         std::string bytes = read_file(path("jpegls/level-0.dcm"));
         const size_t at = bytes.find("1.2.840.10008.1.2.4.50");
         EXPECT_NE(at, std::string::npos);
         bytes.replace(at, 22, "1.2.840.10008.1.2.4.80");
         write_file_atomically(path("jpegls/level-0.dcm"), bytes);
         return "slide " + m + " " + path("jpegls") + " -o " + path("never");
       },
       1,
       {"level-0.dcm", "transfer syntax 1.2.840.10008.1.2.4.80", "baseline JPEG"},
       {"jpegls/level-0.dcm"}},
      {"slide: one DICOM series given twice (a file of it, and its folder)",
       [&] {
         dicom_series("twice");
         return "slide " + m + " " + path("twice/level-1.dcm") + " " + path("twice") + " -o " +
                path("never");
       },
       1,
       {"twice", "the same DICOM series as", "twice/level-1.dcm"},
       {"twice/level-0.dcm"}},
      {"slide: -o onto the DICOM series folder",
       [&] {
         dicom_series("onto");
         return "slide " + m + " " + path("onto") + " -o " + path("onto");
       },
       1,
       {"--output", "onto", "would overwrite a slide"},
       {"onto/level-0.dcm"}},
      {"tiles: two files of one DICOM series",
       [&] {
         dicom_series("pair");
         return "tiles " + path("pair/level-0.dcm") + " " + path("pair/level-1.dcm") + " -o " +
                path("never");
       },
       1,
       {"pair/level-1.dcm", "the same DICOM series as", "pair/level-0.dcm"},
       {"pair/level-0.dcm"}},
      {"slide: a download tree holding one series twice (fetched again elsewhere)",
       [&] {
         dicom_series("tree/a/SM_1");
         fs::create_directories(path("tree/b"));
         fs::copy(path("tree/a/SM_1"), path("tree/b/SM_1"));
         return "slide " + m + " " + path("tree") + " -o " + path("never");
       },
       1,
       {"tree/b/SM_1", "the same DICOM series as", "tree/a/SM_1"},
       {"tree/a/SM_1/level-0.dcm"}},
      {"slide: a tree of links that loop, with no slide in it",
       [&] {
         fs::create_directories(path("loops/x"));
         fs::create_directory_symlink(path("loops"), path("loops/x/up"));
         fs::create_symlink(path("loops/gone.svs"), path("loops/dangling.svs"));
         return "slide " + m + " " + path("loops") + " -o " + path("never");
       },
       1,
       {"loops", "no slide in this folder or below it"},
       {}},
      {"synth --slide-format dicom onto an existing folder",
       [&] {
         fs::create_directories(path("mine"));
         write_file_atomically(path("mine/notes.txt"), "the user's\n");
         return "synth --slide " + path("mine") + " --slide-format dicom --force";
       },
       1,
       {"mine", "exists", "new folder"},
       {"mine/notes.txt"}},
      {"train --size 8192: more crop memory than the machine has, refused with the numbers",
       [&] { return "train --data " + d + " --size 8192 --crop 96 --batch 1 -o " + path("never"); },
       1,
       {"--size 8192x8192", "GB, more than this machine's", "(use a smaller --size"},
       {}},
      {"train --size 8192 --batch 50: input batches larger than the machine, before any data",
       [&] {
         return "train --data " + d +
                " --size 8192 --crop 96 --crops-benign 4 --crops-malignant 4 -o " + path("never");
       },
       1,
       {"--batch 50 at --size 8192x8192", "more than this machine's"},
       {}},
      {"train: a data error leaves no empty output folder",
       [&] { return "train --data " + path("no-such-data") + " -o " + path("never"); },
       1,
       {"no-such-data"},
       {}},
      {"eval -o into a new folder: a data error leaves no empty folder",
       [&] {
         return "eval --data " + path("no-such-data") + " -m " + m + " -o " +
                path("never/eval.json");
       },
       1,
       {"no-such-data"},
       {"m/model.safetensors"}},
      {"a recorded recipe field of the wrong type",
       [&] {
         return "predict -m " +
                forged("recipe.safetensors",
                       [](SafetensorsFile& f) {
                         f.metadata["histocnn.trained"] = R"({"eval_tta":"yes"})";
                       }) +
                " " + path("d/train_1.png");
       },
       1,
       {"histocnn.trained", "eval_tta", "wrong type"},
       {}},
      {"a model whose temperature is zero",
       [&] {
         return "predict -m " +
                forged("cold.safetensors",
                       [](SafetensorsFile& f) {
                         f.metadata["histocnn.trained"] = R"({"calibration":{"temperature":0}})";
                       }) +
                " " + path("d/train_1.png");
       },
       1,
       {"histocnn.trained", "calibration", "0.05..20"},
       {}},
      {"a grouped calibration without its within-side temperature",
       [&] {
         return "predict -m " +
                forged("grouped.safetensors",
                       [](SafetensorsFile& f) {
                         f.metadata["histocnn.trained"] =
                             R"({"calibration":{"temperature":1.5,"method":"grouped"}})";
                       }) +
                " " + path("d/train_1.png");
       },
       1,
       {"histocnn.trained", "calibration", "grouped", "within"},
       {}},
      {"a calibration whose tta is not true or false",
       [&] {
         return "predict -m " +
                forged("tta.safetensors",
                       [](SafetensorsFile& f) {
                         f.metadata["histocnn.trained"] =
                             R"({"calibration":{"temperature":1.5,"tta":"yes"}})";
                       }) +
                " " + path("d/train_1.png");
       },
       1,
       {"histocnn.trained", "calibration", "\"tta\"", "true or false"},
       {}},
      {"a model naming more classes than its network has outputs",
       [&] {
         return "predict -m " +
                forged("five.safetensors",
                       [](SafetensorsFile& f) {
                         f.metadata["histocnn.classes"] =
                             R"({"labels":"x","column":"c","classes":["a","b","c"]})";
                       }) +
                " " + path("d/train_1.png");
       },
       1,
       {"histocnn.classes", "3 classes", "2 outputs"},
       {}},
      {"a model whose class list is not a list of names",
       [&] {
         return "predict -m " +
                forged("names.safetensors",
                       [](SafetensorsFile& f) {
                         f.metadata["histocnn.classes"] =
                             R"({"labels":"x","column":"c","classes":[1,2]})";
                       }) +
                " " + path("d/train_1.png");
       },
       1,
       {"histocnn.classes", "is not"},
       {}},
      {"train --labels of a column Grade.csv does not have",
       [&] { return "train --data " + d + " --labels stage -o " + path("never"); },
       1,
       {"--labels stage", "no column 'stage'"},
       {}},
      {"predict of an image smaller than the model's crop",
       [&] {
         Image tiny;
         tiny.width = tiny.height = 16;
         tiny.rgb.assign(16 * 16 * 3, 200);
         save_image(path("tiny.png"), tiny);
         return "predict -m " + m + " " + path("tiny.png");
       },
       1,
       {"tiny.png: image is smaller than the model's", "crop"},
       {"tiny.png"}},
      {"predict --explain whose figure would replace an input image",
       [&] {
         fs::create_directories(path("why"));
         fs::copy_file(path("d/train_2.png"), path("why/a.gradcam.png"),
                       fs::copy_options::overwrite_existing);
         fs::copy_file(path("d/train_1.png"), path("why/a.png"),
                       fs::copy_options::overwrite_existing);
         return "predict -m " + m + " --explain " + path("why") + " " + path("why/a.png") + " " +
                path("why/a.gradcam.png");
       },
       1,
       {"--explain", "would overwrite the input image", "a.gradcam.png"},
       {"why/a.gradcam.png", "why/a.png"}},
      {"predict of a folder holding no image",
       [&] {
         fs::create_directories(path("no-images/.hidden"));
         write_file_atomically(path("no-images/notes.txt"), "not an image\n");
         fs::copy_file(path("d/train_1.png"), path("no-images/.hidden/a.png"),
                       fs::copy_options::overwrite_existing);
         return "predict -m " + m + " " + path("no-images");
       },
       1,
       {"no-images: no images (bmp, png, jpg, tif) in this folder or below"},
       {"no-images/notes.txt"}},
      {"predict of a folder holding a corrupt image",
       [&] {
         fs::create_directories(path("bad-images"));
         fs::copy_file(path("d/train_1.png"), path("bad-images/a.png"),
                       fs::copy_options::overwrite_existing);
         write_file_atomically(path("bad-images/b.png"), "not a png at all");
         return "predict -m " + m + " " + path("bad-images");
       },
       1,
       {"bad-images/b.png", "not a readable image"},
       {"bad-images/a.png", "bad-images/b.png"}},
      {"predict --explain inside a folder it reads",
       [&] {
         fs::create_directories(path("tiles-in"));
         fs::copy_file(path("d/train_1.png"), path("tiles-in/a.png"),
                       fs::copy_options::overwrite_existing);
         return "predict -m " + m + " --explain " + path("tiles-in/why") + " " + path("tiles-in");
       },
       1,
       {"--explain", "inside the input folder", "tiles-in", "choose a folder outside it"},
       {"tiles-in/a.png"}},
      {"a study folder another histocnn is writing",
       [&] {
         fs::create_directories(path("busy-study"));
         write_file_atomically(path("busy-study/.lock"), std::to_string(::getpid()) + "\n");
         return "study --data " + d + " -o " + path("busy-study") +
                " --sizes 32 --batches 10 --threads 1 --engines histocnn --no-report";
       },
       1,
       {"another histocnn (PID " + std::to_string(::getpid()) + ")", "busy-study"},
       {"busy-study/.lock"}},
      {"slide --mil a file that is not there",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --mpp 0.6 --mil " +
                path("no-mil.safetensors") + " -o " + path("never");
       },
       1,
       {"no-mil.safetensors"},
       {}},
      {"slide --mil a tile model, not a slide model",
       [&] {
         return "slide " + m + " " + path("d/train_1.png") + " --mpp 0.6 --mil " + m + " -o " +
                path("never");
       },
       1,
       {"--mil", "not an attention MIL model"},
       {"m/model.safetensors"}},
      {"slide -o the --mil file",
       [&] {
         fs::copy_file(m, path("mil-as-output.safetensors"), fs::copy_options::overwrite_existing);
         return "slide " + m + " " + path("d/train_1.png") + " --mpp 0.6 --mil " +
                path("mil-as-output.safetensors") + " -o " + path("mil-as-output.safetensors");
       },
       1,
       {"--output", "would overwrite the slide model (--mil)"},
       {"mil-as-output.safetensors"}},
  };
  expect_answers(cases);
  EXPECT_FALSE(fs::exists(*dir_ / "evil")) << "synth wrote outside -o";
  EXPECT_FALSE(fs::exists(path("never"))) << "a refused run created its output folder";
  EXPECT_FALSE(fs::exists(path("huge.tif")) || fs::exists(path("huge.tif.partial")))
      << "a refused slide left a file";
}

}  // namespace
}  // namespace histocnn
