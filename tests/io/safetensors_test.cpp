#include "dreambooth/io/safetensors.h"

#include <fstream>
#include <random>
#include <sstream>

#include <gtest/gtest.h>
#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "support/golden.h"
#include "support/tensor_close.h"

namespace fs = std::filesystem;
using dreambooth::Error;
using dreambooth::ErrorKind;
using dreambooth::io::SafetensorsReader;
using dreambooth::io::write_safetensors;
using dreambooth::testing::TempDir;

namespace {

std::string read_bytes(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

void write_bytes(const fs::path& p, const std::string& bytes) {
  std::ofstream out(p, std::ios::binary | std::ios::trunc);
  out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
}

std::string with_header(const std::string& header, const std::string& data) {
  std::string out(8, '\0');
  uint64_t n = header.size();
  for (int i = 0; i < 8; ++i) out[i] = static_cast<char>((n >> (8 * i)) & 0xff);
  return out + header + data;
}

// Opens and reads every tensor; returns the error kind, or nullopt on success. Anything other than a
// dreambooth::Error escaping (or a crash) fails the test.
std::optional<ErrorKind> open_and_read_all(const fs::path& p) {
  try {
    SafetensorsReader reader(p);
    for (const auto& e : reader.entries()) {
      at::Tensor t = reader.load(e.name, torch::kFloat);
      (void)t.sum().item<double>();
    }
    return std::nullopt;
  } catch (const Error& e) {
    std::string message = e.what();
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
    EXPECT_NE(message.find(p.filename().string()), std::string::npos) << "error does not name the file: " << message;
    return e.kind();
  }
}

std::string expect_input_error(const fs::path& p) {
  try {
    SafetensorsReader reader(p);
  } catch (const Error& e) {
    EXPECT_EQ(e.kind(), ErrorKind::Input) << e.what();
    return e.what();
  }
  ADD_FAILURE() << "no error for " << p;
  return "";
}

}  // namespace

TEST(Safetensors, RoundTripEveryDtypeAndMetadata) {
  TempDir dir;
  std::vector<dreambooth::io::NamedTensor> tensors = {
      {"f32", torch::randn({3, 5})},
      {"f16", torch::randn({7}).to(torch::kHalf)},
      {"bf16", torch::randn({2, 2, 2}).to(torch::kBFloat16)},
      {"f64", torch::randn({4}, torch::kDouble)},
      {"i64", torch::arange(10, torch::kLong)},
      {"i32", torch::arange(6, torch::kInt).reshape({2, 3})},
      {"i16", torch::arange(3, torch::kShort)},
      {"i8", torch::arange(-3, 3, torch::kChar)},
      {"u8", torch::arange(250, 256, torch::kByte)},
      {"bool", torch::tensor({true, false, true})},
      {"scalar", torch::tensor(3.5f)},
      {"empty", torch::zeros({0, 4})},
  };
  write_safetensors(dir / "t.safetensors", tensors, {{"format", "pt"}, {"note", "hello"}});
  SafetensorsReader reader(dir / "t.safetensors");
  EXPECT_EQ(reader.metadata().at("note"), "hello");
  ASSERT_EQ(reader.entries().size(), tensors.size());
  for (const auto& [name, tensor] : tensors) {
    at::Tensor back = reader.view(name);
    EXPECT_EQ(back.scalar_type(), tensor.scalar_type()) << name;
    EXPECT_TRUE(torch::equal(back, tensor)) << name;
  }
  // Conversion on load.
  EXPECT_TRUE(torch::equal(reader.load("f16", torch::kFloat), tensors[1].tensor.to(torch::kFloat)));
  at::Tensor destination = torch::zeros({3, 5}, torch::kDouble);
  reader.load_into("f32", destination);
  EXPECT_TRUE(torch::equal(destination, tensors[0].tensor.to(torch::kDouble)));
  // Views survive the reader.
  at::Tensor kept;
  {
    SafetensorsReader scoped(dir / "t.safetensors");
    kept = scoped.view("i64");
  }
  EXPECT_EQ(kept[9].item<int64_t>(), 9);
  // No temporary files remain beside the output.
  int files = 0;
  for (auto& entry : fs::directory_iterator(dir.path())) files += entry.is_regular_file();
  EXPECT_EQ(files, 1);
}

TEST(Safetensors, LoadIntoRejectsWrongShape) {
  TempDir dir;
  write_safetensors(dir / "t.safetensors", {{"w", torch::ones({2, 3})}});
  SafetensorsReader reader(dir / "t.safetensors");
  at::Tensor wrong = torch::zeros({3, 2});
  EXPECT_THROW(reader.load_into("w", wrong), Error);
  EXPECT_THROW(reader.view("missing"), Error);
}

TEST(Safetensors, WritingViewDoesNotTouchFile) {
  TempDir dir;
  write_safetensors(dir / "t.safetensors", {{"w", torch::ones({1024})}});
  {
    SafetensorsReader reader(dir / "t.safetensors");
    reader.view("w").fill_(7.0f);
  }
  SafetensorsReader again(dir / "t.safetensors");
  EXPECT_EQ(again.view("w")[0].item<float>(), 1.0f);
}

TEST(Safetensors, ReadDataMatchesTheMappingAndReportsAFileThatShrank) {
  TempDir dir;
  const fs::path path = dir / "t.safetensors";
  write_safetensors(path, {{"a", torch::arange(10, torch::kShort)}, {"b", torch::arange(1000, torch::kFloat)}});
  SafetensorsReader reader(path);
  const auto& b = reader.at("b");
  at::Tensor read = torch::empty({1000}, torch::kFloat);
  reader.read_data(b.begin, read.data_ptr(), b.end - b.begin);
  EXPECT_TRUE(torch::equal(read, reader.view("b")));
  EXPECT_THROW(reader.read_data(b.end - 4, read.data_ptr(), 8), Error);  // past the data section: a bug

  fs::resize_file(path, fs::file_size(path) - 100);
  try {
    reader.read_data(b.begin, read.data_ptr(), b.end - b.begin);
    ADD_FAILURE() << "no error";
  } catch (const Error& e) {
    const std::string message = e.what();
    EXPECT_EQ(e.kind(), ErrorKind::Input) << message;
    EXPECT_NE(message.find("t.safetensors"), std::string::npos) << message;
    EXPECT_NE(message.find("truncated"), std::string::npos) << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << message;
  }
}

TEST(Safetensors, MissingFile) {
  TempDir dir;
  std::string message = expect_input_error(dir / "nope.safetensors");
  EXPECT_NE(message.find("no such file"), std::string::npos) << message;
}

TEST(Safetensors, EachMalformationGivesItsOwnOneLineError) {
  TempDir dir;
  const std::string data(16, '\0');  // room for 4 floats
  struct Case {
    const char* name;
    std::string bytes;
    const char* expected_phrase;
  };
  std::vector<Case> cases = {
      {"short", std::string(5, '\0'), "fewer than the 8-byte header length"},
      {"header_past_end", with_header(R"({"a":{"dtype":"F32","shape":[4],"data_offsets":[0,16]}})", "").substr(0, 20),
       "runs past the end"},
      {"bad_json", with_header(R"({"a":{"dtype":"F32",)", data), "not valid JSON"},
      {"not_object", with_header(R"([1,2,3])", data), "not a JSON object"},
      {"unknown_dtype", with_header(R"({"a":{"dtype":"F7","shape":[4],"data_offsets":[0,16]}})", data),
       "unsupported dtype 'F7'"},
      {"size_mismatch", with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,16]}})", data),
       "has shape [3] of F32 but 16 bytes"},
      {"out_of_range", with_header(R"({"a":{"dtype":"F32","shape":[8],"data_offsets":[0,32]}})", data),
       "ends at byte 32"},
      {"overlap", with_header(R"({"a":{"dtype":"F32","shape":[3],"data_offsets":[0,12]},)"
                              R"("b":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                              data),
       "overlaps"},
      {"hole", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})", data), "belong to no tensor"},
      {"not_covering", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]}})", data),
       "the tensors cover 8"},
      {"reversed", with_header(R"({"a":{"dtype":"F32","shape":[0],"data_offsets":[16,0]}})", data),
       "end before they begin"},
      {"negative_shape", with_header(R"({"a":{"dtype":"F32","shape":[-4],"data_offsets":[0,16]}})", data),
       "not a non-negative integer"},
      {"duplicate", with_header(R"({"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},)"
                                R"("a":{"dtype":"F32","shape":[2],"data_offsets":[8,16]}})",
                                data),
       "twice"},
      {"overflow_shape",
       with_header(R"({"a":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,16]}})", data),
       "has shape"},
      {"metadata_not_string", with_header(R"({"__metadata__":{"x":1}})", ""), "is not a string"},
  };
  for (const auto& c : cases) {
    fs::path p = dir / (std::string(c.name) + ".safetensors");
    write_bytes(p, c.bytes);
    std::string message = expect_input_error(p);
    EXPECT_NE(message.find(c.expected_phrase), std::string::npos) << c.name << ": " << message;
    EXPECT_NE(message.find(p.filename().string()), std::string::npos) << c.name << ": " << message;
    EXPECT_EQ(message.find('\n'), std::string::npos) << c.name;
  }
}

