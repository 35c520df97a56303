// `dreambooth tokens`: rare identifiers to use as --token, and a check of a chosen one.
#include <nlohmann/json.hpp>

#include "command.h"
#include "dreambooth/checkpoint/stable_diffusion.h"
#include "dreambooth/core/error.h"
#include "dreambooth/pipelines/model_loading.h"
#include "dreambooth/text/tokenizer.h"
#include "dreambooth/train/identifier.h"

namespace fs = std::filesystem;

namespace dreambooth::cli {
namespace {

struct TokensOptions {
  std::string model;
  std::string tokenizer;
  int suggest = 0;
  std::vector<std::string> check;
  uint64_t seed = 0;
  bool json = false;
};

std::shared_ptr<text::Tokenizer> open_tokenizer(const TokensOptions& o) {
  if (o.model.empty()) return std::shared_ptr<text::Tokenizer>(text::load_tokenizer(o.tokenizer));
  const fs::path resolved = pipelines::resolve_model_path(o.model);
  const checkpoint::CheckpointInfo info = checkpoint::describe_checkpoint(resolved);
  std::optional<fs::path> explicit_path;
  if (!o.tokenizer.empty()) explicit_path = fs::path(o.tokenizer);
  return pipelines::load_model_tokenizer(resolved, info.description.layout == checkpoint::Layout::Diffusers,
                                         info.description.family, explicit_path);
}

int run_tokens(const TokensOptions& o) {
  if (o.model.empty() && o.tokenizer.empty())
    throw usage_error("tokens needs a vocabulary", "pass --model MODEL or --tokenizer FOLDER");
  if (o.suggest <= 0 && o.check.empty()) throw usage_error("nothing to do", "pass --suggest N and/or --check WORD");
  const auto tokenizer = open_tokenizer(o);
  if (o.suggest > 0) {
    const train::RareBand band = train::rare_band(*tokenizer);
    const auto all = train::rare_identifier_candidates(*tokenizer);
    const auto chosen = train::suggest_identifiers(*tokenizer, static_cast<size_t>(o.suggest), o.seed);
    if (!o.json)
      std::fprintf(stderr, "%zu of %zu rare single-token words (ids %lld..%lld); pass one as --token\n", chosen.size(),
                   all.size(), static_cast<long long>(band.first), static_cast<long long>(band.last));
    for (const auto& c : chosen) {
      if (o.json)
        std::printf("%s\n", nlohmann::json({{"token", c.text}, {"id", c.id}}).dump().c_str());
      else
        std::printf("%s\t%lld\n", c.text.c_str(), static_cast<long long>(c.id));
    }
  }
  for (const std::string& word : o.check) {
    const train::IdentifierCheck check = train::check_identifier(*tokenizer, word);
    if (o.json) {
      std::printf("%s\n", nlohmann::json({{"token", word},
                                          {"ids", check.ids},
                                          {"single_token", check.single_token},
                                          {"rare", check.rare},
                                          {"warning", check.warning}})
                              .dump()
                              .c_str());
    } else {
      std::string ids;
      for (int64_t id : check.ids) ids += (ids.empty() ? "" : " ") + std::to_string(id);
      std::printf("%s\t%s\t%s\n", word.c_str(), ids.c_str(),
                  check.warning.empty() ? "ok: a rare single token" : check.warning.c_str());
    }
  }
  std::fflush(stdout);
  return 0;
}

}  // namespace

CommandRunner register_tokens_command(CLI::App& app, CommonOptions& common) {
  auto o = std::make_shared<TokensOptions>();
  CLI::App* c = app.add_subcommand("tokens", "suggest rare identifiers for --token, or check one");
  c->add_option("--model", o->model, "model whose tokenizer to use");
  c->add_option("--tokenizer", o->tokenizer, "tokenizer folder (vocab.json + merges.txt) or SentencePiece .model");
  c->add_option("--suggest", o->suggest, "list N rare single-token words");
  c->add_option("--check", o->check, "how a word tokenizes, and whether it makes a good identifier (repeatable)");
  c->add_option("--seed", o->seed, "which N are listed")->capture_default_str();
  c->add_flag("--json", o->json, "one JSON object per line");
  add_common_options(*c, common);
  return [o] { return run_tokens(*o); };
}

}  // namespace dreambooth::cli
