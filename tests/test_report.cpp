// The study report's parts alone: each figure function on hand-made results
// (which rows it takes, which series it draws, when it is not drawn), the
// tables, the gnuplot script (labels as written) and the HTML page.
#include <gtest/gtest.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "core/atomic_file.h"
#include "core/error.h"
#include "study/gnuplot.h"
#include "study/markdown_html.h"
#include "study/plotter.h"
#include "study/report_figures.h"
#include "study/report_tables.h"
#include "study/results_file.h"
#include "test_util.h"

namespace histocnn {
namespace {

StudyRow row(const std::string& engine, const std::string& device, int threads,
             const std::string& allocator, int size, int batch, double seconds) {
  return {{"status", "ok"},     {"engine", engine},         {"device", device},
          {"threads", threads}, {"allocator", allocator},   {"size", size},
          {"batch", batch},     {"epoch_seconds", seconds}, {"images_per_second", 1851 / seconds}};
}

// GPU (direct and pool) and CPU (1, 2, 16 threads) at two sizes, batch 50.
StudyResults results(bool gpu = true) {
  StudyResults r;
  r.source = "results.jsonl";
  for (int size : {64, 200}) {
    if (gpu) {
      r.ok.push_back(row("histocnn", "cuda", 16, "direct", size, 50, 2.0 * size / 200));
      r.ok.push_back(row("histocnn", "cuda", 16, "pool", size, 50, 1.0 * size / 200));
    }
    for (int threads : {16, 1, 2})
      r.ok.push_back(
          row("histocnn", "cpu", threads, "plan", size, 50, 32.0 / threads * size / 200));
    r.ok.push_back(row("pytorch", "cpu", 16, "", size, 50, 4.0 * size / 200));
  }
  for (const auto& x : r.ok) {
    r.sizes.insert(x["size"].get<int>());
    r.batches.insert(x["batch"].get<int>());
    if (x["device"] == "cpu") r.cpu_threads.insert(x["threads"].get<int>());
  }
  return r;
}

TEST(ReportFigures, SpeedupIsCpuOverGpuAtTheLargestSizeBesideThePaper) {
  const auto figures = speedup_figures(results());
  ASSERT_EQ(figures.size(), 1u);
  const Figure& f = figures[0];
  EXPECT_EQ(f.ylabel, "t_cpu / t_gpu");
  ASSERT_EQ(f.series.size(), 3u);  // direct, pool (plan: no GPU rows), the paper
  EXPECT_EQ(f.series[1].title, "pool, batch 50");
  // CPU 32/threads s at 200 px over the pool's 1 s, sorted by threads.
  EXPECT_EQ(f.series[1].points,
            (std::vector<std::pair<double, double>>{{1, 32}, {2, 16}, {16, 2}}));
  EXPECT_EQ(f.series[2].points.size(), 5u);
  EXPECT_TRUE(has_data(f));
  // The paper's points alone are not a figure.
  EXPECT_FALSE(has_data(speedup_figures(results(false))[0]));
}

TEST(ReportFigures, GpuTimeHasALinePerBatchSortedBySizeAndNeedsGpuRows) {
  const auto figures = gpu_time_figures(results());
  ASSERT_EQ(figures.size(), 2u);
  EXPECT_EQ(figures[0].name, "fig3_gpu_direct");
  EXPECT_EQ(figures[1].series[0].points,
            (std::vector<std::pair<double, double>>{{64, 0.32}, {200, 1.0}}));
  EXPECT_FALSE(has_data(gpu_time_figures(results(false))[0]));
}

TEST(ReportFigures, CpuScalingStartsAtOneThreadAndIdealAloneIsNotDrawn) {
  const Figure f = cpu_scaling_figures(results())[0];
  ASSERT_EQ(f.series.size(), 2u);  // histocnn (PyTorch has no 1-thread row) and ideal
  EXPECT_EQ(f.series[0].points, (std::vector<std::pair<double, double>>{{1, 1}, {2, 2}, {16, 16}}));
  StudyResults no_single = results();
  std::erase_if(no_single.ok, [](const StudyRow& r) { return r["threads"] == 1; });
  EXPECT_FALSE(has_data(cpu_scaling_figures(no_single)[0]));
}

// results() with what the cores could do (study --ceilings) in each histocnn
// CPU row at 200 px: sgemm 100 GFLOP/s on 1 thread, 190 on 2, 800 on 16.
StudyResults results_with_ceilings() {
  StudyResults r = results(false);
  const std::map<int, double> sgemm = {{1, 100}, {2, 190}, {16, 800}};
  for (auto& x : r.ok)
    if (x["engine"] == "histocnn" && x["size"] == 200)
      x["ceilings"] = {{"sgemm_gflops", sgemm.at(x["threads"].get<int>())},
                       {"triad_gbs", 10.0 * x["threads"].get<int>()}};
  return r;
}

TEST(ReportFigures, CpuScalingDrawsTheCoresOwnSgemmWhereTheStudyMeasuredIt) {
  const Figure f = cpu_scaling_figures(results_with_ceilings())[0];
  ASSERT_EQ(f.series.size(), 3u);  // histocnn, the sgemm, ideal
  EXPECT_EQ(f.series[1].title, "sgemm on these cores");
  EXPECT_EQ(f.series[1].points,
            (std::vector<std::pair<double, double>>{{1, 1}, {2, 1.9}, {16, 8}}));
  EXPECT_EQ(f.essential, (std::vector<bool>{true, false, false}));
}

TEST(ReportTables, CpuScalingReadsTheEpochsAgainstTheCoresSgemm) {
  const std::string md = cpu_scaling_table(results_with_ceilings());
  // 200 px only: the epoch 32/threads s, so the speed-up is the thread count.
  EXPECT_NE(md.find("| threads | batch 50 s | speed-up | sgemm GFLOP/s | sgemm speed-up | "
                    "triad GB/s |"),
            std::string::npos)
      << md;
  EXPECT_NE(md.find("| 1 | 32.000 | 1.00x | 100.0 | 1.00x | 10.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 16 | 2.000 | 16.00x | 800.0 | 8.00x | 160.0 |"), std::string::npos) << md;
  EXPECT_NE(md.find("sgemm sped up 8.00x, and the epoch, in brackets as a share of that: 16.00x "
                    "at batch 50 (200 %)"),
            std::string::npos)
      << md;
  // Without the ceilings: the epochs alone, no sentence.
  const std::string plain = cpu_scaling_table(results(false));
  EXPECT_NE(plain.find("| 2 | 16.000 | 2.00x |\n"), std::string::npos) << plain;
  EXPECT_EQ(plain.find("sgemm"), std::string::npos) << plain;
  // Without a 1-thread epoch there is no speed-up to print, nor a share.
  StudyResults no_single = results_with_ceilings();
  std::erase_if(no_single.ok, [](const StudyRow& r) { return r["threads"] == 1; });
  no_single.cpu_threads.erase(1);
  const std::string partial = cpu_scaling_table(no_single);
  EXPECT_NE(partial.find("| 2 | 16.000 | – | 190.0 | – | 20.0 |"), std::string::npos) << partial;
  EXPECT_EQ(partial.find("as a share"), std::string::npos) << partial;
  // One thread count is no scaling.
  StudyResults single = results(false);
  std::erase_if(single.ok, [](const StudyRow& r) { return r["threads"] != 16; });
  single.cpu_threads = {16};
  EXPECT_EQ(cpu_scaling_table(single), "");
}

TEST(ReportFigures, StepBreakdownTakesTheLargestProfiledRunAndOrdersLayersByExecution) {
  StudyResults r = results(false);
  nlohmann::json profile = {{"steps", 10},
                            {"data_wait_seconds", 0.0},
                            {"forward_seconds", 1.0},
                            {"backward_seconds", 2.0},
                            {"update_seconds", 0.1},
                            {"allocator_seconds", 0.0},
                            {"layer_seconds",
                             {{"fc1 forward", 0.1},
                              {"conv1 backward", 0.5},
                              {"conv1 forward", 0.3},
                              {"update", 0.1},
                              {"conv2 backward", 0.4}}}};
  r.ok[0]["profile"] = profile;  // 64 px
  r.ok[5]["profile"] = profile;  // 200 px, 16 threads: the largest
  const auto figures = step_breakdown_figures(r);
  ASSERT_EQ(figures.size(), 2u);
  EXPECT_NE(figures[0].caption.find("200 px, batch 50"), std::string::npos) << figures[0].caption;
  EXPECT_EQ(figures[0].series[2].points[0].second, 200.0);  // backward: 2 s / 10 steps, in ms
  const std::string& table = figures[1].table_md;
  const size_t f1 = table.find("conv1 forward"), fc = table.find("fc1 forward"),
               b2 = table.find("conv2 backward"), b1 = table.find("conv1 backward");
  EXPECT_TRUE(f1 < fc && fc < b2 && b2 < b1) << table;
  EXPECT_FALSE(has_data(step_breakdown_figures(results(false))[0]));
}

TEST(ReportFigures, EveryFigureFunctionIsListedOnce) {
  EXPECT_EQ(report_figures().size(), 6u);
  std::vector<std::string> names;
  for (const FigureFunction make : report_figures())
    for (const Figure& f : make(results())) names.push_back(f.name);
  EXPECT_EQ(names, (std::vector<std::string>{"fig3_gpu_direct", "fig4_gpu_pool",
                                             "fig5_allocators_b50", "fig6_speedup", "fig_cpu_time",
                                             "fig_cpu_scaling", "fig_breakdown", "fig_layers"}));
}

TEST(ReportTables, SpeedupTablePutsOursBesideThePaper) {
  const std::string md = speedup_table(results());
  EXPECT_NE(md.find("| 1 | 16.19 | 32.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 16 | 4.49 | 2.00 |"), std::string::npos) << md;
  EXPECT_NE(md.find("| 8 | 5.00 | – |"), std::string::npos) << md;
  EXPECT_NE(pytorch_table(results()).find("| cpu | 16 | 200 | 50 | 2.000 | 4.000 | 2.0x |"),
            std::string::npos);
  EXPECT_EQ(not_run_table(results()), "");
}

TEST(ReportFigures, LabelsReachGnuplotAsWrittenAndRenderLiterally) {
  const Figure f = speedup_figures(results())[0];
  const std::string script = gnuplot_script(f, "/tmp/x");
  EXPECT_NE(script.find("set ylabel \"t_cpu / t_gpu\""), std::string::npos) << script;
  if (std::system("command -v gnuplot >/dev/null 2>&1") != 0)
    GTEST_SKIP() << "gnuplot is not installed: not rendered";
  testing::TempDir dir;
  ASSERT_TRUE(draw_figure(dir.path(), f));
  // Enhanced text would print t_cpu as t with a subscript c: the terminal is noenhanced.
  const std::string png_script = read_file(dir / "fig6_speedup.png.gp");
  EXPECT_NE(png_script.find("pngcairo noenhanced"), std::string::npos) << png_script;
  EXPECT_TRUE(std::filesystem::exists(dir / "fig6_speedup.svg"));
  // The kept script, run by hand, writes the figure under its own name.
  std::filesystem::remove(dir / "fig6_speedup.png");
  ASSERT_EQ(std::system(("gnuplot '" + (dir / "fig6_speedup.png.gp") + "'").c_str()), 0);
  const std::string png = read_file(dir / "fig6_speedup.png");
  EXPECT_TRUE(figure_is_whole(png.substr(0, 64), png.substr(png.size() - 64), "png"));
}

// Without gnuplot on PATH a figure's scripts are written and nothing else:
// an earlier figure of that name, which would not show their data, is
// removed, and the caller is told nothing was drawn.
TEST(ReportFigures, WithoutGnuplotOnlyTheScriptsAreWritten) {
  testing::TempDir dir;
  std::filesystem::create_directories(dir / "no-programs");
  write_file_atomically(dir / "f.png", "an earlier run's figure");
  const char* before = std::getenv("PATH");
  const std::string path = before ? before : "";
  setenv("PATH", (dir / "no-programs").c_str(), 1);
  const bool drawable = figures_drawable("test", "its figures are scripts");
  const bool drawn = render_gnuplot(dir / "f", "plot x\n", 300, 200, true);
  setenv("PATH", path.c_str(), 1);
  EXPECT_FALSE(drawable);
  EXPECT_FALSE(drawn);
  EXPECT_FALSE(std::filesystem::exists(dir / "f.png"));
  EXPECT_FALSE(std::filesystem::exists(dir / "f.svg"));
  EXPECT_NE(read_file(dir / "f.png.gp").find("plot x"), std::string::npos);
  EXPECT_NE(read_file(dir / "f.svg.gp").find("set terminal svg"), std::string::npos);
  if (!gnuplot_on_path()) GTEST_SKIP() << "gnuplot is not installed: not drawn with it";
  EXPECT_TRUE(figures_drawable("test", "unused"));
  EXPECT_TRUE(render_gnuplot(dir / "f", "plot x\n", 300, 200, false));
  EXPECT_TRUE(std::filesystem::exists(dir / "f.png"));
}

// gnuplot exits 0 when a full disk cuts its output short, so a figure is
// kept only when its ends are those of a whole file.
TEST(ReportFigures, AFigureIsWholeOnlyWithItsLastBytes) {
  const std::string signature("\x89PNG\r\n\x1a\n", 8);
  const std::string iend("\0\0\0\0IEND\xae\x42\x60\x82", 12);
  EXPECT_TRUE(figure_is_whole(signature + "IHDR", "pixels" + iend, "png"));
  EXPECT_FALSE(figure_is_whole(signature + "IHDR", "pixels, cut", "png"));
  EXPECT_FALSE(figure_is_whole(signature + "IHDR", iend.substr(0, 11), "png"));
  EXPECT_FALSE(figure_is_whole("GIF89a", "pixels" + iend, "png"));
  EXPECT_FALSE(figure_is_whole("", "", "png"));
  EXPECT_TRUE(figure_is_whole("<?xml", "</g>\n</svg>\n\n", "svg"));
  EXPECT_FALSE(figure_is_whole("<?xml", "<path d='M 0 0 L 1", "svg"));
  EXPECT_FALSE(figure_is_whole("", "", "svg"));
}

TEST(ResultsFile, EveryRowIsCheckedAndAnErrorNamesItsLine) {
  const std::string ok =
      R"({"key":"a","status":"ok","engine":"histocnn","device":"cpu","threads":1,"size":32,)"
      R"("batch":10,"epoch_seconds":0.5,"images_per_second":80})";
  EXPECT_EQ(parse_results(ok + "\n", "r.jsonl").size(), 1u);
  // A later row for a key replaces the earlier; a torn last line is skipped.
  EXPECT_EQ(parse_results(ok + "\n" + ok + "\n{\"key\":\"b\",\"sta", "r.jsonl").size(), 1u);
  const std::vector<std::pair<std::string, std::string>> bad = {
      {"5", "r.jsonl line 2: not a JSON object"},
      {R"({"status":"ok"})", "r.jsonl line 2: no \"key\""},
      {R"({"key":7})", "\"key\" is not text"},
      {R"({"key":"b","status":"ok","engine":"histocnn","device":"cpu","threads":"1"})",
       "\"threads\" is not a whole number"},
      {R"({"key":"b","status":"ok","engine":"x","device":"cuda","threads":1,"size":32,)"
       R"("batch":10,"epoch_seconds":0.5,"images_per_second":80})",
       "no \"allocator\""},
      {R"({"key":"b","status":"ok","engine":"x","device":"cpu","threads":1,"size":32,)"
       R"("batch":10,"epoch_seconds":0,"images_per_second":80})",
       "\"epoch_seconds\" is not positive"},
      {R"({"key":"b","machine":{"cores":"two"}})", "machine: \"cores\" is not a whole number"},
      {R"({"key":"b","status":"ok","engine":"x","device":"cpu","threads":1,"size":32,)"
       R"("batch":10,"epoch_seconds":1,"images_per_second":80,"profile":{"steps":1}})",
       "profile: no \"data_wait_seconds\""},
      {R"({"key":"b","status":"ok","engine":"x","device":"cpu","threads":1,"size":32,)"
       R"("batch":10,"epoch_seconds":1,"images_per_second":80,"ceilings":[1]})",
       "r.jsonl line 2: \"ceilings\" is not an object"},
      {R"({"key":"b","status":"ok","engine":"x","device":"cpu","threads":1,"size":32,)"
       R"("batch":10,"epoch_seconds":1,"images_per_second":80,"ceilings":{"triad_gbs":9}})",
       "ceilings: no \"sgemm_gflops\""},
      {R"({"key":"b","status":"ok","engine":"x","device":"cpu","threads":1,"size":32,)"
       R"("batch":10,"epoch_seconds":1,"images_per_second":80,)"
       R"("ceilings":{"sgemm_gflops":0,"triad_gbs":9}})",
       "ceilings: \"sgemm_gflops\" is not positive"}};
  for (const auto& [row, words] : bad) {
    try {
      parse_results(ok + "\n" + row + "\n", "r.jsonl");
      ADD_FAILURE() << row << " was accepted";
    } catch (const Error& e) {
      EXPECT_NE(std::string(e.what()).find(words), std::string::npos) << e.what();
    }
  }
}

TEST(MarkdownHtml, HeadingsTablesImagesInlineMarkupAndEscapes) {
  const std::string html = markdown_to_html(
      "# A & B\n\n| a | b<c |\n|---|---|\n| `x_y` | 2 |\n\n![cap](f.png) ([SVG](f.svg))\n"
      "*Not drawn:* a **b** c*d\n",
      "T");
  EXPECT_NE(html.find("<h1 id=\"a--b\">A &amp; B</h1>"), std::string::npos) << html;
  EXPECT_EQ(heading_anchor("Slide 3: case_12.tif (Top-Mean)"), "slide-3-case_12tif-top-mean");
  EXPECT_NE(html.find("<table>\n<tr><th> a </th><th> b&lt;c </th></tr>\n"
                      "<tr><td> <code>x_y</code> </td><td> 2 </td></tr>\n</table>"),
            std::string::npos)
      << html;
  EXPECT_NE(html.find("<p><img src=\"f.png\" alt=\"cap\"> (<a href=\"f.svg\">SVG</a>)</p>"),
            std::string::npos)
      << html;
  // An unclosed mark stays as written.
  EXPECT_NE(html.find("<p><em>Not drawn:</em> a <strong>b</strong> c*d</p>"), std::string::npos)
      << html;
}

TEST(ReportFigures, TitlesNameWhatWasMeasuredAndLogAxesSaySo) {
  const Figure cpu = cpu_time_figures(results())[0];
  EXPECT_EQ(cpu.title, "histocnn and PyTorch on the CPU, 16 threads: epoch time per batch");
  EXPECT_NE(gnuplot_script(cpu, "x").find("seconds per epoch (log scale)"), std::string::npos);
  StudyResults ours = results();
  std::erase_if(ours.ok, [](const StudyRow& r) { return r["engine"] == "pytorch"; });
  EXPECT_EQ(cpu_time_figures(ours)[0].caption, "CPU epoch time, 16 threads: histocnn");
  EXPECT_NE(gnuplot_script(speedup_figures(results())[0], "x").find("CPU cores (log scale)"),
            std::string::npos);
  EXPECT_EQ(pytorch_table(ours),
            "PyTorch was not measured in this study (`--engines histocnn,pytorch`).\n");
}

// Figures over image size tic the sizes measured, and one size alone sits in
// a range around it rather than between gnuplot's tics of 31.9 and 32.1.
TEST(ReportFigures, SizeAxesTicTheSizesMeasured) {
  const std::string two = gnuplot_script(cpu_time_figures(results())[0], "x");
  EXPECT_NE(two.find("set xtics (64, 200)\n"), std::string::npos) << two;
  EXPECT_EQ(two.find("set xrange"), std::string::npos) << two;
  EXPECT_NE(gnuplot_script(gpu_time_figures(results())[0], "x").find("set xtics (64, 200)"),
            std::string::npos);
  EXPECT_NE(gnuplot_script(allocator_figures(results())[0], "x").find("set xtics (64, 200)"),
            std::string::npos);
  StudyResults one = results();
  std::erase_if(one.ok, [](const StudyRow& r) { return r["size"] != 64; });
  one.sizes = {64};
  const std::string single = gnuplot_script(cpu_time_figures(one)[0], "x");
  EXPECT_NE(single.find("set xtics (64)\nset xrange [32:96]\n"), std::string::npos) << single;
}

TEST(ReportFigures, ZeroBarsGetAVisibleMark) {
  Figure f;
  f.name = "bars";
  f.series = {{"a", {{0, 1.5}, {1, 0.0}}, "boxes fs solid 0.6"}};
  EXPECT_NE(gnuplot_script(f, "x").find("($2 == 0 ? 0 : 1/0) with points"), std::string::npos);
  f.series[0].points[1].second = 0.1;
  EXPECT_EQ(gnuplot_script(f, "x").find("with points"), std::string::npos);
}

}  // namespace
}  // namespace histocnn
