#include "dreambooth/text/sentencepiece_tokenizer.h"

#include <dlfcn.h>

#include <cstdlib>
#include <fstream>
#include <mutex>

#include "dreambooth/core/error.h"
#include "sentencepiece_plugin_api.h"

namespace dreambooth::text {
namespace fs = std::filesystem;

struct SpmPlugin {
  fs::path path;
  dreambooth_spm_last_error_fn last_error = nullptr;
  dreambooth_spm_load_fn load = nullptr;
  dreambooth_spm_free_fn free = nullptr;
  dreambooth_spm_encode_fn encode = nullptr;
  dreambooth_spm_decode_fn decode = nullptr;
  dreambooth_spm_vocab_size_fn vocab_size = nullptr;
  dreambooth_spm_piece_to_id_fn piece_to_id = nullptr;
  dreambooth_spm_id_to_piece_fn id_to_piece = nullptr;
  dreambooth_spm_special_ids_fn special_ids = nullptr;
  dreambooth_spm_train_fn train = nullptr;
};

namespace {

constexpr const char* kPluginFile = "libdreambooth_spm.so";
constexpr const char* kPluginEnv = "DREAMBOOTH_SPM_PLUGIN";

std::vector<fs::path> plugin_candidates() {
  std::vector<fs::path> candidates;
  std::error_code ec;
  const fs::path exe = fs::read_symlink("/proc/self/exe", ec);
  if (!ec) {
    const fs::path dir = exe.parent_path();
    candidates.push_back(dir / kPluginFile);
    candidates.push_back(dir.parent_path() / kPluginFile);
    candidates.push_back(dir.parent_path() / "lib" / "dreambooth" / kPluginFile);
  }
  return candidates;
}

template <typename Fn>
void bind(void* handle, const fs::path& path, const char* name, Fn& fn) {
  fn = reinterpret_cast<Fn>(dlsym(handle, name));
  if (fn == nullptr)
    throw Error(ErrorKind::Runtime, format_error(path.string(), std::string("not a dreambooth SentencePiece plugin (no ") +
                                                                    name + ")", "rebuild the dreambooth_spm target"));
}

SpmPlugin open_plugin() {
  fs::path path;
  if (const char* env = std::getenv(kPluginEnv); env != nullptr && *env != '\0') {
    path = fs::is_directory(env) ? fs::path(env) / kPluginFile : fs::path(env);
    if (!fs::exists(path))
      throw Error(ErrorKind::Runtime, format_error(path.string(), std::string("SentencePiece plugin not found (from $") +
                                                                      kPluginEnv + ")"));
  } else {
    std::string looked;
    for (const fs::path& candidate : plugin_candidates()) {
      if (fs::exists(candidate)) {
        path = candidate;
        break;
      }
      looked += (looked.empty() ? "" : ", ") + candidate.string();
    }
    if (path.empty())
      throw Error(ErrorKind::Runtime, format_error(kPluginFile, "SentencePiece plugin not found (looked in " + looked + ")",
                                                   std::string("build the dreambooth_spm target or set ") + kPluginEnv +
                                                       "=/path/to/" + kPluginFile));
  }
  // RTLD_DEEPBIND keeps the plugin's protobuf symbols away from LibTorch's; AddressSanitizer cannot
  // intercept deep-bound libraries, so sanitized builds go without it.
  int flags = RTLD_NOW | RTLD_LOCAL;
#if !defined(__SANITIZE_ADDRESS__)
  flags |= RTLD_DEEPBIND;
#endif
  void* handle = dlopen(path.c_str(), flags);
  if (handle == nullptr) {
    const char* why = dlerror();
    throw Error(ErrorKind::Runtime, format_error(path.string(), std::string("cannot load SentencePiece plugin: ") +
                                                                    (why != nullptr ? why : "unknown dlopen error")));
  }
  SpmPlugin plugin;
  plugin.path = path;
  dreambooth_spm_api_version_fn version = nullptr;
  bind(handle, path, "dreambooth_spm_api_version", version);
  if (version() != DREAMBOOTH_SPM_API_VERSION)
    throw Error(ErrorKind::Runtime,
                format_error(path.string(), "SentencePiece plugin API version " + std::to_string(version()) +
                                                ", expected " + std::to_string(DREAMBOOTH_SPM_API_VERSION),
                             "rebuild the dreambooth_spm target together with the program"));
  bind(handle, path, "dreambooth_spm_last_error", plugin.last_error);
  bind(handle, path, "dreambooth_spm_load", plugin.load);
  bind(handle, path, "dreambooth_spm_free", plugin.free);
  bind(handle, path, "dreambooth_spm_encode", plugin.encode);
  bind(handle, path, "dreambooth_spm_decode", plugin.decode);
  bind(handle, path, "dreambooth_spm_vocab_size", plugin.vocab_size);
  bind(handle, path, "dreambooth_spm_piece_to_id", plugin.piece_to_id);
  bind(handle, path, "dreambooth_spm_id_to_piece", plugin.id_to_piece);
  bind(handle, path, "dreambooth_spm_special_ids", plugin.special_ids);
  bind(handle, path, "dreambooth_spm_train", plugin.train);
  return plugin;  // the library stays loaded for the life of the process
}

const SpmPlugin& plugin() {
  static std::mutex mutex;
  static std::unique_ptr<SpmPlugin> loaded;
  std::lock_guard<std::mutex> lock(mutex);
  if (!loaded) loaded = std::make_unique<SpmPlugin>(open_plugin());
  return *loaded;
}

dreambooth_spm_processor* processor(void* handle) { return static_cast<dreambooth_spm_processor*>(handle); }

// Calls `fill(buffer, capacity, &size)` until the buffer is large enough.
template <typename T, typename Fill>
int fill_buffer(std::vector<T>& buffer, size_t& size, Fill fill) {
  int status = fill(buffer.data(), buffer.size(), &size);
  if (status == DREAMBOOTH_SPM_TOO_SMALL) {
    buffer.resize(size + 1);
    status = fill(buffer.data(), buffer.size(), &size);
  }
  return status;
}

}  // namespace

SentencePieceTokenizer::SentencePieceTokenizer(const SpmPlugin& plugin, void* handle, fs::path path)
    : plugin_(plugin), handle_(handle), path_(std::move(path)) {}

SentencePieceTokenizer::~SentencePieceTokenizer() { plugin_.free(processor(handle_)); }

std::unique_ptr<SentencePieceTokenizer> SentencePieceTokenizer::load(const fs::path& model_file,
                                                                     std::optional<int64_t> pad_id) {
  if (!fs::is_regular_file(model_file))
    throw input_error(model_file.string(), "SentencePiece model file not found");
  const SpmPlugin& spm = plugin();
  void* handle = spm.load(model_file.c_str());
  if (handle == nullptr)
    throw input_error(model_file.string(), std::string("cannot load SentencePiece model: ") + spm.last_error());
  std::unique_ptr<SentencePieceTokenizer> tokenizer(new SentencePieceTokenizer(spm, handle, model_file));
  int32_t bos = -1, eos = -1, pad = -1, unk = -1;
  spm.special_ids(processor(handle), &bos, &eos, &pad, &unk);
  tokenizer->vocab_size_ = spm.vocab_size(processor(handle));
  if (bos < 0 || eos < 0)
    throw input_error(model_file.string(), "the model defines no BOS/EOS pieces (bos_id/eos_id = -1)",
                      "Stable Diffusion prompts need both; train with bos_id and eos_id set");
  tokenizer->bos_id_ = bos;
  tokenizer->eos_id_ = eos;
  tokenizer->unk_id_ = unk;
  tokenizer->pad_id_ = pad_id ? *pad_id : (pad >= 0 ? pad : eos);
  if (tokenizer->pad_id_ < 0 || tokenizer->pad_id_ >= tokenizer->vocab_size_)
    throw usage_error("pad id " + std::to_string(tokenizer->pad_id_) + " is outside the vocabulary of " +
                      model_file.string() + " (" + std::to_string(tokenizer->vocab_size_) + " pieces)");
  return tokenizer;
}

std::vector<int64_t> SentencePieceTokenizer::encode(const std::string& text) const {
  std::vector<int32_t> ids(text.size() + 16);
  size_t count = 0;
  const int status = fill_buffer(ids, count, [&](int32_t* out, size_t capacity, size_t* size) {
    return plugin_.encode(processor(handle_), text.data(), text.size(), out, capacity, size);
  });
  if (status != DREAMBOOTH_SPM_OK) throw input_error(path_.string(), std::string("encode failed: ") + plugin_.last_error());
  return std::vector<int64_t>(ids.begin(), ids.begin() + static_cast<std::ptrdiff_t>(count));
}

std::string SentencePieceTokenizer::decode(const std::vector<int64_t>& ids) const {
  std::vector<int32_t> narrow;
  narrow.reserve(ids.size());
  for (int64_t id : ids) {
    if (id < 0 || id >= vocab_size_) id_to_token(id);  // throws the range error
    narrow.push_back(static_cast<int32_t>(id));
  }
  std::vector<char> text(ids.size() * 8 + 16);
  size_t length = 0;
  const int status = fill_buffer(text, length, [&](char* out, size_t capacity, size_t* size) {
    return plugin_.decode(processor(handle_), narrow.data(), narrow.size(), out, capacity, size);
  });
  if (status != DREAMBOOTH_SPM_OK) throw input_error(path_.string(), std::string("decode failed: ") + plugin_.last_error());
  return std::string(text.data(), length);
}

std::optional<int64_t> SentencePieceTokenizer::token_to_id(const std::string& token) const {
  const int32_t id = plugin_.piece_to_id(processor(handle_), token.c_str());
  if (id < 0) return std::nullopt;
  return id;
}

std::string SentencePieceTokenizer::id_to_token(int64_t id) const {
  if (id < 0 || id >= vocab_size_)
    throw input_error(path_.string(), "token id " + std::to_string(id) + " is outside the vocabulary",
                      "ids run from 0 to " + std::to_string(vocab_size_ - 1));
  std::vector<char> piece(64);
  size_t length = 0;
  const int status = fill_buffer(piece, length, [&](char* out, size_t capacity, size_t* size) {
    return plugin_.id_to_piece(processor(handle_), static_cast<int32_t>(id), out, capacity, size);
  });
  if (status != DREAMBOOTH_SPM_OK) throw input_error(path_.string(), plugin_.last_error());
  return std::string(piece.data(), length);
}

fs::path train_sentencepiece(const std::vector<std::string>& corpus_lines, const fs::path& model_path, int vocab_size,
                             const SentencePieceTrainOptions& options) {
  if (model_path.extension() != ".model")
    throw usage_error("SentencePiece model path " + model_path.string() + " must end in .model");
  if (vocab_size < 8) throw usage_error("SentencePiece vocab_size must be at least 8, got " + std::to_string(vocab_size));
  if (corpus_lines.empty()) throw usage_error("cannot train a SentencePiece model on an empty corpus");
  const SpmPlugin& spm = plugin();

  std::error_code ec;
  if (!model_path.parent_path().empty()) fs::create_directories(model_path.parent_path(), ec);
  fs::path prefix = model_path;
  prefix.replace_extension();
  const fs::path corpus = fs::path(prefix.string() + ".corpus.txt");
  {
    std::ofstream out(corpus, std::ios::binary | std::ios::trunc);
    for (const std::string& line : corpus_lines) out << line << '\n';
    if (!out.flush()) throw output_error(corpus.string(), "cannot write the training corpus");
  }
  std::string symbols;
  for (const std::string& s : options.user_defined_symbols) symbols += (symbols.empty() ? "" : ",") + s;

  dreambooth_spm_train_options train{};
  const std::string corpus_string = corpus.string(), prefix_string = prefix.string();
  train.input_path = corpus_string.c_str();
  train.model_prefix = prefix_string.c_str();
  train.vocab_size = vocab_size;
  train.model_type = options.model_type.c_str();
  train.character_coverage = static_cast<float>(options.character_coverage);
  train.pad_id = static_cast<int32_t>(kSpmPadId);
  train.unk_id = static_cast<int32_t>(kSpmUnkId);
  train.bos_id = static_cast<int32_t>(kSpmBosId);
  train.eos_id = static_cast<int32_t>(kSpmEosId);
  train.user_defined_symbols = symbols.c_str();
  train.normalization = options.normalization.c_str();
  train.seed = options.seed;
  const int status = spm.train(&train);
  fs::remove(corpus, ec);
  if (status != DREAMBOOTH_SPM_OK)
    throw output_error(model_path.string(), std::string("SentencePiece training failed: ") + spm.last_error());
  return model_path;
}

fs::path sentencepiece_plugin_path() { return plugin().path; }

}  // namespace dreambooth::text
