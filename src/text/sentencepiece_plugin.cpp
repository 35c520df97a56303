// libdreambooth_spm.so: SentencePiece behind the C interface of sentencepiece_plugin_api.h. This is
// the only code that links libsentencepiece (see the comment in the top-level CMakeLists.txt).
#include "sentencepiece_plugin_api.h"

#include <cstring>
#include <exception>
#include <fstream>
#include <string>
#include <unordered_map>
#include <vector>

#include <sentencepiece_processor.h>
#include <sentencepiece_trainer.h>

struct dreambooth_spm_processor {
  sentencepiece::SentencePieceProcessor processor;
};

namespace {

thread_local std::string last_error;

int fail(const std::string& message) {
  last_error = message;
  for (char& c : last_error)
    if (c == '\n' || c == '\r') c = ' ';
  return DREAMBOOTH_SPM_ERROR;
}

// Copies `bytes` out, or reports the size needed.
int copy_out(const std::string& bytes, char* out, size_t capacity, size_t* length) {
  *length = bytes.size();
  if (bytes.size() + 1 > capacity) return DREAMBOOTH_SPM_TOO_SMALL;
  std::memcpy(out, bytes.data(), bytes.size());
  out[bytes.size()] = '\0';
  return DREAMBOOTH_SPM_OK;
}

std::string non_null(const char* s) { return s == nullptr ? std::string() : std::string(s); }

// The corpus, one sentence per line. Fed to the trainer through an iterator rather than as its
// `input` path, so that no file path ends up inside the model (two trainings give identical bytes).
class LineIterator : public sentencepiece::SentenceIterator {
 public:
  explicit LineIterator(const std::string& path) : in_(path, std::ios::binary) { Next(); }
  bool done() const override { return done_; }
  void Next() override {
    done_ = !std::getline(in_, line_);
    if (!done_ && !line_.empty() && line_.back() == '\r') line_.pop_back();
  }
  const std::string& value() const override { return line_; }
  sentencepiece::util::Status status() const override { return sentencepiece::util::Status(); }
  bool is_open() const { return in_.is_open(); }

 private:
  std::ifstream in_;
  std::string line_;
  bool done_ = false;
};

// Writes <prefix>.model (the serialized proto) and <prefix>.vocab ("piece<TAB>score" lines).
int write_model(const std::string& prefix, const std::string& serialized) {
  sentencepiece::SentencePieceProcessor processor;
  const auto status = processor.LoadFromSerializedProto(serialized);
  if (!status.ok()) return fail("trained model does not load: " + status.ToString());
  {
    std::ofstream model(prefix + ".model", std::ios::binary | std::ios::trunc);
    model.write(serialized.data(), static_cast<std::streamsize>(serialized.size()));
    if (!model.flush()) return fail("cannot write " + prefix + ".model");
  }
  std::ofstream vocab(prefix + ".vocab", std::ios::binary | std::ios::trunc);
  for (int id = 0; id < processor.GetPieceSize(); ++id)
    vocab << processor.IdToPiece(id) << '\t' << processor.GetScore(id) << '\n';
  if (!vocab.flush()) return fail("cannot write " + prefix + ".vocab");
  return DREAMBOOTH_SPM_OK;
}

}  // namespace

