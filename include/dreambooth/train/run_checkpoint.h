// Training checkpoints: everything a run needs to continue as if it had never stopped.
//
// OUTPUT/checkpoints/step-NNNNNN/
//   weights.safetensors    the trained tensors by TrainableParameters name, in their own dtype
//   optimizer.safetensors  the AdamW (or 8-bit AdamW) state by name (optimizer.h)
//   state.json             format, step, data order, the run generator's state, loss scaler, token and
//                          the run's resolved options
// A checkpoint folder appears whole: it is written as a temporary sibling and renamed into place.
#pragma once

#include <filesystem>
#include <string>
#include <utility>
#include <vector>

#include <ATen/core/Tensor.h>
#include <nlohmann/json.hpp>
#include <torch/optim/optimizer.h>

#include "dreambooth/train/dataset.h"
#include "dreambooth/train/trainable_parameters.h"

namespace dreambooth::train {

struct RunState {
  int step = 0;             // optimizer steps done
  DataOrder data_order;
  at::Tensor rng_state;     // the run generator's state (uint8, CPU)
  // The training device's default generator, which LoRA dropout draws from (uint8, CPU); undefined in
  // checkpoints written before it was saved.
  at::Tensor device_rng_state;
  nlohmann::json loss_scaler = nlohmann::json::object();
  std::string token;        // the identifier the run uses
  nlohmann::json options = nlohmann::json::object();
};

std::filesystem::path checkpoints_folder(const std::filesystem::path& output);
std::filesystem::path checkpoint_folder(const std::filesystem::path& output, int step);  // .../step-000100
// Complete checkpoints (those with a state.json), by step, oldest first.
std::vector<std::pair<int, std::filesystem::path>> list_checkpoints(const std::filesystem::path& output);

void save_run_checkpoint(const std::filesystem::path& folder, const TrainableParameters& trainable,
                         torch::optim::Optimizer& optimizer, const RunState& state);
// Loads the weights into the trainable tensors and the optimizer state; returns the rest. Input errors
// name the file for a missing, damaged or mismatching checkpoint.
RunState load_run_checkpoint(const std::filesystem::path& folder, const TrainableParameters& trainable,
                             torch::optim::Optimizer& optimizer);

// --resume: "latest" (the newest checkpoint in OUTPUT/checkpoints) or a checkpoint folder. Input error
// when there is none.
std::filesystem::path resolve_resume(const std::string& spec, const std::filesystem::path& output);

// Deletes all but the newest `keep` checkpoints (keep 0: none deleted).
void prune_checkpoints(const std::filesystem::path& output, int keep);

}  // namespace dreambooth::train
