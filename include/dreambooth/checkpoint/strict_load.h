// Strict matching of stored tensors against a component's plan, and loading them into parameters.
//
// Every planned tensor must be stored exactly once with the planned shape; every stored tensor of the
// component must be planned or a known benign extra. All problems of a checkpoint are gathered and
// reported in ONE model error that names the file and lists every missing, unexpected and mis-shaped key.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

#include <ATen/core/Tensor.h>

#include "dreambooth/checkpoint/key_map.h"
#include "dreambooth/checkpoint/weight_files.h"

namespace dreambooth::checkpoint {

struct KeyProblems {
  std::vector<std::string> missing;
  std::vector<std::string> unexpected;
  std::vector<std::string> misshaped;  // "key [stored shape] (expected [shape])"

  bool empty() const { return missing.empty() && unexpected.empty() && misshaped.empty(); }
  void append(const KeyProblems& other);
  // "3 missing: a, b, c; 1 unexpected: d; 1 mis-shaped: e [2, 3] (expected [3, 3])"
  std::string summary() const;
};

// Throws one model error naming `file` when `problems` is not empty.
void throw_if_problems(const KeyProblems& problems, const std::string& file, const std::string& hint);

// Looks every planned tensor up in `files` (trying `aliases` for diffusers names older exports used),
// records missing and mis-shaped ones in `problems`, and returns the plan with each key set to the name
// actually stored. Missing entries are dropped from the returned plan.
ComponentPlan bind_plan(const ComponentPlan& plan, const WeightFiles& files, const KeyMap* aliases,
                        KeyProblems& problems);

// The parameters of a module by diffusers name (named_parameters() of a UNet/VAE/text model).
using ParameterMap = std::unordered_map<std::string, at::Tensor>;

// Copies each planned tensor into its parameter(s), converting dtype and device. The files are read in
// file order with large sequential pread()s into a few reused buffers, the next chunk read while the
// current one is converted (see chunked_read.h), so peak memory stays near the size of the loaded
// model and a cold file loads at close to the disk's sequential speed. The plan's diffusers keys and shapes must equal the parameters (a runtime error
// listing the differences otherwise: that is a bug, not a user error).
struct ReadBuffers {
  uint64_t chunk_bytes = uint64_t{64} << 20;  // each read; tensors larger than this span several
  size_t count = 2;                           // one converted while the next is read
  uint64_t prefetch_bytes = uint64_t{1} << 30;  // hinted to the page cache ahead of the buffers
};
void load_parameters(const ComponentPlan& bound_plan, const WeightFiles& files, const ParameterMap& parameters,
                     const std::string& component, const ReadBuffers& buffers = {});

}  // namespace dreambooth::checkpoint