// Mutates and truncates a real reference file at many positions: each variant either loads cleanly
// or gives a dreambooth input error; nothing crashes or reads out of bounds (also run under ASan).
TEST(Safetensors, MutatedAndTruncatedRealFilesNeverCrash) {
  REQUIRE_GOLDEN();
  const std::string original = read_bytes(dreambooth::testing::golden_path("tiny-sd1/golden/vae.safetensors"));
  ASSERT_GT(original.size(), 1000u);
  uint64_t header_size = 0;
  for (int i = 7; i >= 0; --i) header_size = (header_size << 8) | static_cast<unsigned char>(original[i]);
  TempDir dir;
  const fs::path p = dir / "mutant.safetensors";

  int failures = 0, successes = 0;
  // Truncations: every header byte region and a spread of data positions.
  std::vector<size_t> cut_points;
  for (size_t i = 0; i < 8 + header_size + 64; i += 7) cut_points.push_back(i);
  for (size_t i = 8 + header_size; i < original.size(); i += original.size() / 50) cut_points.push_back(i);
  cut_points.push_back(original.size() - 1);
  for (size_t cut : cut_points) {
    write_bytes(p, original.substr(0, cut));
    auto kind = open_and_read_all(p);
    ASSERT_TRUE(kind.has_value()) << "truncated at " << cut << " was accepted";
    EXPECT_EQ(*kind, ErrorKind::Input);
    ++failures;
  }
  // Byte mutations across the whole header (length prefix included) with several replacement bytes.
  const char replacements[] = {'\0', '"', '9', '}', ',', '-', 'x', '\xff'};
  std::mt19937 rng(1234);
  for (size_t pos = 0; pos < 8 + header_size; pos += 3) {
    std::string mutant = original;
    mutant[pos] = replacements[rng() % sizeof(replacements)];
    if (mutant == original) continue;
    write_bytes(p, mutant);
    auto kind = open_and_read_all(p);
    if (kind) {
      EXPECT_EQ(*kind, ErrorKind::Input);
      ++failures;
    } else {
      ++successes;
    }
  }
  // Appended garbage is data no tensor owns.
  write_bytes(p, original + "garbage");
  EXPECT_TRUE(open_and_read_all(p).has_value());
  std::printf("[fuzz] %d variants rejected, %d harmless mutations accepted\n", failures, successes);
  EXPECT_GT(failures, 100);
}
