#include "dreambooth/train/metrics.h"

#include <sstream>
#include <string>

#include <nlohmann/json.hpp>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/error.h"

namespace fs = std::filesystem;

namespace dreambooth::train {
namespace {

nlohmann::json metrics_to_json(const StepMetrics& m) {
  nlohmann::json j = {{"step", m.step},           {"loss", m.loss}, {"instance_loss", m.instance_loss},
                      {"prior_loss", nullptr},    {"lr", m.lr},     {"grad_norm", m.grad_norm},
                      {"seconds", m.seconds}};
  if (m.prior_loss) j["prior_loss"] = *m.prior_loss;
  if (m.peak_device_memory_bytes) j["peak_vram_bytes"] = *m.peak_device_memory_bytes;
  if (m.optimizer_state_bytes) j["optimizer_state_bytes"] = *m.optimizer_state_bytes;
  return j;
}

std::optional<StepMetrics> metrics_from_line(const std::string& line) {
  try {
    const nlohmann::json j = nlohmann::json::parse(line);
    StepMetrics m;
    m.step = j.at("step").get<int>();
    m.loss = j.at("loss").get<double>();
    m.instance_loss = j.value("instance_loss", m.loss);
    if (j.contains("prior_loss") && j["prior_loss"].is_number()) m.prior_loss = j["prior_loss"].get<double>();
    m.lr = j.value("lr", 0.0);
    m.grad_norm = j.value("grad_norm", 0.0);
    m.seconds = j.value("seconds", 0.0);
    if (j.contains("peak_vram_bytes")) m.peak_device_memory_bytes = j["peak_vram_bytes"].get<int64_t>();
    if (j.contains("optimizer_state_bytes") && j["optimizer_state_bytes"].is_number_integer())
      m.optimizer_state_bytes = j["optimizer_state_bytes"].get<int64_t>();
    return m;
  } catch (const nlohmann::json::exception&) {
    return std::nullopt;  // a torn last line of a killed run
  }
}

}  // namespace

MetricsLog::MetricsLog(fs::path path, int keep_through_step) : path_(std::move(path)) {
  std::string kept;
  if (keep_through_step > 0) {
    std::ifstream in(path_);
    for (std::string line; std::getline(in, line);) {
      auto m = metrics_from_line(line);
      if (!m || m->step > keep_through_step) continue;
      history_.push_back(*m);
      kept += metrics_to_json(*m).dump() + "\n";
    }
  }
  write_text_file_atomic(path_, kept);
  out_.open(path_, std::ios::app);
  if (!out_) throw output_error(path_.string(), "cannot open the metrics log for writing");
}

void MetricsLog::append(const StepMetrics& metrics) {
  history_.push_back(metrics);
  out_ << metrics_to_json(metrics).dump() << "\n";
  out_.flush();
  if (!out_) throw output_error(path_.string(), "cannot write the metrics log (disk full?)");
}

}  // namespace dreambooth::train
