// Hostile conditions around a run rather than in its inputs: a torn
// append-only file, a full disk, a stale lock, and predict's rows when an
// input fails mid-batch. The table of hostile files, models and outputs is
// test_hostile.cpp; hostile flag values, test_hostile_flags.cpp.
#include <gtest/gtest.h>
#include <signal.h>
#include <sys/resource.h>
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

// A power loss mid-append leaves results.jsonl with a torn last line: the
// next run moves it aside and appends on a fresh line, so every row parses.
TEST(AppendOnlyFiles, ATornLastLineIsMovedAsideAndAppendsStartFresh) {
  testing::TempDir dir;
  const std::string file = dir / "results.jsonl";
  append_line_atomically(file, R"({"key":"a"})");
  {
    std::FILE* f = std::fopen(file.c_str(), "a");
    std::fputs(R"({"key":"b","epoch_sec)", f);  // torn: no newline
    std::fclose(f);
  }
  EXPECT_EQ(repair_torn_last_line(file), R"({"key":"b","epoch_sec)");
  EXPECT_EQ(repair_torn_last_line(file), "") << "whole now";
  append_line_atomically(file, R"({"key":"c"})");
  EXPECT_EQ(read_file(file), "{\"key\":\"a\"}\n{\"key\":\"c\"}\n");
  EXPECT_EQ(read_file(file + ".torn"), "{\"key\":\"b\",\"epoch_sec\n");
  EXPECT_EQ(repair_torn_last_line(dir / "absent.jsonl"), "");
}

// A full disk, with the file-size limit standing in for it (writes past it
// fail with EFBIG where a full disk says ENOSPC; SIGXFSZ ignored, as the
// default would kill instead): every command ends in exit 1 and a message
// naming the file, what was there before is whole, and nothing is left half
// written: no torn figure, no folder of a command that failed, no temporary.
TEST_F(Hostile, AFullDiskEndsInAnErrorAndLeavesNothingTornOrHalfWritten) {
  auto on_full_disk = [](long bytes, const std::string& args) {
    return testing::run_raw("trap '' XFSZ; prlimit --fsize=" + std::to_string(bytes) +
                            " timeout 120 " + HISTOCNN_BINARY + " " + args);
  };
  auto contents_of = [](const std::string& folder) {
    std::map<std::string, std::string> files;
    for (const auto& e : fs::directory_iterator(folder)) files[e.path()] = read_file(e.path());
    return files;
  };
  const std::string d = path("d"), m = path("m/model.safetensors");

  // eval's figures come from gnuplot, which exits 0 when its output is cut
  // short: the earlier evaluation's figures must stay as they were.
  ASSERT_EQ(run("eval --data " + d + " -m " + m + " -o " + path("ev/e.json")).status, 0);
  const auto evaluation = contents_of(path("ev"));
  CommandResult r =
      on_full_disk(20000, "eval --data " + d + " -m " + m + " -o " + path("ev/e.json"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("e.roc.png: gnuplot's output is incomplete"), std::string::npos)
      << r.output;
  EXPECT_TRUE(contents_of(path("ev")) == evaluation) << "eval changed its earlier outputs";

  // A checkpoint that cannot be written: the last good one and the model stay.
  fs::copy(path("m"), path("full-resume"), fs::copy_options::recursive);
  const auto run_before = contents_of(path("full-resume"));
  r = on_full_disk(100000, "train --data " + d +
                               " --size 32 --crop 96 --batch 10 --crops-benign 40 "
                               "--crops-malignant 40 --epochs 3 --threads 1 --no-progress "
                               "--resume -o " +
                               path("full-resume"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("checkpoint.safetensors: write failed"), std::string::npos) << r.output;
  EXPECT_TRUE(contents_of(path("full-resume")) == run_before) << "the run folder changed";

  // New outputs: refused in one line, and no folder or file is left. (A
  // slide that fails after scoring began keeps its tiles.csv, the point the
  // same command continues from, as after Ctrl-C.)
  r = on_full_disk(
      40, "slide " + m + " " + path("d/train_1.png") + " --mpp 0.62 -o " + path("full-slides"));
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("tissue.png: write failed"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("full-slides"))) << "a failed slide left its folders";
  r = on_full_disk(2000, "synth -o " + path("full-data") + " --images 4");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("write failed"), std::string::npos) << r.output;
  EXPECT_FALSE(fs::exists(path("full-data"))) << "a failed synth left a half-written dataset";
  r = on_full_disk(2000, "synth --slide " + path("full.tif") + " --slide-size 3000x3000");
  EXPECT_EQ(r.status, 1) << r.output;
  EXPECT_NE(r.output.find("full.tif: writing a"), std::string::npos) << r.output;
  EXPECT_NE(r.output.find("disk full?"), std::string::npos) << r.output;
  EXPECT_EQ(std::count(r.output.begin(), r.output.end(), '\n'), 1)
      << "libtiff's own lines before ours:\n"
      << r.output;
  EXPECT_FALSE(fs::exists(path("full.tif")) || fs::exists(path("full.tif.partial")));

  for (const auto& e : fs::recursive_directory_iterator(path("")))
    EXPECT_EQ(e.path().filename().string().find(".tmp."), std::string::npos)
        << e.path() << ": a temporary was left behind";
}

