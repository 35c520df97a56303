#include "dreambooth/text/tokenizer.h"

#include <algorithm>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/text/clip_tokenizer.h"
#include "dreambooth/text/sentencepiece_tokenizer.h"

namespace dreambooth::text {
namespace fs = std::filesystem;
namespace {

constexpr const char* kHint = "give a folder with vocab.json + merges.txt (CLIP BPE) or a SentencePiece .model file";

enum class Backend { ClipBpe, SentencePiece };

struct Resolved {
  Backend backend;
  fs::path path;  // the CLIP folder or the .model file
};

// Which backend `path` is for, or an explanation of why it is neither.
std::optional<Resolved> resolve(const fs::path& path, std::string& why) {
  std::error_code ec;
  if (fs::is_regular_file(path, ec)) {
    if (path.extension() == ".model") return Resolved{Backend::SentencePiece, path};
    const std::string name = path.filename().string();
    if (name == "vocab.json" || name == "merges.txt") return resolve(path.parent_path(), why);
    why = "not a tokenizer file";
    return std::nullopt;
  }
  if (!fs::is_directory(path, ec)) {
    why = "no such file or directory";
    return std::nullopt;
  }
  if (fs::exists(path / "vocab.json") && fs::exists(path / "merges.txt")) return Resolved{Backend::ClipBpe, path};
  for (const char* preferred : {"tokenizer.model", "spiece.model"})
    if (fs::is_regular_file(path / preferred)) return Resolved{Backend::SentencePiece, path / preferred};
  std::vector<fs::path> models;
  for (const auto& entry : fs::directory_iterator(path, ec))
    if (entry.is_regular_file() && entry.path().extension() == ".model") models.push_back(entry.path());
  if (models.size() == 1) return Resolved{Backend::SentencePiece, models.front()};
  if (models.empty()) {
    why = fs::exists(path / "vocab.json") ? "has vocab.json but no merges.txt"
          : fs::exists(path / "merges.txt") ? "has merges.txt but no vocab.json"
                                            : "holds neither vocab.json + merges.txt nor a .model file";
  } else {
    std::sort(models.begin(), models.end());
    why = "holds " + std::to_string(models.size()) + " .model files (" + models[0].filename().string() + ", " +
          models[1].filename().string() + (models.size() > 2 ? ", ..." : "") + "); pass the one to use";
  }
  return std::nullopt;
}

}  // namespace

std::vector<int64_t> Tokenizer::encode_padded(const std::string& text, int max_length) const {
  if (max_length < 2) throw usage_error("max_length must be at least 2 (BOS and EOS), got " + std::to_string(max_length));
  const std::vector<int64_t> ids = encode(text);
  const size_t keep = std::min(ids.size(), static_cast<size_t>(max_length - 2));
  std::vector<int64_t> out;
  out.reserve(max_length);
  out.push_back(bos_id());
  out.insert(out.end(), ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(keep));
  out.push_back(eos_id());
  out.resize(static_cast<size_t>(max_length), pad_id());
  return out;
}

at::Tensor Tokenizer::encode_batch(const std::vector<std::string>& texts, int max_length) const {
  at::Tensor batch = torch::empty({static_cast<int64_t>(texts.size()), max_length}, torch::kLong);
  auto rows = batch.accessor<int64_t, 2>();
  for (size_t i = 0; i < texts.size(); ++i) {
    const std::vector<int64_t> ids = encode_padded(texts[i], max_length);
    for (int j = 0; j < max_length; ++j) rows[static_cast<int64_t>(i)][j] = ids[j];
  }
  return batch;
}

bool looks_like_tokenizer(const fs::path& path) {
  std::string why;
  return resolve(path, why).has_value();
}

std::unique_ptr<Tokenizer> load_tokenizer(const fs::path& path, std::optional<int64_t> pad_id) {
  std::string why;
  const std::optional<Resolved> resolved = resolve(path, why);
  if (!resolved) throw input_error(path.string(), "not a tokenizer: " + why, kHint);
  if (resolved->backend == Backend::ClipBpe) return ClipTokenizer::load(resolved->path, pad_id);
  return SentencePieceTokenizer::load(resolved->path, pad_id);
}

}  // namespace dreambooth::text
