// Reading ../shared/golden/schedulers.json for the scheduler parity tests.
#pragma once

#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "dreambooth/core/config_reader.h"
#include "dreambooth/schedulers/registry.h"
#include "dreambooth/schedulers/scheduler_config.h"
#include "support/golden.h"

namespace dreambooth::testing {

// Parsed once; it holds "lambda_min_clipped": -Infinity, hence the Python-JSON parser.
inline const nlohmann::json& schedulers_json() {
  static const nlohmann::json json = [] {
    std::ifstream in(golden_path("schedulers.json"));
    if (!in) throw std::runtime_error("cannot read golden schedulers.json");
    std::stringstream text;
    text << in.rdbuf();
    return parse_python_json(text.str(), "schedulers.json");
  }();
  return json;
}

// {shape, dtype, data} -> a tensor of that dtype.
inline at::Tensor json_tensor(const nlohmann::json& j) {
  const auto shape = j.at("shape").get<std::vector<int64_t>>();
  const auto data = j.at("data").get<std::vector<double>>();
  const std::string dtype = j.at("dtype").get<std::string>();
  at::Tensor t = torch::tensor(data, torch::kFloat64).reshape(shape);
  if (dtype == "float32") return t.to(torch::kFloat32);
  if (dtype == "int64") return t.to(torch::kInt64);
  return t;
}

inline at::Tensor json_vector(const nlohmann::json& j) {
  return torch::tensor(j.get<std::vector<double>>(), torch::kFloat64);
}

// A case's resolved config, read as the file of its scheduler class.
inline schedulers::SchedulerConfig case_config(const nlohmann::json& c) {
  nlohmann::json config = c.at("config");
  config["_class_name"] = c.at("scheduler");
  return schedulers::SchedulerConfig::from_json(config, "schedulers.json " + c.at("scheduler").get<std::string>());
}

inline schedulers::SamplerKind case_kind(const nlohmann::json& c) {
  return schedulers::sampler_for_class(c.at("scheduler").get<std::string>()).kind;
}

inline std::string case_label(const nlohmann::json& c) {
  return c.at("scheduler").get<std::string>() + " steps=" + std::to_string(c.at("steps").get<int>()) +
         " overrides=" + c.at("overrides").dump();
}

}  // namespace dreambooth::testing