// A lock left by a process that is gone (kill -9, power loss) is taken over,
// and a finished run releases its lock.
TEST_F(Hostile, AStaleLockIsTakenOverAndAFinishedRunLeavesNone) {
  fs::create_directories(path("stale"));
  write_file_atomically(path("stale/.lock"), "999999999\n");  // no such process
  const CommandResult r = run("train --data " + path("d") +
                              " --size 32 --crop 96 --batch 10 --crops-benign 20 "
                              "--crops-malignant 20 --epochs 1 --threads 1 --no-progress -o " +
                              path("stale"));
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_FALSE(fs::exists(path("stale/.lock")));
}

// A cohort with a broken slide between two good ones: the broken one (found
// while it is prepared ahead, during the first slide's scoring) fails alone
// with one line naming it, after the first slide's line, and the third is
// scored as it is alone.
TEST_F(Hostile, ABrokenSlideInACohortFailsAloneInItsTurn) {
  for (const char* name : {"c1.tif", "c3.tif"})
    ASSERT_EQ(run("synth --slide " + path(name) + " --slide-size 2000x1500 --pieces 1").status, 0);
  const std::string bytes = read_file(path("c1.tif"));
  write_file_atomically(path("c2.tif"), bytes.substr(0, bytes.size() / 3));
  const std::string m = path("m/model.safetensors");
  const CommandResult alone =
      run("slide " + m + " " + path("c3.tif") + " --no-progress --threads 1 -o " + path("alone"));
  ASSERT_EQ(alone.status, 0) << alone.output;
  const CommandResult r = run("slide " + m + " " + path("c1.tif") + " " + path("c2.tif") + " " +
                              path("c3.tif") + " --no-progress --threads 1 -o " + path("three"));
  EXPECT_EQ(r.status, 1) << r.output;
  const size_t first = r.output.find("c1.tif: "),
               broken = r.output.find("histocnn slide: " + path("c2.tif"));
  ASSERT_NE(broken, std::string::npos) << r.output;
  EXPECT_LT(first, broken) << r.output;
  size_t named = 0;
  for (size_t at = r.output.find("c2.tif"); at != std::string::npos;
       at = r.output.find("c2.tif", at + 1))
    ++named;
  EXPECT_EQ(named, 1u) << "named once, on its own line\n" << r.output;
  const std::string table = read_file(path("three/slides.csv"));
  EXPECT_NE(table.find(path("c2.tif") + ",failed,"), std::string::npos) << table;
  EXPECT_NE(table.find(path("c3.tif") + ",done,"), std::string::npos) << table;
  EXPECT_EQ(read_file(path("three/c3/tiles.csv")), read_file(path("alone/c3/tiles.csv")));
  EXPECT_FALSE(fs::exists(path("three/c2"))) << "a failed slide leaves no folder";
}

