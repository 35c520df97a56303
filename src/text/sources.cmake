list(APPEND DREAMBOOTH_SOURCES
  src/text/caption_corpus.cpp
  src/text/clip_tokenizer.cpp
  src/text/sentencepiece_tokenizer.cpp
  src/text/text_fixer.cpp
  src/text/tokenizer.cpp
  src/text/tokenizer_search.cpp
  src/text/unicode.cpp
)
