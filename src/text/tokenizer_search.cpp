#include "dreambooth/text/tokenizer_search.h"

#include <algorithm>
#include <cstdlib>
#include <fstream>
#include <vector>

#include <nlohmann/json.hpp>

#include "dreambooth/core/error.h"
#include "dreambooth/text/tokenizer.h"

namespace dreambooth::text {
namespace fs = std::filesystem;
namespace {

constexpr const char* kEnvTokenizer = "DREAMBOOTH_TOKENIZER";
constexpr const char* kHowTo =
    "pass --tokenizer DIR|FILE.model (a folder with vocab.json + merges.txt, or a SentencePiece model) "
    "or set DREAMBOOTH_TOKENIZER";

// A Hugging Face cache repository and where its tokenizer sits inside a snapshot.
struct CacheRepo {
  const char* folder;   // models--<org>--<name>
  const char* subdir;   // "" for the snapshot root
  bool sets_pad;        // its files do not describe the SD pipeline's padding
};

const std::vector<CacheRepo>& cache_repos(TokenizerFamily family) {
  static const std::vector<CacheRepo> sd1 = {
      {"models--openai--clip-vit-large-patch14", "", true},
      {"models--runwayml--stable-diffusion-v1-5", "tokenizer", false},
      {"models--stable-diffusion-v1-5--stable-diffusion-v1-5", "tokenizer", false},
  };
  static const std::vector<CacheRepo> sd2 = {
      {"models--stabilityai--stable-diffusion-2-1", "tokenizer", false},
      {"models--stabilityai--stable-diffusion-2-1-base", "tokenizer", false},
      {"models--stabilityai--stable-diffusion-2", "tokenizer", false},
      {"models--laion--CLIP-ViT-H-14-laion2B-s32B-b79K", "", true},
  };
  return family == TokenizerFamily::SD1 ? sd1 : sd2;
}

std::string env(const char* name) {
  const char* value = std::getenv(name);
  return value == nullptr ? std::string() : std::string(value);
}

std::vector<fs::path> hub_dirs() {
  std::vector<fs::path> dirs;
  for (const char* name : {"HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"})
    if (!env(name).empty()) dirs.emplace_back(env(name));
  if (!env("HF_HOME").empty()) dirs.push_back(fs::path(env("HF_HOME")) / "hub");
  if (!env("XDG_CACHE_HOME").empty()) dirs.push_back(fs::path(env("XDG_CACHE_HOME")) / "huggingface" / "hub");
  if (!env("HOME").empty()) dirs.push_back(fs::path(env("HOME")) / ".cache" / "huggingface" / "hub");
  std::vector<fs::path> unique;
  for (const fs::path& d : dirs)
    if (std::find(unique.begin(), unique.end(), d) == unique.end()) unique.push_back(d);
  return unique;
}

// Snapshots of a cached repository: the one refs/main points at first, then the others by name.
std::vector<fs::path> snapshots(const fs::path& repo) {
  std::vector<fs::path> result;
  std::error_code ec;
  const fs::path dir = repo / "snapshots";
  if (!fs::is_directory(dir, ec)) return result;
  std::ifstream ref(repo / "refs" / "main");
  std::string main_hash;
  if (ref) std::getline(ref, main_hash);
  std::vector<fs::path> others;
  for (const auto& entry : fs::directory_iterator(dir, ec)) {
    if (!entry.is_directory()) continue;
    if (!main_hash.empty() && entry.path().filename() == main_hash)
      result.push_back(entry.path());
    else
      others.push_back(entry.path());
  }
  std::sort(others.begin(), others.end());
  result.insert(result.end(), others.begin(), others.end());
  return result;
}

bool names_pad_token(const fs::path& dir) {
  for (const char* name : {"special_tokens_map.json", "tokenizer_config.json"}) {
    std::ifstream in(dir / name);
    if (!in) continue;
    const nlohmann::json json = nlohmann::json::parse(in, nullptr, /*allow_exceptions=*/false);
    if (json.is_object() && json.contains("pad_token") && !json["pad_token"].is_null()) return true;
  }
  return false;
}

bool is_clip_folder(const fs::path& path) {
  std::error_code ec;
  return fs::is_directory(path, ec) && fs::exists(path / "vocab.json") && fs::exists(path / "merges.txt");
}

FoundTokenizer found(const fs::path& path, std::string source, TokenizerFamily family, bool force_pad) {
  FoundTokenizer result{path, std::move(source), std::nullopt};
  if (is_clip_folder(path) && (force_pad || !names_pad_token(path))) result.pad_id = default_clip_pad_id(family);
  return result;
}

// A user-named path must be usable: a silent fallback would hide the typo.
void require_tokenizer(const fs::path& path, const std::string& what) {
  std::error_code ec;
  if (!fs::exists(path, ec)) throw input_error(path.string(), what + " does not exist", kHowTo);
  if (!looks_like_tokenizer(path))
    throw input_error(path.string(), what + " is not a tokenizer (no vocab.json + merges.txt, no .model file)", kHowTo);
}

}  // namespace

TokenizerFamily parse_tokenizer_family(const std::string& name) {
  if (name == "sd1") return TokenizerFamily::SD1;
  if (name == "sd2") return TokenizerFamily::SD2;
  throw usage_error("unknown model family '" + name + "'", "expected sd1 or sd2");
}

int64_t default_clip_pad_id(TokenizerFamily family) { return family == TokenizerFamily::SD1 ? 49407 : 0; }

FoundTokenizer find_tokenizer(const TokenizerQuery& query) {
  if (query.explicit_path) {
    require_tokenizer(*query.explicit_path, "--tokenizer");
    return found(*query.explicit_path, "--tokenizer", query.family, false);
  }
  if (const auto own = find_model_own_tokenizer(query.model_path, query.model_is_diffusers_folder))
    return found(*own, query.model_is_diffusers_folder ? "model folder" : "beside the model", query.family, false);
  if (const std::string from_env = env(kEnvTokenizer); !from_env.empty()) {
    require_tokenizer(from_env, std::string("$") + kEnvTokenizer);
    return found(from_env, std::string("$") + kEnvTokenizer, query.family, false);
  }
  for (const fs::path& hub : hub_dirs()) {
    for (const CacheRepo& repo : cache_repos(query.family)) {
      for (const fs::path& snapshot : snapshots(hub / repo.folder)) {
        const fs::path dir = *repo.subdir ? snapshot / repo.subdir : snapshot;
        if (is_clip_folder(dir))
          return found(dir, std::string("Hugging Face cache (") + repo.folder + ")", query.family, repo.sets_pad);
      }
    }
  }
  const std::string family = query.family == TokenizerFamily::SD1 ? "SD1" : "SD2";
  throw input_error(query.model_path.string(), "no tokenizer found for this " + family + " model (looked beside the "
                                               "model, in $DREAMBOOTH_TOKENIZER and in the Hugging Face cache)", kHowTo);
}

std::optional<fs::path> find_model_own_tokenizer(const fs::path& model_path, bool model_is_diffusers_folder) {
  if (model_path.empty()) return std::nullopt;
  if (model_is_diffusers_folder) {
    if (looks_like_tokenizer(model_path / "tokenizer")) return model_path / "tokenizer";
    return std::nullopt;
  }
  const fs::path parent = model_path.parent_path().empty() ? fs::path(".") : model_path.parent_path();
  const fs::path stem_dir = parent / (model_path.stem().string() + ".tokenizer");
  if (looks_like_tokenizer(stem_dir)) return stem_dir;
  if (looks_like_tokenizer(parent / "tokenizer")) return parent / "tokenizer";
  return std::nullopt;
}

}  // namespace dreambooth::text
