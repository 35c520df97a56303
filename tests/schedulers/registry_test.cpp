#include "dreambooth/schedulers/registry.h"

#include <set>

#include <gtest/gtest.h>

#include "dreambooth/core/error.h"

namespace dreambooth::testing {
namespace {

using namespace dreambooth::schedulers;

std::string usage_message(const std::function<void()>& f) {
  try {
    f();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Usage) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no usage error";
  return "";
}

TEST(SamplerRegistry, NamesAndAliasesAreUniqueAndCoverEveryKind) {
  std::set<std::string> names;
  std::set<SamplerKind> kinds;
  for (const auto& s : sampler_table()) {
    EXPECT_TRUE(names.insert(s.name).second) << s.name;
    for (const auto& a : s.aliases) EXPECT_TRUE(names.insert(a).second) << a;
    EXPECT_TRUE(kinds.insert(s.kind).second);
    EXPECT_NE(s.function, nullptr);
    EXPECT_EQ(s.supports_karras, supports_karras(s.kind)) << s.name;
  }
  EXPECT_EQ(kinds.size(), 7u);
}

TEST(SamplerRegistry, FindsNamesAndAliases) {
  EXPECT_EQ(find_sampler("ddim").kind, SamplerKind::Ddim);
  EXPECT_EQ(find_sampler("pndm").kind, SamplerKind::Pndm);
  EXPECT_EQ(find_sampler("euler").kind, SamplerKind::Euler);
  EXPECT_EQ(find_sampler("k_euler").kind, SamplerKind::Euler);
  EXPECT_EQ(find_sampler("euler_a").kind, SamplerKind::EulerAncestral);
  EXPECT_EQ(find_sampler("euler_ancestral").kind, SamplerKind::EulerAncestral);
  EXPECT_EQ(find_sampler("dpmpp_2m").kind, SamplerKind::DpmSolverMultistep);
  EXPECT_EQ(find_sampler("dpm++2m").kind, SamplerKind::DpmSolverMultistep);
  EXPECT_EQ(find_sampler("DPM++2M").kind, SamplerKind::DpmSolverMultistep);
  EXPECT_EQ(find_sampler("ddpm").kind, SamplerKind::Ddpm);
  EXPECT_EQ(find_sampler("lms").kind, SamplerKind::Lms);
}

TEST(SamplerRegistry, UnknownNameListsTheValidOnes) {
  const std::string message = usage_message([] { find_sampler("heun"); });
  EXPECT_NE(message.find("'heun'"), std::string::npos);
  for (const auto& s : sampler_table()) EXPECT_NE(message.find(s.name), std::string::npos) << s.name;
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(SamplerRegistry, MapsDiffusersClassNames) {
  EXPECT_EQ(sampler_for_class("PNDMScheduler").kind, SamplerKind::Pndm);
  EXPECT_EQ(sampler_for_class("DDIMScheduler").kind, SamplerKind::Ddim);
  EXPECT_EQ(sampler_for_class("EulerDiscreteScheduler").kind, SamplerKind::Euler);
  EXPECT_EQ(sampler_for_class("EulerAncestralDiscreteScheduler").kind, SamplerKind::EulerAncestral);
  EXPECT_EQ(sampler_for_class("DPMSolverMultistepScheduler").kind, SamplerKind::DpmSolverMultistep);
  EXPECT_EQ(sampler_for_class("DDPMScheduler").kind, SamplerKind::Ddpm);
  EXPECT_EQ(sampler_for_class("LMSDiscreteScheduler").kind, SamplerKind::Lms);
  try {
    sampler_for_class("UniPCMultistepScheduler", "model/scheduler/scheduler_config.json");
    FAIL();
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Model);
    EXPECT_NE(std::string(e.what()).find("UniPCMultistepScheduler"), std::string::npos);
    EXPECT_NE(std::string(e.what()).find("model/scheduler/scheduler_config.json"), std::string::npos);
  }
}

TEST(SamplerRegistry, KarrasAndEtaOnlyWhereSupported) {
  const ScheduleOptions karras{true};
  EXPECT_NO_THROW(validate_sampler_options(find_sampler("euler"), karras, {}));
  EXPECT_NO_THROW(validate_sampler_options(find_sampler("dpmpp_2m"), karras, {}));
  EXPECT_NO_THROW(validate_sampler_options(find_sampler("lms"), karras, {}));
  const std::string message = usage_message([&] { validate_sampler_options(find_sampler("ddim"), karras, {}); });
  EXPECT_NE(message.find("euler"), std::string::npos) << "names the samplers that take --karras";
  usage_message([&] { validate_sampler_options(find_sampler("euler_a"), karras, {}); });
  usage_message([&] { validate_sampler_options(find_sampler("euler"), {}, SamplerOptions{0.5}); });
  usage_message([&] { validate_sampler_options(find_sampler("ddim"), {}, SamplerOptions{-1.0}); });
  EXPECT_NO_THROW(validate_sampler_options(find_sampler("ddim"), {}, SamplerOptions{1.0}));
  // make_schedule enforces the same rule.
  usage_message([] { make_schedule(SchedulerConfig::single_file_default(false), SamplerKind::Pndm, 10, {true}); });
  usage_message([] { make_schedule(SchedulerConfig::single_file_default(false), SamplerKind::Ddim, 0); });
}

TEST(SamplerRegistry, HelpListsEverySampler) {
  const std::string help = sampler_help();
  for (const auto& s : sampler_table()) {
    EXPECT_NE(help.find(s.name), std::string::npos) << s.name;
    EXPECT_NE(help.find(s.help), std::string::npos) << s.name;
  }
}

}  // namespace
}  // namespace dreambooth::testing
