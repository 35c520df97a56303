// AutoencoderKL against diffusers 0.25.1 on the golden tiny-sd1 VAE (case "vae").
#include <fstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/io/safetensors.h"
#include "dreambooth/models/autoencoder_kl.h"
#include "support/golden.h"
#include "support/module_loading.h"
#include "support/tensor_close.h"
#include "support/test_device.h"

namespace dm = dreambooth::models;
using dreambooth::io::SafetensorsReader;
using dreambooth::testing::golden_atol;
using dreambooth::testing::golden_path;

TEST(VaeParity, VaeMatchesReference) {
  REQUIRE_GOLDEN();
  torch::NoGradGuard no_grad;
  std::ifstream in(golden_path("tiny-sd1/vae/config.json"));
  dm::AutoencoderKL vae(dm::VaeConfig::from_json(nlohmann::json::parse(in), "vae/config.json"));
  ASSERT_TRUE(
      dreambooth::testing::load_module_weights(*vae, golden_path("tiny-sd1/vae/diffusion_pytorch_model.safetensors")));
  vae->eval();
  const c10::Device device = dreambooth::testing::test_device();
  vae->to(device);

  SafetensorsReader golden(golden_path("tiny-sd1/golden/vae.safetensors"));
  auto expect = [&](const at::Tensor& actual, const std::string& name) {
    const std::string key = "output." + name;
    EXPECT_TENSOR_CLOSE(actual, golden.load(key, torch::kFloat), golden_atol("vae", key), key);
  };

  const dm::LatentDistribution posterior = vae->encode(golden.load("input.image", torch::kFloat, device));
  expect(posterior.moments, "moments");
  expect(posterior.mean, "posterior_mean");
  expect(posterior.logvar, "posterior_logvar");
  expect(posterior.std, "posterior_std");
  expect(vae->decode(golden.load("input.z", torch::kFloat, device)), "decoded");

  torch::manual_seed(0);
  const at::Tensor eps = torch::randn_like(posterior.mean);
  EXPECT_TENSOR_CLOSE(posterior.sample(eps), posterior.mean + posterior.std * eps, 0.0, "sample");
}
