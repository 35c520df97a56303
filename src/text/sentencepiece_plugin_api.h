/* The C interface of libdreambooth_spm.so, the plugin that holds SentencePiece.
 *
 * Debian's libsentencepiece exports its bundled protobuf-lite, which clashes with LibTorch's libprotobuf,
 * so the core library never links SentencePiece: it dlopen()s this plugin (RTLD_LOCAL | RTLD_DEEPBIND)
 * and calls these functions through pointers. Plain C types only; no C++ object crosses the boundary.
 *
 * Errors: a function that fails returns NULL or a non-zero status and leaves a one-line message for
 * dreambooth_spm_last_error() (per thread, valid until the next call into the plugin on that thread).
 * Output buffers: a call that needs more room than `capacity` returns DREAMBOOTH_SPM_TOO_SMALL and sets
 * the needed size; call again with a larger buffer.
 */
#ifndef DREAMBOOTH_TEXT_SENTENCEPIECE_PLUGIN_API_H
#define DREAMBOOTH_TEXT_SENTENCEPIECE_PLUGIN_API_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

/* Bumped whenever a signature below changes; the loader refuses any other version. */
#define DREAMBOOTH_SPM_API_VERSION 1

#define DREAMBOOTH_SPM_OK 0
#define DREAMBOOTH_SPM_ERROR 1
#define DREAMBOOTH_SPM_TOO_SMALL 2

typedef struct dreambooth_spm_processor dreambooth_spm_processor;

typedef struct dreambooth_spm_train_options {
  const char* input_path;       /* UTF-8 text, one sentence per line */
  const char* model_prefix;     /* writes <prefix>.model and <prefix>.vocab */
  int32_t vocab_size;
  const char* model_type;       /* "unigram", "bpe", "word" or "char" */
  float character_coverage;     /* 1.0 keeps every character of the corpus */
  int32_t pad_id, unk_id, bos_id, eos_id; /* -1 disables a piece; unk must be >= 0 */
  const char* user_defined_symbols; /* comma-separated pieces kept whole (may be NULL or "") */
  const char* normalization;    /* "nmt_nfkc" (NULL), "nmt_nfkc_cf" (also case-folds), "identity" */
  uint32_t seed;                /* random seed; training also runs on one thread for determinism */
} dreambooth_spm_train_options;

typedef int (*dreambooth_spm_api_version_fn)(void);
typedef const char* (*dreambooth_spm_last_error_fn)(void);
typedef dreambooth_spm_processor* (*dreambooth_spm_load_fn)(const char* model_path);
typedef void (*dreambooth_spm_free_fn)(dreambooth_spm_processor* processor);
typedef int (*dreambooth_spm_encode_fn)(const dreambooth_spm_processor* processor, const char* text, size_t text_length,
                                        int32_t* ids, size_t capacity, size_t* count);
typedef int (*dreambooth_spm_decode_fn)(const dreambooth_spm_processor* processor, const int32_t* ids, size_t count,
                                        char* text, size_t capacity, size_t* length);
typedef int32_t (*dreambooth_spm_vocab_size_fn)(const dreambooth_spm_processor* processor);
/* The id of `piece`, or -1 when the vocabulary does not hold it. */
typedef int32_t (*dreambooth_spm_piece_to_id_fn)(const dreambooth_spm_processor* processor, const char* piece);
typedef int (*dreambooth_spm_id_to_piece_fn)(const dreambooth_spm_processor* processor, int32_t id, char* piece,
                                             size_t capacity, size_t* length);
/* Each id is -1 when the model defines no such piece. */
typedef void (*dreambooth_spm_special_ids_fn)(const dreambooth_spm_processor* processor, int32_t* bos, int32_t* eos,
                                              int32_t* pad, int32_t* unk);
typedef int (*dreambooth_spm_train_fn)(const dreambooth_spm_train_options* options);

int dreambooth_spm_api_version(void);
const char* dreambooth_spm_last_error(void);
dreambooth_spm_processor* dreambooth_spm_load(const char* model_path);
void dreambooth_spm_free(dreambooth_spm_processor* processor);
int dreambooth_spm_encode(const dreambooth_spm_processor* processor, const char* text, size_t text_length, int32_t* ids,
                          size_t capacity, size_t* count);
int dreambooth_spm_decode(const dreambooth_spm_processor* processor, const int32_t* ids, size_t count, char* text,
                          size_t capacity, size_t* length);
int32_t dreambooth_spm_vocab_size(const dreambooth_spm_processor* processor);
int32_t dreambooth_spm_piece_to_id(const dreambooth_spm_processor* processor, const char* piece);
int dreambooth_spm_id_to_piece(const dreambooth_spm_processor* processor, int32_t id, char* piece, size_t capacity,
                               size_t* length);
void dreambooth_spm_special_ids(const dreambooth_spm_processor* processor, int32_t* bos, int32_t* eos, int32_t* pad,
                                int32_t* unk);
int dreambooth_spm_train(const dreambooth_spm_train_options* options);

#ifdef __cplusplus
}
#endif

#endif /* DREAMBOOTH_TEXT_SENTENCEPIECE_PLUGIN_API_H */
