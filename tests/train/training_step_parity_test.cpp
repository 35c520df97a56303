// The DreamBooth step against diffusers' train_dreambooth.py (golden dreambooth_step / dreambooth_step_te):
// the step's tensors, the losses, the raw gradients, the clipping norm and the weights after one AdamW step.
#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/io/safetensors.h"
#include "dreambooth/schedulers/noise_schedule.h"
#include "dreambooth/train/optimizer.h"
#include "dreambooth/train/trainable_parameters.h"
#include "dreambooth/train/training_step.h"
#include "support/golden.h"
#include "support/tensor_close.h"
#include "support/test_device.h"
#include "train/train_test_util.h"

namespace fs = std::filesystem;
using namespace dreambooth;
using dreambooth::testing::golden_atol;

namespace {

// Golden tensors are float32, some stored as [1] scalars.
at::Tensor golden(const io::SafetensorsReader& reader, const std::string& name) {
  return reader.load(name, reader.at(name).scalar_type == c10::kLong ? c10::kLong : c10::kFloat,
                     dreambooth::testing::test_device());
}

void run_golden_step(const std::string& case_name, bool train_text_encoder) {
  const nlohmann::json& params = dreambooth::testing::golden_case(case_name).at("params");
  io::SafetensorsReader g(dreambooth::testing::golden_path("tiny-sd1/golden/" + case_name + ".safetensors"));

  checkpoint::LoadOptions load;
  load.path = dreambooth::testing::golden_path("tiny-sd1");
  load.device = dreambooth::testing::test_device();
  checkpoint::StableDiffusion model = checkpoint::load_stable_diffusion(load);

  // The trainable-parameter seam decides what trains; the step only sees requires_grad.
  train::TrainOptions options;
  options.train_text_encoder = train_text_encoder;
  options.lr = params.at("lr").get<double>();
  options.adam_weight_decay = params.at("weight_decay").get<double>();
  const train::TrainableParameters trainable = train::select_trainable_parameters(options, model);
  train::set_training_mode(model, trainable, true);
  ASSERT_EQ(trainable.text_encoder_trains, train_text_encoder);

  const schedulers::NoiseSchedule schedule = schedulers::make_noise_schedule(
      schedulers::SchedulerConfig::from_json(model.description.scheduler, "tiny-sd1 scheduler"));
  const train::StepModels models = train::step_models_of(model, schedule);
  // [instance, class]
  const auto [batch, noise] = dreambooth::testing::golden_step_inputs(g, dreambooth::testing::test_device());

  // Weights before the step are the model's.
  auto param = [&](const std::string& name) -> at::Tensor {
    const at::Tensor* p = trainable.find(name);
    EXPECT_NE(p, nullptr) << name;
    return p ? *p : at::Tensor();
  };
  for (const char* name : {"conv_in.weight", "time_embedding.linear_1.weight"})
    EXPECT_TENSOR_CLOSE(param(std::string("unet.") + name).detach(), golden(g, std::string("param_before.") + name), 0.0,
                        std::string("param_before.") + name);

  // --- forward and loss
  train::StepRecord record;
  train::LossOptions loss_options;
  loss_options.prior_loss_weight = 1.0;
  const train::StepLosses losses = train::step_loss(models, batch, noise, loss_options, &record);
  const std::vector<std::pair<std::string, at::Tensor>> forward = {
      {"intermediate.model_input", record.model_input},
      {"intermediate.noisy_model_input", record.noisy_model_input},
      {"intermediate.encoder_hidden_states", record.encoder_hidden_states},
      {"intermediate.model_pred", record.model_pred},
      {"intermediate.target", record.target},
      {"output.loss", losses.loss.detach().reshape({1})},
      {"output.instance_loss", losses.instance_loss.reshape({1})},
      {"output.prior_loss", losses.prior_loss.reshape({1})},
  };
  for (const auto& [name, actual] : forward)
    EXPECT_TENSOR_CLOSE(actual.detach(), golden(g, name), golden_atol(case_name, name), case_name + " " + name);

  // --- backward: raw gradients, the UNet's norm and the clipped set's norm
  losses.loss.backward();
  std::vector<std::pair<std::string, std::string>> graded = {
      {"conv_in.weight", "unet.conv_in.weight"},
      {"down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight",
       "unet.down_blocks.0.attentions.0.transformer_blocks.0.attn1.to_q.weight"},
      {"time_embedding.linear_1.weight", "unet.time_embedding.linear_1.weight"},
  };
  if (train_text_encoder)
    graded.push_back({"text_model.encoder.layers.0.self_attn.q_proj.weight",
                      "text_encoder.text_model.encoder.layers.0.self_attn.q_proj.weight"});
  for (const auto& [golden_name, name] : graded)
    EXPECT_TENSOR_CLOSE(param(name).grad(), golden(g, "grad." + golden_name),
                        golden_atol(case_name, "grad." + golden_name), case_name + " grad." + golden_name);
  const std::vector<int64_t> rows = {params.at("sks_token_id").get<int64_t>(), params.at("dog_token_id").get<int64_t>(), 100};
  const std::string embedding_name = "text_model.embeddings.token_embedding.weight";
  const std::string rows_name = embedding_name + ".rows_sks_dog_100";
  const at::Tensor row_index = torch::tensor(rows, torch::kLong).to(dreambooth::testing::test_device());
  if (train_text_encoder) {
    EXPECT_TENSOR_CLOSE(param("text_encoder." + embedding_name).grad().index_select(0, row_index),
                        golden(g, "grad." + rows_name), golden_atol(case_name, "grad." + rows_name),
                        case_name + " grad." + rows_name);
  }

  std::vector<at::Tensor> unet_parameters;
  for (const auto& p : trainable.parameters)
    if (p.name.rfind(train::kUnetPrefix, 0) == 0) unet_parameters.push_back(p.tensor);
  EXPECT_TENSOR_CLOSE(train::total_grad_norm(unet_parameters).reshape({1}), golden(g, "output.unet_grad_norm"),
                      golden_atol(case_name, "output.unet_grad_norm"), case_name + " unet_grad_norm");
  const double clip_norm = train::clip_grad_norm(trainable.tensors(), params.at("max_grad_norm").get<double>());
  EXPECT_TENSOR_CLOSE(torch::tensor({static_cast<float>(clip_norm)}), golden(g, "output.clip_total_norm"),
                      golden_atol(case_name, "output.clip_total_norm"), case_name + " clip_total_norm");

  // --- one AdamW step
  auto optimizer = train::make_adamw(trainable, options);
  optimizer->step();
  for (const auto& [golden_name, name] : graded)
    EXPECT_TENSOR_CLOSE(param(name).detach(), golden(g, "param_after." + golden_name),
                        golden_atol(case_name, "param_after." + golden_name), case_name + " param_after." + golden_name);
  if (train_text_encoder) {
    EXPECT_TENSOR_CLOSE(param("text_encoder." + embedding_name).detach().index_select(0, row_index),
                        golden(g, "param_after." + rows_name), golden_atol(case_name, "param_after." + rows_name),
                        case_name + " param_after." + rows_name);
  }
}

}  // namespace

TEST(DreamboothStepParity, UnetOnlyMatchesReference) {
  REQUIRE_GOLDEN();
  run_golden_step("dreambooth_step", false);
}

TEST(DreamboothStepParity, WithTextEncoderMatchesReference) {
  REQUIRE_GOLDEN();
  run_golden_step("dreambooth_step_te", true);
}
