#include "dreambooth/text/caption_corpus.h"

#include <cstdint>

#include "dreambooth/text/sentencepiece_tokenizer.h"

namespace dreambooth::text {
namespace {

constexpr size_t kRandomCaptions = 3000;
constexpr uint64_t kCorpusSeed = 0x5D17A9u;

// splitmix64: tiny, portable and fully specified (std:: distributions differ between libraries).
class Rng {
 public:
  explicit Rng(uint64_t seed) : state_(seed) {}
  uint64_t next() {
    uint64_t z = (state_ += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
  }
  template <typename T>
  const T& pick(const std::vector<T>& items) { return items[next() % items.size()]; }
  bool chance(int percent) { return static_cast<int>(next() % 100) < percent; }

 private:
  uint64_t state_;
};

const std::vector<std::string> kSubjects = {
    "dog", "cat", "person", "man", "woman", "child", "girl", "boy", "puppy", "kitten", "bird", "horse", "cow",
    "fox", "owl", "rabbit", "bear", "lion", "tiger", "elephant", "car", "bicycle", "boat", "train", "house",
    "castle", "tree", "flower", "mountain", "lake", "river", "city", "street", "robot", "backpack", "teapot",
    "vase", "chair", "clock", "toy", "sneaker", "guitar", "cup", "book", "lamp", "statue", "bridge", "garden"};
const std::vector<std::string> kAdjectives = {
    "red", "blue", "green", "yellow", "black", "white", "brown", "golden", "small", "large", "tiny", "old",
    "young", "happy", "sleepy", "fluffy", "shiny", "wooden", "metal", "ancient", "modern", "colorful", "cute",
    "majestic", "quiet", "wet", "furry", "bright", "dark", "smiling"};
const std::vector<std::string> kActions = {
    "sitting", "standing", "running", "sleeping", "jumping", "walking", "playing", "resting", "looking up",
    "swimming", "flying", "lying down"};
const std::vector<std::string> kPlaces = {
    "on the beach", "in a forest", "in the city", "on a table", "in the snow", "on the grass", "in a garden",
    "on a sofa", "in the mountains", "by the lake", "on the street", "in a kitchen", "in the desert",
    "under a tree", "on a wooden floor", "in front of a house", "in the rain", "on a bridge", "in a field",
    "at the park", "in space", "underwater", "on a rooftop", "in a studio"};
const std::vector<std::string> kStyles = {
    "photograph", "oil painting", "watercolor painting", "digital art", "pencil sketch", "3d render",
    "anime style", "pixel art", "studio photo", "film photo", "charcoal drawing", "illustration",
    "concept art", "portrait", "close-up photo", "wide shot", "cinematic still", "low poly model"};
const std::vector<std::string> kLighting = {
    "golden hour", "soft light", "studio lighting", "at night", "dramatic lighting", "at sunset", "at sunrise",
    "overcast sky", "neon lights", "backlit", "natural light", "foggy morning", "bright daylight",
    "candle light"};
const std::vector<std::string> kQuality = {
    "high quality", "highly detailed", "sharp focus", "4k", "8k", "masterpiece", "best quality", "hdr",
    "bokeh", "35mm", "award winning", "trending on artstation"};
const std::vector<std::string> kClassNouns = {"dog", "cat", "person", "man", "woman", "backpack", "toy",
                                              "teapot", "vase", "sneaker", "car", "robot"};

std::string article(const std::string& word) {
  return std::string("aeiou").find(word[0]) != std::string::npos ? "an" : "a";
}

}  // namespace

const std::vector<std::string>& rare_identifiers() {
  static const std::vector<std::string> ids = {"sks", "zwx", "ohwx", "xjy", "qwv", "bnha", "tok", "phol"};
  return ids;
}

std::vector<std::string> make_caption_corpus() {
  std::vector<std::string> corpus;
  // Every identifier phrase DreamBooth prompts use, with and without a style.
  for (const std::string& id : rare_identifiers()) {
    for (const std::string& noun : kClassNouns) {
      corpus.push_back("a photo of " + id + " " + noun);
      corpus.push_back("a " + id + " " + noun);
      corpus.push_back("a photo of a " + id + " " + noun);
      corpus.push_back("a " + id + " " + noun + " " + kPlaces[(id.size() * 7 + noun.size()) % kPlaces.size()]);
    }
  }
  for (const std::string& noun : kClassNouns) corpus.push_back("a photo of " + article(noun) + " " + noun);

  Rng rng(kCorpusSeed);
  for (size_t i = 0; i < kRandomCaptions; ++i) {
    const std::string& subject = rng.pick(kSubjects);
    std::string caption;
    switch (rng.next() % 5) {
      case 0: {
        const std::string& adjective = rng.pick(kAdjectives);
        caption = article(adjective) + " " + adjective + " " + subject + " " + rng.pick(kPlaces);
        break;
      }
      case 1:
        caption = "a " + rng.pick(kStyles) + " of " + article(subject) + " " + subject + " " + rng.pick(kActions) +
                  " " + rng.pick(kPlaces);
        break;
      case 2:
        caption = "a photo of " + rng.pick(rare_identifiers()) + " " + subject + ", " + rng.pick(kLighting);
        break;
      case 3: {
        const std::string& adjective = rng.pick(kAdjectives);
        caption = article(adjective) + " " + adjective + " " + subject + ", " + rng.pick(kStyles) + ", " +
                  rng.pick(kLighting);
        break;
      }
      default:
        caption = article(subject) + " " + subject + " " + rng.pick(kActions) + ", " + rng.pick(kQuality) + ", " +
                  rng.pick(kQuality);
        break;
    }
    if (rng.chance(20)) caption += ", " + rng.pick(kQuality);
    corpus.push_back(std::move(caption));
  }
  return corpus;
}

std::filesystem::path write_tiny_tokenizer(const std::filesystem::path& dir, int vocab_size) {
  // Each identifier, with its word-start mark, is one piece ("a photo of sks dog" -> ... "▁sks" ...);
  // inside other words ("asks") the letters tokenize as usual.
  SentencePieceTrainOptions options;
  for (const std::string& id : rare_identifiers()) options.user_defined_symbols.push_back("\xE2\x96\x81" + id);
  return train_sentencepiece(make_caption_corpus(), dir / "tokenizer.model", vocab_size, options);
}

}  // namespace dreambooth::text
