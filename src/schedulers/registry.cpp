#include "dreambooth/schedulers/registry.h"

#include <algorithm>
#include <cctype>
#include <sstream>

#include "dreambooth/core/error.h"
#include "dreambooth/schedulers/ddim.h"
#include "dreambooth/schedulers/ddpm.h"
#include "dreambooth/schedulers/dpm_solver.h"
#include "dreambooth/schedulers/euler.h"
#include "dreambooth/schedulers/lms.h"
#include "dreambooth/schedulers/pndm.h"

namespace dreambooth::schedulers {
namespace {

std::string lower(std::string s) {
  std::transform(s.begin(), s.end(), s.begin(), [](unsigned char c) { return static_cast<char>(std::tolower(c)); });
  return s;
}

std::string valid_names() {
  std::string names;
  for (const auto& s : sampler_table()) names += (names.empty() ? "" : ", ") + std::string(s.name);
  return names;
}

}  // namespace

const std::vector<SamplerInfo>& sampler_table() {
  static const std::vector<SamplerInfo> table = {
      {"ddim", {}, SamplerKind::Ddim, &sample_ddim, false, true,
       "DDIM; deterministic with --eta 0, adds noise with --eta > 0"},
      {"pndm", {"plms"}, SamplerKind::Pndm, &sample_pndm, false, false,
       "PNDM/PLMS (skip_prk_steps), the SD1 default; steps + 1 model calls"},
      {"euler", {"k_euler"}, SamplerKind::Euler, &sample_euler, true, false, "Euler in sigma (k-diffusion)"},
      {"euler_a", {"euler_ancestral", "k_euler_a", "k_euler_ancestral"}, SamplerKind::EulerAncestral,
       &sample_euler_ancestral, false, false, "Euler ancestral: adds fresh noise every step"},
      {"dpmpp_2m", {"dpm++2m", "dpm++_2m", "dpmpp2m", "dpm_solver++", "k_dpmpp_2m"}, SamplerKind::DpmSolverMultistep,
       &sample_dpm_solver, true, false, "DPM-Solver++ 2M multistep; good at 15-25 steps"},
      {"ddpm", {}, SamplerKind::Ddpm, &sample_ddpm, false, false, "DDPM ancestral sampling; needs many steps"},
      {"lms", {"k_lms"}, SamplerKind::Lms, &sample_lms, true, false, "linear multistep (order 4) in sigma"},
  };
  return table;
}

const SamplerInfo& find_sampler(const std::string& name) {
  const std::string key = lower(name);
  for (const auto& s : sampler_table()) {
    if (key == s.name) return s;
    for (const auto& alias : s.aliases)
      if (key == alias) return s;
  }
  throw usage_error("unknown sampler '" + name + "'", "valid: " + valid_names());
}

const SamplerInfo& sampler_info(SamplerKind kind) {
  for (const auto& s : sampler_table())
    if (s.kind == kind) return s;
  throw Error(ErrorKind::Runtime, "sampler kind missing from the registry");
}

const SamplerInfo& sampler_for_class(const std::string& class_name, const std::string& source) {
  std::string classes;
  for (const auto& s : sampler_table()) {
    if (class_name == diffusers_class_name(s.kind)) return s;
    classes += (classes.empty() ? "" : ", ") + std::string(diffusers_class_name(s.kind));
  }
  throw model_error(source, "scheduler class '" + class_name + "' is not supported",
                    "supported: " + classes + "; or choose a sampler explicitly");
}

void validate_sampler_options(const SamplerInfo& sampler, const ScheduleOptions& schedule_options,
                              const SamplerOptions& options) {
  if (schedule_options.karras.value_or(false) && !sampler.supports_karras) {
    std::string supported;
    for (const auto& s : sampler_table())
      if (s.supports_karras) supported += (supported.empty() ? "" : ", ") + std::string(s.name);
    throw usage_error(std::string("--karras is not supported by sampler '") + sampler.name + "'",
                      "supported by: " + supported);
  }
  if (!(options.eta >= 0.0)) throw usage_error("--eta must be >= 0");
  if (options.eta != 0.0 && !sampler.supports_eta)
    throw usage_error(std::string("--eta is not used by sampler '") + sampler.name + "'", "use ddim");
}

std::string sampler_help() {
  std::ostringstream out;
  for (const auto& s : sampler_table()) {
    std::string names = s.name;
    if (!s.aliases.empty()) {
      names += " (";
      for (size_t i = 0; i < s.aliases.size(); ++i) names += (i ? ", " : "") + s.aliases[i];
      names += ")";
    }
    out << "  " << names << "\n      " << s.help;
    if (s.supports_karras) out << "; --karras";
    if (s.supports_eta) out << "; --eta";
    out << "\n";
  }
  return out.str();
}

}  // namespace dreambooth::schedulers
