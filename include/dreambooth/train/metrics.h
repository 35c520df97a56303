// Training metrics: one JSON object per optimizer step appended to OUTPUT/metrics.jsonl
// ({"step", "loss", "instance_loss", "prior_loss", "lr", "grad_norm", "seconds"}, and "peak_vram_bytes" on CUDA), and the loss curve
// drawn into OUTPUT/loss.png at the end.
// ({"step", "loss", "instance_loss", "prior_loss", "lr", "grad_norm", "seconds"}; the first step of a run
// adds "optimizer_state_bytes"), and the loss curve drawn into OUTPUT/loss.png at the end.
#pragma once

#include <cstdint>
#include <filesystem>
#include <cstdint>
#include <fstream>
#include <optional>
#include <vector>

#include "dreambooth/io/image.h"

namespace dreambooth::train {

struct StepMetrics {
  int step = 0;  // 1-based optimizer step
  double loss = 0;
  double instance_loss = 0;
  std::optional<double> prior_loss;
  double lr = 0;
  double grad_norm = 0;
  double seconds = 0;  // wall time of the step
  std::optional<int64_t> peak_device_memory_bytes;  // CUDA: the allocator's peak so far
  std::optional<int64_t> optimizer_state_bytes;  // the first step of a run (or of a resumed run)
};

class MetricsLog {
 public:
  // Opens (creating) the log. Lines of steps after `keep_through_step` (an earlier, interrupted run that
  // went further than the checkpoint being resumed) are dropped; keep_through_step 0 starts it empty.
  MetricsLog(std::filesystem::path path, int keep_through_step);
  void append(const StepMetrics& metrics);  // written and flushed at once
  const std::vector<StepMetrics>& history() const { return history_; }
  const std::filesystem::path& path() const { return path_; }

 private:
  std::filesystem::path path_;
  std::ofstream out_;
  std::vector<StepMetrics> history_;
};

// The loss curve: raw per-step loss (light), its exponential moving average (dark) and the prior loss
// (orange) when present, over steps, with axis ticks. Drawn with a tiny rasteriser, no dependencies.
io::Image render_loss_plot(const std::vector<StepMetrics>& history, int width = 800, int height = 400);
void save_loss_plot(const std::filesystem::path& path, const std::vector<StepMetrics>& history);

}  // namespace dreambooth::train
