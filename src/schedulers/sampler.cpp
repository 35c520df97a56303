#include "dreambooth/schedulers/sampler.h"

#include "dreambooth/core/error.h"

namespace dreambooth::schedulers {

void require_kind(const Schedule& schedule, SamplerKind kind) {
  if (schedule.kind != kind)
    throw Error(ErrorKind::Runtime, std::string("sampler for ") + diffusers_class_name(kind) +
                                        " called with a schedule built for " + diffusers_class_name(schedule.kind));
}

void report_step(const ProgressCallback& progress, const Schedule& schedule, int i, const at::Tensor& latents,
                 const at::Tensor& denoised) {
  if (!progress) return;
  StepProgress p;
  p.step = i;
  p.total = schedule.size();
  p.timestep = schedule.timesteps.at(i);
  p.latents = latents;
  p.denoised = denoised;
  progress(p);
}

}  // namespace dreambooth::schedulers
