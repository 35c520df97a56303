#include "dreambooth/schedulers/scheduler_config.h"

#include <cmath>
#include <fstream>
#include <sstream>

#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"

namespace dreambooth::schedulers {
namespace {

template <typename E>
struct EnumName {
  const char* name;
  E value;
};

// The first row for a value is its canonical name; later rows are aliases diffusers also accepts.
constexpr EnumName<BetaSchedule> kBetaSchedules[] = {
    {"linear", BetaSchedule::Linear},
    {"scaled_linear", BetaSchedule::ScaledLinear},
    {"squaredcos_cap_v2", BetaSchedule::SquaredCosCapV2},
};
constexpr EnumName<PredictionType> kPredictionTypes[] = {
    {"epsilon", PredictionType::Epsilon},
    {"v_prediction", PredictionType::VPrediction},
    {"sample", PredictionType::Sample},
    {"original_sample", PredictionType::Sample},
};
constexpr EnumName<TimestepSpacing> kSpacings[] = {
    {"leading", TimestepSpacing::Leading},
    {"trailing", TimestepSpacing::Trailing},
    {"linspace", TimestepSpacing::Linspace},
};
constexpr EnumName<AlgorithmType> kAlgorithms[] = {
    {"dpmsolver++", AlgorithmType::DpmSolverPlusPlus},
    {"dpmsolver", AlgorithmType::DpmSolver},
    {"sde-dpmsolver++", AlgorithmType::SdeDpmSolverPlusPlus},
    {"sde-dpmsolver", AlgorithmType::SdeDpmSolver},
    {"deis", AlgorithmType::DpmSolverPlusPlus},  // diffusers re-registers "deis" as dpmsolver++
};
constexpr EnumName<SolverType> kSolverTypes[] = {
    {"midpoint", SolverType::Midpoint},
    {"heun", SolverType::Heun},
    {"logistic", SolverType::Midpoint},  // UniPC names, mapped to midpoint by diffusers
    {"bh1", SolverType::Midpoint},
    {"bh2", SolverType::Midpoint},
};
constexpr EnumName<FinalSigmasType> kFinalSigmas[] = {
    {"sigma_min", FinalSigmasType::SigmaMin},
    {"zero", FinalSigmasType::Zero},
};
constexpr EnumName<VarianceType> kVarianceTypes[] = {
    {"fixed_small", VarianceType::FixedSmall},     {"fixed_small_log", VarianceType::FixedSmallLog},
    {"fixed_large", VarianceType::FixedLarge},     {"fixed_large_log", VarianceType::FixedLargeLog},
    {"learned", VarianceType::Learned},            {"learned_range", VarianceType::LearnedRange},
};

template <typename E, size_t N>
const char* enum_name(const EnumName<E> (&table)[N], E value) {
  for (const auto& row : table)
    if (row.value == value) return row.name;
  return "?";
}

template <typename E, size_t N>
std::optional<E> read_enum(ConfigReader& reader, const EnumName<E> (&table)[N], const std::string& key,
                           const std::string& source) {
  std::string text;
  if (!reader.has(key)) {
    reader.ignore(key);  // absent or null
    return std::nullopt;
  }
  reader.read(key, text);
  std::string valid;
  for (const auto& row : table) {
    if (text == row.name) return row.value;
    valid += (valid.empty() ? "" : ", ") + std::string(row.name);
  }
  throw model_error(source, "config key '" + key + "' = \"" + text + "\" is not supported", "supported: " + valid);
}

template <typename E, size_t N>
void read_enum_into(ConfigReader& reader, const EnumName<E> (&table)[N], const std::string& key,
                    const std::string& source, E& value) {
  if (auto v = read_enum(reader, table, key, source)) value = *v;
}

template <typename E, size_t N>
void read_enum_into(ConfigReader& reader, const EnumName<E> (&table)[N], const std::string& key,
                    const std::string& source, std::optional<E>& value) {
  if (auto v = read_enum(reader, table, key, source)) value = *v;
}

template <typename T>
void read_optional(ConfigReader& reader, const std::string& key, std::optional<T>& value) {
  if (!reader.has(key)) {
    reader.ignore(key);
    return;
  }
  T v{};
  reader.read(key, v);
  value = v;
}

// Defaults of the keys whose diffusers 0.25.1 default differs between scheduler classes. A class
// without the key leaves it unset (the field does not matter to that class).
struct ClassDefaults {
  const char* class_name;
  TimestepSpacing timestep_spacing;
  std::optional<bool> set_alpha_to_one;
  std::optional<bool> clip_sample;
  std::optional<bool> skip_prk_steps;
  std::optional<VarianceType> variance_type;
};

const ClassDefaults kClassDefaults[] = {
    {"DDIMScheduler", TimestepSpacing::Leading, true, true, std::nullopt, std::nullopt},
    {"PNDMScheduler", TimestepSpacing::Leading, false, std::nullopt, false, std::nullopt},
    {"DDPMScheduler", TimestepSpacing::Leading, std::nullopt, true, std::nullopt, VarianceType::FixedSmall},
    {"EulerDiscreteScheduler", TimestepSpacing::Linspace, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
    {"EulerAncestralDiscreteScheduler", TimestepSpacing::Linspace, std::nullopt, std::nullopt, std::nullopt,
     std::nullopt},
    {"DPMSolverMultistepScheduler", TimestepSpacing::Linspace, std::nullopt, std::nullopt, std::nullopt,
     std::nullopt},
    {"LMSDiscreteScheduler", TimestepSpacing::Linspace, std::nullopt, std::nullopt, std::nullopt, std::nullopt},
};

}  // namespace

const char* to_string(BetaSchedule v) { return enum_name(kBetaSchedules, v); }
const char* to_string(PredictionType v) { return enum_name(kPredictionTypes, v); }
const char* to_string(TimestepSpacing v) { return enum_name(kSpacings, v); }
const char* to_string(AlgorithmType v) { return enum_name(kAlgorithms, v); }
const char* to_string(SolverType v) { return enum_name(kSolverTypes, v); }
const char* to_string(FinalSigmasType v) { return enum_name(kFinalSigmas, v); }
const char* to_string(VarianceType v) { return enum_name(kVarianceTypes, v); }

SchedulerConfig SchedulerConfig::single_file_default(bool sd2) {
  SchedulerConfig c;
  c.class_name = sd2 ? "DDIMScheduler" : "PNDMScheduler";
  c.num_train_timesteps = 1000;
  c.beta_start = 0.00085;
  c.beta_end = 0.012;
  c.beta_schedule = BetaSchedule::ScaledLinear;
  c.steps_offset = 1;
  c.timestep_spacing = TimestepSpacing::Leading;
  c.set_alpha_to_one = false;
  c.clip_sample = false;
  if (!sd2) c.skip_prk_steps = true;
  return c.with_class_defaults(c.class_name);
}

SchedulerConfig SchedulerConfig::with_class_defaults(const std::string& name) const {
  SchedulerConfig c = *this;
  for (const auto& d : kClassDefaults) {
    if (name != d.class_name) continue;
    if (!c.timestep_spacing) c.timestep_spacing = d.timestep_spacing;
    if (!c.set_alpha_to_one) c.set_alpha_to_one = d.set_alpha_to_one;
    if (!c.clip_sample) c.clip_sample = d.clip_sample;
    if (!c.skip_prk_steps) c.skip_prk_steps = d.skip_prk_steps;
    if (!c.variance_type) c.variance_type = d.variance_type;
  }
  return c;
}

SchedulerConfig SchedulerConfig::from_json(const nlohmann::json& json, const std::string& source) {
  SchedulerConfig c;
  ConfigReader r(json, source);
  r.read("_class_name", c.class_name);
  r.ignore_prefix("_");  // _diffusers_version and other bookkeeping
  r.read("num_train_timesteps", c.num_train_timesteps);
  r.read("beta_start", c.beta_start);
  r.read("beta_end", c.beta_end);
  read_enum_into(r, kBetaSchedules, "beta_schedule", source, c.beta_schedule);
  r.read("trained_betas", c.trained_betas);
  r.read("rescale_betas_zero_snr", c.rescale_betas_zero_snr);
  read_enum_into(r, kPredictionTypes, "prediction_type", source, c.prediction_type);
  read_enum_into(r, kSpacings, "timestep_spacing", source, c.timestep_spacing);
  r.read("steps_offset", c.steps_offset);
  read_optional(r, "set_alpha_to_one", c.set_alpha_to_one);
  read_optional(r, "clip_sample", c.clip_sample);
  r.read("clip_sample_range", c.clip_sample_range);
  read_optional(r, "skip_prk_steps", c.skip_prk_steps);
  r.read("use_karras_sigmas", c.use_karras_sigmas);
  read_optional(r, "sigma_min", c.sigma_min);
  read_optional(r, "sigma_max", c.sigma_max);
  r.read("solver_order", c.solver_order);
  read_enum_into(r, kAlgorithms, "algorithm_type", source, c.algorithm_type);
  read_enum_into(r, kSolverTypes, "solver_type", source, c.solver_type);
  r.read("lower_order_final", c.lower_order_final);
  r.read("euler_at_final", c.euler_at_final);
  read_enum_into(r, kFinalSigmas, "final_sigmas_type", source, c.final_sigmas_type);
  r.read("lambda_min_clipped", c.lambda_min_clipped);
  read_enum_into(r, kVarianceTypes, "variance_type", source, c.variance_type);
  // Features we do not implement: fine while off.
  r.require_value("thresholding", false);
  r.require_value("use_lu_lambdas", false);
  r.require_value("interpolation_type", "linear");
  r.require_value("timestep_type", "discrete");
  // Only used by thresholding (off).
  r.ignore("dynamic_thresholding_ratio");
  r.ignore("sample_max_value");
  r.warn_unknown();
  c = c.with_class_defaults(c.class_name);
  c.validate(source);
  return c;
}

SchedulerConfig SchedulerConfig::from_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw input_error(path, "cannot read the scheduler config", "check the path and permissions");
  std::stringstream text;
  text << in.rdbuf();
  return from_json(parse_python_json(text.str(), path), path);
}

nlohmann::json SchedulerConfig::to_json() const {
  nlohmann::json j = {
      {"_diffusers_version", "0.25.1"},
      {"num_train_timesteps", num_train_timesteps},
      {"beta_start", beta_start},
      {"beta_end", beta_end},
      {"beta_schedule", to_string(beta_schedule)},
      {"trained_betas", trained_betas.empty() ? nlohmann::json(nullptr) : nlohmann::json(trained_betas)},
      {"rescale_betas_zero_snr", rescale_betas_zero_snr},
      {"prediction_type", to_string(prediction_type)},
      {"steps_offset", steps_offset},
      {"clip_sample_range", clip_sample_range},
      {"use_karras_sigmas", use_karras_sigmas},
      {"solver_order", solver_order},
      {"algorithm_type", to_string(algorithm_type)},
      {"solver_type", to_string(solver_type)},
      {"lower_order_final", lower_order_final},
      {"euler_at_final", euler_at_final},
      {"final_sigmas_type", to_string(final_sigmas_type)},
  };
  if (!class_name.empty()) j["_class_name"] = class_name;
  if (timestep_spacing) j["timestep_spacing"] = to_string(*timestep_spacing);
  if (set_alpha_to_one) j["set_alpha_to_one"] = *set_alpha_to_one;
  if (clip_sample) j["clip_sample"] = *clip_sample;
  if (skip_prk_steps) j["skip_prk_steps"] = *skip_prk_steps;
  if (sigma_min) j["sigma_min"] = *sigma_min;
  if (sigma_max) j["sigma_max"] = *sigma_max;
  if (std::isfinite(lambda_min_clipped)) j["lambda_min_clipped"] = lambda_min_clipped;
  if (variance_type) j["variance_type"] = to_string(*variance_type);
  return j;
}

void SchedulerConfig::validate(const std::string& source) const {
  auto fail = [&](const std::string& what) { throw model_error(source, what); };
  if (num_train_timesteps < 2) fail("num_train_timesteps must be >= 2");
  if (!trained_betas.empty()) {
    if (static_cast<int>(trained_betas.size()) != num_train_timesteps)
      fail("trained_betas has " + std::to_string(trained_betas.size()) + " values, num_train_timesteps is " +
           std::to_string(num_train_timesteps));
    for (double b : trained_betas)
      if (!(b > 0.0 && b < 1.0)) fail("trained_betas must lie in (0, 1)");
  } else if (!(beta_start >= 0.0 && beta_start <= beta_end && beta_end < 1.0)) {
    fail("beta_start and beta_end must satisfy 0 <= beta_start <= beta_end < 1");
  }
  if (steps_offset < 0 || steps_offset >= num_train_timesteps)
    fail("steps_offset must lie in [0, num_train_timesteps)");
  if (!(clip_sample_range > 0.0)) fail("clip_sample_range must be > 0");
  if (solver_order < 1 || solver_order > 3) fail("solver_order must be 1, 2 or 3");
  if (sigma_min && !(*sigma_min > 0.0)) fail("sigma_min must be > 0");
  if (sigma_max && !(*sigma_max > 0.0)) fail("sigma_max must be > 0");
  if (sigma_min && sigma_max && !(*sigma_min < *sigma_max)) fail("sigma_min must be < sigma_max");
  if (std::isnan(lambda_min_clipped)) fail("lambda_min_clipped is NaN");
}

}  // namespace dreambooth::schedulers