// A slide run where gnuplot, which draws the maps, is not installed (a GPU
// node: the 2026-12-04 visit scored a 50,000-px slide, then failed on its
// heatmap): one warning, the scores and each map's overlay and script
// written, exit 0. Where gnuplot is installed the same command then draws
// the map without scoring again; a re-score without it removes that map,
// which would show the earlier scores.
TEST_F(Hostile, ASlideRunWithoutGnuplotWritesItsScoresAndEachMapsScript) {
  ASSERT_EQ(run("synth --slide " + path("g.tif") + " --slide-size 2000x1500 --pieces 1").status, 0);
  fs::create_directories(path("no-programs"));
  const std::string slide = std::string(HISTOCNN_BINARY) + " slide " + path("m/model.safetensors") +
                            " " + path("g.tif") + " --no-progress " + "--threads 1 -o " +
                            path("plain");
  const std::string without = "env PATH=" + path("no-programs") + " " + slide;
  const CommandResult r = testing::run_raw(without);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("warning: slide: gnuplot is not installed (not on PATH)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find("-> " + path("plain/g") + "/ (heatmap-overlay.png, tiles.csv"),
            std::string::npos)
      << r.output;
  for (const char* name : {"tiles.csv", "summary.json", "tiles.geojson", "heatmap-overlay.png",
                           "heatmap.png.gp", "tissue.png"})
    EXPECT_TRUE(fs::exists(path("plain/g/") + name)) << name;
  EXPECT_FALSE(fs::exists(path("plain/g/heatmap.png")));
  const Image overlay = load_image(path("plain/g/heatmap-overlay.png"));
  EXPECT_GT(overlay.width, 0);
  const std::string tiles = read_file(path("plain/g/tiles.csv"));
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot is not installed: the map is not drawn afterwards";
  const CommandResult drawn = testing::run_raw(slide);
  ASSERT_EQ(drawn.status, 0) << drawn.output;
  EXPECT_TRUE(fs::exists(path("plain/g/heatmap.png")));
  EXPECT_EQ(read_file(path("plain/g/tiles.csv")), tiles);
  const nlohmann::json s = nlohmann::json::parse(read_file(path("plain/g/summary.json")));
  EXPECT_EQ(s["times"]["scoring"]["tiles"], 0) << "scored again";
  const CommandResult again = testing::run_raw(without + " --restart");
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_FALSE(fs::exists(path("plain/g/heatmap.png"))) << "a map of the earlier scores";
  EXPECT_TRUE(fs::exists(path("plain/g/heatmap.png.gp")));
}

// The same for an evaluation with -o: one warning, the numbers and tables,
// each figure's data and script; --no-figures writes no figure at all.
TEST_F(Hostile, AnEvaluationWithoutGnuplotWritesItsNumbersAndTheFiguresScripts) {
  fs::create_directories(path("no-programs"));
  const std::string eval = "env PATH=" + path("no-programs") + " " + HISTOCNN_BINARY +
                           " eval --data " + path("d") + " -m " + path("m/model.safetensors");
  const CommandResult r = testing::run_raw(eval + " -o " + path("no-eval/e.json"));
  EXPECT_EQ(r.status, 0) << r.output;
  EXPECT_NE(r.output.find("warning: eval: gnuplot is not installed (not on PATH)"),
            std::string::npos)
      << r.output;
  EXPECT_NE(r.output.find(path("no-eval/e") + ".roc.png.gp/.svg.gp"), std::string::npos)
      << r.output;
  for (const char* name :
       {"e.json", "e.images.csv", "e.crops.csv", "e.roc.dat", "e.roc.png.gp", "e.confusion.svg.gp"})
    EXPECT_TRUE(fs::exists(path("no-eval/") + name)) << name;
  EXPECT_FALSE(fs::exists(path("no-eval/e.roc.png")));
  const CommandResult plain =
      testing::run_raw(eval + " -o " + path("plain-eval/e.json") + " --no-figures");
  EXPECT_EQ(plain.status, 0) << plain.output;
  EXPECT_EQ(plain.output.find("gnuplot"), std::string::npos) << plain.output;
  EXPECT_TRUE(fs::exists(path("plain-eval/e.json")));
  EXPECT_TRUE(fs::exists(path("plain-eval/e.images.csv")));
  EXPECT_FALSE(fs::exists(path("plain-eval/e.roc.png.gp")));
}

// A cohort whose maps cannot be drawn (a gnuplot that fails, as on a full
// disk): each slide is scored, then fails in its turn with one line naming
// its figure, and leaves no summary.json (the mark of a finished slide); the
// same command with a working gnuplot draws the maps without scoring a tile
// again.
TEST_F(Hostile, MapsThatCannotBeDrawnFailTheirSlideAndARerunOnlyDrawsThem) {
  for (const char* name : {"d1.tif", "d2.tif"})
    ASSERT_EQ(run("synth --slide " + path(name) + " --slide-size 2000x1500 --pieces 1").status, 0);
  fs::create_directories(path("failing-programs"));
  write_file_atomically(path("failing-programs/gnuplot"), "#!/bin/sh\nexit 1\n");
  fs::permissions(path("failing-programs/gnuplot"), fs::perms::owner_exec, fs::perm_options::add);
  const std::string command = std::string(HISTOCNN_BINARY) + " slide " +
                              path("m/model.safetensors") + " " + path("d1.tif") + " " +
                              path("d2.tif") + " --no-progress --threads 1 -o " + path("undrawn");
  const CommandResult r = testing::run_raw("env PATH=" + path("failing-programs") + " " + command);
  EXPECT_EQ(r.status, 1) << r.output;
  const size_t first = r.output.find("gnuplot failed on " + path("undrawn/d1/heatmap.png.gp"));
  const size_t second = r.output.find("gnuplot failed on " + path("undrawn/d2/heatmap.png.gp"));
  ASSERT_NE(first, std::string::npos) << r.output;
  ASSERT_NE(second, std::string::npos) << r.output;
  EXPECT_LT(first, second) << r.output;
  const std::string table = read_file(path("undrawn/slides.csv"));
  EXPECT_NE(table.find(path("d1.tif") + ",failed,"), std::string::npos) << table;
  EXPECT_NE(table.find(path("d2.tif") + ",failed,"), std::string::npos) << table;
  for (const char* slide : {"d1", "d2"}) {
    EXPECT_TRUE(fs::exists(path("undrawn/") + slide + "/tiles.csv")) << slide;
    EXPECT_FALSE(fs::exists(path("undrawn/") + slide + "/summary.json")) << slide;
    EXPECT_FALSE(fs::exists(path("undrawn/") + slide + "/.lock")) << slide;
  }
  const std::string tiles = read_file(path("undrawn/d1/tiles.csv"));
  const CommandResult again = testing::run_raw(command);
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_EQ(read_file(path("undrawn/d1/tiles.csv")), tiles);
  for (const char* slide : {"d1", "d2"}) {
    const nlohmann::json s =
        nlohmann::json::parse(read_file(path("undrawn/") + slide + "/summary.json"));
    EXPECT_EQ(s["times"]["scoring"]["tiles"], 0) << slide << ": scored again";
    EXPECT_TRUE(fs::exists(path("undrawn/") + slide + "/heatmap.png")) << slide;
  }
}

// predict's CSV: a file name with a comma is one quoted field, and an input
// that cannot be read stops it before any header is printed.
TEST_F(Hostile, PredictQuotesItsFieldsAndPrintsNoHeaderBeforeAnError) {
  fs::copy_file(path("d/train_1.png"), path("a,b.png"), fs::copy_options::overwrite_existing);
  const CommandResult ok = run("predict -m " + path("m/model.safetensors") + " " + path("a,b.png"));
  ASSERT_EQ(ok.status, 0) << ok.output;
  EXPECT_NE(ok.output.find("\"" + path("a,b.png") + "\","), std::string::npos) << ok.output;
  const CommandResult bad = run("predict -m " + path("m/model.safetensors") + " " +
                                path("a,b.png") + " " + path("missing.png"));
  EXPECT_EQ(bad.status, 1);
  EXPECT_NE(bad.output.find("missing.png: no such image file"), std::string::npos) << bad.output;
  EXPECT_EQ(bad.output.find("image,p_malignant"), std::string::npos) << bad.output;
}

// predict scores several images per device call, read ahead by threads: the
// rows are those of one image per call, in the arguments' order, and a
// corrupt image in the middle of a batch still leaves the rows of the images
// before it, then its one-line error.
TEST_F(Hostile, PredictRowsDoNotDependOnTheBatch) {
  const std::string m = path("m/model.safetensors");
  std::string images;
  for (const char* name : {"train_5", "train_2", "train_9", "train_1", "train_7"})
    images += " " + path(std::string("d/") + name + ".png");
  const CommandResult one = run("predict --tta --batch 1 --readers 1 -m " + m + images);
  ASSERT_EQ(one.status, 0) << one.output;
  const CommandResult many = run("predict --tta --readers 3 -m " + m + images);
  ASSERT_EQ(many.status, 0) << many.output;
  EXPECT_EQ(many.output, one.output);
  const CommandResult two = run("predict --tta --batch 18 -m " + m + images);  // 2 images a call
  EXPECT_EQ(two.output, one.output);
  EXPECT_LT(one.output.find("train_5.png,"), one.output.find("train_2.png,")) << one.output;
  EXPECT_LT(one.output.find("train_9.png,"), one.output.find("train_7.png,")) << one.output;

  write_file_atomically(path("broken.png"), "not a png at all");
  const CommandResult bad =
      run("predict -m " + m + " " + path("d/train_5.png") + " " + path("d/train_2.png") + " " +
          path("broken.png") + " " + path("d/train_9.png"));
  EXPECT_EQ(bad.status, 1) << bad.output;
  EXPECT_NE(bad.output.find("train_2.png,"), std::string::npos) << bad.output;
  EXPECT_NE(bad.output.find("broken.png"), std::string::npos) << bad.output;
  EXPECT_EQ(bad.output.find("train_9.png,"), std::string::npos) << bad.output;
}

}  // namespace
}  // namespace histocnn
