// The examples a benchmark epoch trains on (histocnn bench, bench_epoch):
// the paper's 1851 crops at the input size, of
//   "tissue" (the default): the synthetic GlaS-like dataset the study trains
//            on (data/synth.h, written once into the user's cache), cropped
//            256 px and resized as training does;
//   "random": uniformly random pixels.
// Which one matters: the later blocks' pooled gradients skip the windows
// whose maximum is not positive, so their work follows the content. On
// random pixels conv2's backward took 1.7 ms a step where the synthetic
// tissue took 7.9 (one thread, 200 px, batch 10, the 2-core VM;
// docs/results/cpu-pooled-balance.md): a benchmark on random pixels
// understates our step. Random pixels stay for A/B runs comparable with
// older records.
#pragma once

#include <string>

#include "data/dataset.h"

namespace histocnn {

// requires: pixels is "tissue" or "random" (else throws naming --pixels);
//           size >= 8, benign + malignant >= 1.
// ensures:  `benign` examples labelled 0 and `malignant` labelled 1, size x
//           size, the same pixels run to run. Where there is no cache to
//           write the tissue dataset to, it goes to the system's temporary
//           folder (histocnn-synthetic, written once).
ExampleSet bench_examples(const std::string& pixels, int size, int benign, int malignant);

}  // namespace histocnn