extern "C" {

int dreambooth_spm_api_version(void) { return DREAMBOOTH_SPM_API_VERSION; }

const char* dreambooth_spm_last_error(void) { return last_error.c_str(); }

dreambooth_spm_processor* dreambooth_spm_load(const char* model_path) {
  try {
    auto* handle = new dreambooth_spm_processor();
    const auto status = handle->processor.Load(non_null(model_path));
    if (!status.ok()) {
      delete handle;
      fail(status.ToString());
      return nullptr;
    }
    return handle;
  } catch (const std::exception& e) {
    fail(e.what());
    return nullptr;
  }
}

void dreambooth_spm_free(dreambooth_spm_processor* processor) { delete processor; }

int dreambooth_spm_encode(const dreambooth_spm_processor* processor, const char* text, size_t text_length,
                          int32_t* ids, size_t capacity, size_t* count) {
  try {
    std::vector<int> pieces;
    const auto status = processor->processor.Encode(std::string(text, text_length), &pieces);
    if (!status.ok()) return fail(status.ToString());
    *count = pieces.size();
    if (pieces.size() > capacity) return DREAMBOOTH_SPM_TOO_SMALL;
    for (size_t i = 0; i < pieces.size(); ++i) ids[i] = pieces[i];
    return DREAMBOOTH_SPM_OK;
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

int dreambooth_spm_decode(const dreambooth_spm_processor* processor, const int32_t* ids, size_t count, char* text,
                          size_t capacity, size_t* length) {
  try {
    const int size = processor->processor.GetPieceSize();
    std::vector<int> pieces(ids, ids + count);
    for (int id : pieces)
      if (id < 0 || id >= size) return fail("id " + std::to_string(id) + " is outside the vocabulary of " +
                                            std::to_string(size) + " pieces");
    std::string decoded;
    const auto status = processor->processor.Decode(pieces, &decoded);
    if (!status.ok()) return fail(status.ToString());
    return copy_out(decoded, text, capacity, length);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

int32_t dreambooth_spm_vocab_size(const dreambooth_spm_processor* processor) {
  return processor->processor.GetPieceSize();
}

int32_t dreambooth_spm_piece_to_id(const dreambooth_spm_processor* processor, const char* piece) {
  const auto& p = processor->processor;
  const int id = p.PieceToId(non_null(piece));
  // PieceToId answers unk_id for unknown pieces; only the unknown piece itself maps there.
  if (p.IsUnknown(id) && p.IdToPiece(id) != non_null(piece)) return -1;
  return id;
}

int dreambooth_spm_id_to_piece(const dreambooth_spm_processor* processor, int32_t id, char* piece, size_t capacity,
                               size_t* length) {
  const auto& p = processor->processor;
  if (id < 0 || id >= p.GetPieceSize())
    return fail("id " + std::to_string(id) + " is outside the vocabulary of " + std::to_string(p.GetPieceSize()) +
                " pieces");
  return copy_out(p.IdToPiece(id), piece, capacity, length);
}

void dreambooth_spm_special_ids(const dreambooth_spm_processor* processor, int32_t* bos, int32_t* eos, int32_t* pad,
                                int32_t* unk) {
  const auto& p = processor->processor;
  *bos = p.bos_id();
  *eos = p.eos_id();
  *pad = p.pad_id();
  *unk = p.unk_id();
}

int dreambooth_spm_train(const dreambooth_spm_train_options* options) {
  try {
    if (options == nullptr || options->input_path == nullptr || options->model_prefix == nullptr)
      return fail("training needs an input file and a model prefix");
    LineIterator corpus(options->input_path);
    if (!corpus.is_open()) return fail(std::string("cannot open corpus file ") + options->input_path);
    const std::string prefix = options->model_prefix;
    // No model_prefix: the trainer hands the model back serialized, and write_model saves it.
    std::unordered_map<std::string, std::string> args = {
        {"vocab_size", std::to_string(options->vocab_size)},
        {"model_type", options->model_type != nullptr ? options->model_type : "unigram"},
        {"character_coverage", std::to_string(options->character_coverage)},
        {"normalization_rule_name", options->normalization != nullptr ? options->normalization : "nmt_nfkc"},
        {"pad_id", std::to_string(options->pad_id)},
        {"unk_id", std::to_string(options->unk_id)},
        {"bos_id", std::to_string(options->bos_id)},
        {"eos_id", std::to_string(options->eos_id)},
        // Determinism: one thread, a fixed seed, and a vocabulary size that is an upper bound.
        {"num_threads", "1"},
        {"hard_vocab_limit", "false"},
        {"minloglevel", "2"},
    };
    const std::string symbols = non_null(options->user_defined_symbols);
    if (!symbols.empty()) args["user_defined_symbols"] = symbols;
    sentencepiece::SetRandomGeneratorSeed(options->seed);
    std::string serialized;
    const auto status = sentencepiece::SentencePieceTrainer::Train(args, &corpus, &serialized);
    if (!status.ok()) return fail(status.ToString());
    return write_model(prefix, serialized);
  } catch (const std::exception& e) {
    return fail(e.what());
  }
}

}  // extern "C"
