// The study report's figures, one function each: the study's results in, the
// figures (series and how to draw them) out — no files, so each is tested
// alone. report_figures() lists them in the report's order; a new figure is
// one function here and one line in that list.
#pragma once

#include <vector>

#include "study/plotter.h"
#include "study/study_results.h"

namespace histocnn {

// Paper Figs. 3 and 4: GPU epoch time over image size, a line per batch,
// with the pool off (direct cudaMalloc/cudaFree) and on.
std::vector<Figure> gpu_time_figures(const StudyResults& results);
// Paper Fig. 5: per batch, every allocator (and PyTorch) over image size.
std::vector<Figure> allocator_figures(const StudyResults& results);
// Paper Fig. 6: the speed-up t_cpu / t_gpu against CPU cores at the largest
// size, beside the paper's published points.
std::vector<Figure> speedup_figures(const StudyResults& results);
// CPU epoch time over image size at the most threads, histocnn and PyTorch.
std::vector<Figure> cpu_time_figures(const StudyResults& results);
// CPU scaling at the largest size: speed-up over one thread, and ideal.
std::vector<Figure> cpu_scaling_figures(const StudyResults& results);
// Where a step's time goes (data, forward, backward, optimizer,
// allocator), and per layer and direction with a table, for the largest
// histocnn measurement with a profile.
std::vector<Figure> step_breakdown_figures(const StudyResults& results);

using FigureFunction = std::vector<Figure> (*)(const StudyResults&);
const std::vector<FigureFunction>& report_figures();

// Where an operation label ("conv2 backward", "fc1 forward", "loss", ...)
// falls in a step: input, forward layers in order, loss, backward layers in
// reverse, update.
int execution_rank(const std::string& label);

}  // namespace histocnn
