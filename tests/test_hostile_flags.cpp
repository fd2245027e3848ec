// Hostile flag values and combinations, as a table (the fixture and the
// runner: hostile_fixture.h): out-of-range and non-numeric numbers, flags
// that belong to another device or command, combinations that cannot hold
// (the whole-slide commands' flags: test_hostile_slide_flags.cpp).
// Each must end in a one-line message naming the flag, with nothing written.
#include <filesystem>

#include "core/atomic_file.h"
#include "hostile_fixture.h"

namespace histocnn {
namespace {

namespace fs = std::filesystem;

TEST_F(Hostile, EveryFlagRefusalNamesItsFlagAndWritesNothing) {
  const std::string d = path("d"), m = path("m/model.safetensors");
  const std::vector<HostileCase> cases = {
      {"--cudnn-graph on the CPU",
       [&] { return "train --data " + d + " --cudnn-graph -o " + path("never-graph"); },
       1,
       {"--cudnn-graph", "--device cuda"},
       {}},
      {"--channels-last on the CPU",
       [&] { return "train --data " + d + " --channels-last -o " + path("never-nhwc"); },
       1,
       {"--channels-last", "--device cuda"},
       {}},
      {"bench --channels-last on the CPU",
       [&] { return "bench --device cpu --channels-last --json " + path("never-bench.json"); },
       1,
       {"--channels-last", "--device cuda"},
       {}},
      {"memplan --channels-last on the CPU",
       [&] { return "memplan --channels-last"; },
       1,
       {"--channels-last", "--device cuda"},
       {}},
      {"train --channels-last without a last pool, found before any GPU",
       [&] {
         write_file_atomically(path("unpooled-train.spec"), "conv 8 kernel=3 pool=1\ndense 2\n");
         return "train --data " + d + " --device cuda --channels-last --model " +
                path("unpooled-train.spec") + " -o " + path("never-nhwc2");
       },
       1,
       {"--channels-last", "last conv block has no pool"},
       {"unpooled-train.spec"}},
      {"selftest --channels-last on the CPU",
       [&] { return "selftest --device cpu --channels-last"; },
       1,
       {"--channels-last", "--device cuda"},
       {}},
      {"memplan --channels-last without a last pool",
       [&] {
         write_file_atomically(path("unpooled.spec"), "conv 8 kernel=3 pool=1\ndense 2\n");
         return "memplan --device cuda --channels-last --model " + path("unpooled.spec");
       },
       1,
       {"--channels-last", "last conv block has no pool"},
       {"unpooled.spec"}},
      {"bench --model missing",
       [&] {
         return "bench --device cpu --model " + path("no-such.spec") + " --json " +
                path("never-bench.json");
       },
       1,
       {"no-such.spec"},
       {}},
      {"bench --json onto its --model",
       [&] {
         write_file_atomically(path("bench-model.spec"), "conv 8 kernel=3 pool=2\ndense 2\n");
         return "bench --device cpu --model " + path("bench-model.spec") + " --json " +
                path("bench-model.spec");
       },
       1,
       {"--json", "would overwrite the model spec"},
       {"bench-model.spec"}},
      {"bench --model not a spec",
       [&] {
         write_file_atomically(path("not-a.spec"), "convolution please\n");
         return "bench --device cpu --model " + path("not-a.spec") + " --json " +
                path("never-bench.json");
       },
       1,
       {"not-a.spec"},
       {"not-a.spec"}},
      {"bench --onednn-pool on CUDA",
       [&] { return "bench --device cuda --onednn-pool --json " + path("never-bench.json"); },
       1,
       {"--onednn-pool", "--device cpu"},
       {}},
      {"bench --onednn-conv1 on CUDA",
       [&] { return "bench --device cuda --onednn-conv1 --json " + path("never-bench.json"); },
       1,
       {"--onednn-conv1", "--device cpu"},
       {}},
      {"bench --direct-conv on CUDA",
       [&] { return "bench --device cuda --direct-conv --json " + path("never-bench.json"); },
       1,
       {"--direct-conv", "--device cpu"},
       {}},
      {"bench --direct-conv-weights on CUDA",
       [&] {
         return "bench --device cuda --direct-conv-weights --json " + path("never-bench.json");
       },
       1,
       {"--direct-conv-weights", "--device cpu"},
       {}},
      {"bench --slice-kb on CUDA",
       [&] { return "bench --device cuda --slice-kb 64 --json " + path("never-bench.json"); },
       1,
       {"--slice-kb", "--device cpu"},
       {}},
      {"bench --staged-batches on the CPU",
       [&] { return "bench --device cpu --staged-batches --json " + path("never-bench.json"); },
       1,
       {"--staged-batches", "--device cuda"},
       {}},
      {"bench --float-batches on the CPU",
       [&] { return "bench --device cpu --float-batches --json " + path("never-bench.json"); },
       1,
       {"--float-batches", "--device cuda"},
       {}},
      {"bench --plain-conv1 on the CPU",
       [&] { return "bench --device cpu --plain-conv1 --json " + path("never-bench.json"); },
       1,
       {"--plain-conv1", "--device cuda"},
       {}},
      {"bench --onednn-wgrad on CUDA",
       [&] { return "bench --device cuda --onednn-wgrad --json " + path("never-bench.json"); },
       1,
       {"--onednn-wgrad", "--device cpu"},
       {}},
      {"bench --onednn-dgrad on CUDA",
       [&] { return "bench --device cuda --onednn-dgrad --json " + path("never-bench.json"); },
       1,
       {"--onednn-dgrad", "--device cpu"},
       {}},
      {"bench --onednn-forward on CUDA",
       [&] { return "bench --device cuda --onednn-forward --json " + path("never-bench.json"); },
       1,
       {"--onednn-forward", "--device cpu"},
       {}},
      {"bench --cudnn-later-wgrad on the CPU",
       [&] { return "bench --device cpu --cudnn-later-wgrad --json " + path("never-bench.json"); },
       1,
       {"--cudnn-later-wgrad", "--device cuda"},
       {}},
      {"bench --cudnn-later-dgrad on the CPU",
       [&] { return "bench --device cpu --cudnn-later-dgrad --json " + path("never-bench.json"); },
       1,
       {"--cudnn-later-dgrad", "--device cuda"},
       {}},
      {"bench --ceilings on CUDA",
       [&] { return "bench --device cuda --ceilings --json " + path("never-bench.json"); },
       1,
       {"--ceilings", "--device cpu"},
       {}},
      {"bench --slice-kb -5 is refused by its range",
       [&] { return "bench --device cpu --slice-kb -5 --json " + path("never-bench.json"); },
       2,
       {"--slice-kb"},
       {}},
      {"bench --loader-workers nan is refused",
       [&] { return "bench --device cpu --loader-workers nan --json " + path("never-bench.json"); },
       2,
       {"--loader-workers"},
       {}},
      {"bench --loader-workers 1e9 is refused by its range",
       [&] {
         return "bench --device cpu --loader-workers 1000000000 --json " + path("never-bench.json");
       },
       2,
       {"--loader-workers"},
       {}},
      {"--lr 1e30 is refused by its range",
       [&] { return "train --data " + d + " --lr 1e30 -o " + path("never"); },
       1,
       {"--lr"},
       {}},
      {"--lr nan",
       [&] { return "train --data " + d + " --lr nan -o " + path("never"); },
       1,
       {"--lr nan", "not a finite number"},
       {}},
      {"--lr -0.01",
       [&] { return "train --data " + d + " --lr -0.01 -o " + path("never"); },
       1,
       {"--lr", "-0.01"},
       {}},
      {"--lr 1e6",
       [&] { return "train --data " + d + " --lr 1e6 -o " + path("never"); },
       1,
       {"--lr"},
       {}},
      {"--beta1 2",
       [&] { return "train --data " + d + " --beta1 2 -o " + path("never"); },
       1,
       {"--beta1"},
       {}},
      {"--eps -1",
       [&] { return "train --data " + d + " --eps -1 -o " + path("never"); },
       1,
       {"--eps"},
       {}},
      {"--hed-jitter nan",
       [&] { return "train --data " + d + " --hed-jitter nan -o " + path("never"); },
       1,
       {"--hed-jitter nan"},
       {}},
      {"--whole-image with crop counts (a whole image is one example)",
       [&] {
         return "train --data " + d + " --whole-image --crops-per-class 500 -o " + path("never");
       },
       2,  // a usage error, as CLI11's other exclusions
       {"--whole-image", "--crops-per-class"},
       {}},
      {"--max-background nan",
       [&] { return "train --data " + d + " --max-background nan -o " + path("never"); },
       1,
       {"--max-background nan"},
       {}},
      {"--stain-normalize that no method names",
       [&] { return "train --data " + d + " --stain-normalize vahadane-x -o " + path("never"); },
       2,
       {"--stain-normalize"},
       {}},
      {"stain --method that no estimator names",
       [&] {
         return "stain --method reinhard --reference " + path("d/train_1.png") + " " +
                path("d/train_2.png") + " -o " + path("never");
       },
       2,
       {"--method"},
       {}},
      {"eval --bootstrap -5",
       [&] { return "eval --data " + d + " -m " + m + " --bootstrap -5"; },
       2,
       {"--bootstrap"},
       {}},
      {"eval --bootstrap huge",
       [&] { return "eval --data " + d + " -m " + m + " --bootstrap 1000000000"; },
       2,
       {"--bootstrap"},
       {}},
      {"eval --bootstrap nan",
       [&] { return "eval --data " + d + " -m " + m + " --bootstrap nan"; },
       2,
       {"--bootstrap"},
       {}},
      {"train --labels empty",
       [&] { return "train --data " + d + " --labels '' -o " + path("never"); },
       1,
       {"--labels", "empty"},
       {"m/model.safetensors"}},
      {"train --crops-per-class negative",
       [&] { return "train --data " + d + " --crops-per-class -5 -o " + path("never"); },
       2,
       {"--crops-per-class"},
       {}},
      {"train --label-smoothing beyond 0.5",
       [&] { return "train --data " + d + " --label-smoothing 0.7 -o " + path("never"); },
       1,
       {"--label-smoothing", "0.7"},
       {}},
      {"train --label-smoothing nan",
       [&] { return "train --data " + d + " --label-smoothing nan -o " + path("never"); },
       1,
       {"--label-smoothing", "not a finite number"},
       {}},
      {"train --smooth-to an unknown place",
       [&] { return "train --data " + d + " --smooth-to far -o " + path("never"); },
       2,
       {"--smooth-to"},
       {}},
      {"train --smooth-to neighbours on a column's sorted classes",
       [&] {
         return "train --data " + d +
                " --labels 'grade (Sirinukunwattana et al. 2015)' --label-smoothing 0.1 "
                "--smooth-to neighbours -o " +
                path("never");
       },
       1,
       {"--smooth-to neighbours", "sorted order", "=a,b,c"},
       {}},
      {"train --labels grade5 with the two-class crop counts",
       [&] {
         return "train --data " + d + " --labels grade5 --crops-benign 40 -o " + path("never");
       },
       1,
       {"--crops-benign", "--crops-per-class"},
       {}},
      {"train --labels grade5 with a network of two outputs",
       [&] {
         write_file_atomically(path("two.spec"), "conv 8 kernel=3 pool=2\ndense 2\n");
         return "train --data " + d + " --labels grade5 --model " + path("two.spec") + " -o " +
                path("never");
       },
       1,
       {"--model", "2 outputs", "5 classes", "dense 5"},
       {}},
      {"predict --refer-below outside 0.5..1",
       [&] { return "predict -m " + m + " --refer-below 2 " + path("d/train_1.png"); },
       2,
       {"--refer-below"},
       {}},
      {"predict --batch 0",
       [&] { return "predict -m " + m + " --batch 0 " + path("d/train_1.png"); },
       2,
       {"--batch", "not in range"},
       {}},
      {"predict --readers negative",
       [&] { return "predict -m " + m + " --readers -3 " + path("d/train_1.png"); },
       2,
       {"--readers", "not in range"},
       {}},
      {"predict --refer-spread nan",
       [&] { return "predict -m " + m + " --refer-spread nan " + path("d/train_1.png"); },
       1,
       {"--refer-spread", "not a finite number"},
       {}},
      {"train --denormals of an unknown mode",
       [&] { return "train --data " + d + " -o " + path("dn") + " --denormals sometimes"; },
       2,
       {"--denormals"},
       {}},
      {"train --cpu-conv of an unknown algorithm",
       [&] { return "train --data " + d + " -o " + path("cc") + " --cpu-conv fft"; },
       2,
       {"--cpu-conv"},
       {}},
      {"bench --pixels of an unknown kind",
       [&] { return "bench --device cpu --pixels noise --json " + path("never-bench.json"); },
       2,
       {"--pixels"},
       {}},
      {"bench --json onto a dataset's labels",
       [&] { return "bench --device cpu --sizes 32 --json " + path("d/Grade.csv"); },
       1,
       {"--json", "would overwrite a file of the dataset"},
       {"d/Grade.csv"}},
      {"ceilings --threads nan",
       [&] { return "ceilings --threads nan --json " + path("never-ceilings.json"); },
       2,
       {"--threads"},
       {}},
      {"ceilings --threads huge",
       [&] { return "ceilings --threads 1000000000 --json " + path("never-ceilings.json"); },
       2,
       {"--threads", "not in range"},
       {}},
      {"ceilings --json onto a dataset's labels, refused before measuring",
       [&] { return "ceilings --threads 1 --json " + path("d/Grade.csv"); },
       1,
       {"--json", "would overwrite a file of the dataset"},
       {"d/Grade.csv"}},
      {"ceilings --json onto a folder",
       [&] { return "ceilings --threads 1 --json " + path("d"); },
       1,
       {"--json", "is a folder"},
       {"d/Grade.csv"}},
      {"mil --threads nan",
       [&] { return "mil " + d + " --tcga-labels --threads nan -o " + path("never"); },
       2,
       {"--threads"},
       {}},
  };
  expect_answers(cases);
  EXPECT_FALSE(fs::exists(path("never"))) << "a refused run created its output folder";
}

// Class-folder data (data/image_folders.h): flags that do not fit the
// folders, and a patients.csv that does not cover them.
TEST_F(Hostile, ClassFolderRefusalsNameTheFolderOrFlag) {
  const std::string d = path("d"), cf = path("cf");
  for (const char* cls : {"ADI", "NORM"})
    for (int i = 1; i <= 3; ++i) {
      fs::create_directories(cf + "/" + cls);
      fs::copy_file(path("d/train_" + std::to_string(i) + ".png"),
                    cf + "/" + cls + "/" + std::to_string(i) + ".png",
                    fs::copy_options::overwrite_existing);
    }
  const CommandResult trained = run("train --data " + cf +
                                    " --malignant-classes ADI --size 32 --crop 96 --epochs 1 "
                                    "--folds 3 --crops-per-class 20 --threads 1 --no-progress -o " +
                                    path("cfm"));
  ASSERT_EQ(trained.status, 0) << trained.output;
  const std::vector<HostileCase> cases = {
      {"--malignant-classes on a GlaS folder",
       [&] { return "train --data " + d + " --malignant-classes TUM -o " + path("never"); },
       1,
       {"--malignant-classes", "only for class-folder data", "Grade.csv"},
       {}},
      {"class folders none of which reads as malignant",
       [&] { return "train --data " + cf + " -o " + path("never"); },
       1,
       {"no class reads as malignant (ADI, NORM)", "--malignant-classes"},
       {}},
      {"--labels naming a folder that is not there",
       [&] { return "train --data " + cf + " --labels folders=ADI,TUM -o " + path("never"); },
       1,
       {"--labels folders=ADI,TUM", "no class folder 'TUM'"},
       {}},
      {"--malignant-classes naming no class",
       [&] { return "train --data " + cf + " --malignant-classes tumour -o " + path("never"); },
       1,
       {"--malignant-classes", "'tumour'"},
       {}},
      {"--split naming no split folder",
       [&] {
         return "train --data " + cf + " --malignant-classes ADI --split testA -o " + path("never");
       },
       1,
       {"testA: no such split folder"},
       {}},
      {"eval writing its figures into a class folder",
       [&] {
         return "eval -m " + path("cfm/model.safetensors") + " --data " + cf + " -o " + cf +
                "/ADI/report.json";
       },
       1,
       {"--output", "inside the class folder", "cf/ADI", "choose a folder outside it"},
       {"cf/ADI/1.png"}},
      {"a patients.csv that misses an image",
       [&] {
         write_file_atomically(cf + "/patients.csv", "image,patient\nADI/1.png,p1\n");
         return "train --data " + cf + " --malignant-classes ADI -o " + path("never");
       },
       1,
       {"patients.csv: no row for image ADI/2.png"},
       {"cf/patients.csv", "cf/ADI/2.png"}},
  };
  expect_answers(cases);
  EXPECT_FALSE(fs::exists(path("never"))) << "a refused run created its output folder";
}

}  // namespace
}  // namespace histocnn
