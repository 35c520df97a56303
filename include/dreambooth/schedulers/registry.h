// The sampler table: one row per sampler, driving name lookup, CLI validation and --help text.
#pragma once

#include <string>
#include <vector>

#include "dreambooth/schedulers/sampler.h"

namespace dreambooth::schedulers {

struct SamplerInfo {
  const char* name;                   // canonical CLI name
  std::vector<std::string> aliases;   // other accepted spellings
  SamplerKind kind;
  SamplerFunction function;
  bool supports_karras;  // --karras accepted (diffusers: Euler, DPM-Solver++, LMS)
  bool supports_eta;     // --eta accepted (DDIM)
  const char* help;
};

// Every sampler, in --help order.
const std::vector<SamplerInfo>& sampler_table();

// Case-insensitive lookup by name or alias; a usage error listing the valid names otherwise.
const SamplerInfo& find_sampler(const std::string& name);
const SamplerInfo& sampler_info(SamplerKind kind);

// The sampler reproducing a diffusers scheduler `_class_name` ("the model's own scheduler"); a model error
// naming the class and the supported ones otherwise.
const SamplerInfo& sampler_for_class(const std::string& class_name, const std::string& source = "scheduler config");

// Usage errors for options the sampler does not take: --karras where unsupported (an error rather than
// a silent no-op), eta != 0 outside DDIM, negative eta.
void validate_sampler_options(const SamplerInfo& sampler, const ScheduleOptions& schedule_options,
                              const SamplerOptions& options);

// One line per sampler: "  name (aliases)  help [karras]".
std::string sampler_help();

}  // namespace dreambooth::schedulers
