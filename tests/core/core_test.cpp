#include <gtest/gtest.h>

#include "dreambooth/core/atomic_file.h"
#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/progress.h"
#include "dreambooth/core/runtime.h"
#include "dreambooth/core/sha256.h"
#include "dreambooth/core/torch_compat.h"
#include "support/golden.h"

#include <fstream>

namespace fs = std::filesystem;
using namespace dreambooth;

TEST(Sha256, KnownVectors) {
  EXPECT_EQ(sha256_hex(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(sha256_hex("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  std::string million(1000000, 'a');
  EXPECT_EQ(sha256_hex(million), "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
  EXPECT_EQ(sha256_hex("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
}

TEST(AtomicFile, WritesWholeOrNothing) {
  dreambooth::testing::TempDir dir;
  write_text_file_atomic(dir / "a.txt", "hello");
  std::ifstream in(dir / "a.txt");
  std::string content;
  in >> content;
  EXPECT_EQ(content, "hello");
  {
    AtomicFile abandoned(dir / "b.txt");
    abandoned.stream() << "partial";
  }  // not committed
  EXPECT_FALSE(fs::exists(dir / "b.txt"));
  int entries = 0;
  for (auto& e : fs::directory_iterator(dir.path())) (void)e, ++entries;
  EXPECT_EQ(entries, 1);
}

TEST(Runtime, DeviceSpecs) {
  EXPECT_EQ(resolve_device("cpu").type(), c10::kCPU);
  EXPECT_THROW(resolve_device("gpu"), Error);
  EXPECT_THROW(resolve_device("cuda:x"), Error);
  if (!cuda_available()) {
    EXPECT_EQ(resolve_device("auto").type(), c10::kCPU);
    try {
      resolve_device("cuda");
      ADD_FAILURE();
    } catch (const Error& e) {
      EXPECT_EQ(e.kind(), ErrorKind::Usage);
    }
  }
  EXPECT_EQ(configure_threads(1), 1);
  EXPECT_THROW(configure_threads(-1), Error);
}

TEST(ConfigReader, UnknownKeysAndTypes) {
  nlohmann::json j = {{"a", 1}, {"b", "x"}, {"_private", 3}, {"extra", true}};
  ConfigReader r(j, "cfg.json");
  r.ignore_prefix("_");
  int a = 0;
  r.read("a", a);
  EXPECT_EQ(a, 1);
  int wrong = 0;
  EXPECT_THROW(r.read("b", wrong), Error);
  EXPECT_EQ(r.unknown_keys(), std::vector<std::string>{"extra"});
  r.require_value("absent", nullptr);
  EXPECT_THROW(r.require_value("extra", false), Error);
}

TEST(ConfigReader, OptionalSettings) {
  nlohmann::json j = {{"lr", 2e-6}, {"seed", nullptr}, {"gamma", "five"}};
  ConfigReader r(j, "preset.json");
  std::optional<double> lr;
  r.read("lr", lr);
  EXPECT_EQ(lr, 2e-6);
  std::optional<uint64_t> seed = 7;
  r.read("seed", seed);  // null: keep what the command line gave
  EXPECT_EQ(seed, 7u);
  std::optional<double> alpha;
  r.read("alpha", alpha);  // absent
  EXPECT_FALSE(alpha.has_value());
  std::optional<double> gamma;
  EXPECT_THROW(r.read("gamma", gamma), Error);
  EXPECT_TRUE(r.unknown_keys().empty()) << "null and read keys count as read";
}

TEST(Error, MessagesAreOneLine) {
  Error e = input_error("a\nb.safetensors", "broken\nheader", "re-export");
  EXPECT_EQ(std::string(e.what()).find('\n'), std::string::npos);
  EXPECT_EQ(exit_code(ErrorKind::Interrupted), 130);
  EXPECT_EQ(exit_code(ErrorKind::Usage), 2);
}

TEST(Progress, FormatsDurations) {
  EXPECT_EQ(Progress::format_duration(65), "01:05");
  EXPECT_EQ(Progress::format_duration(3725), "1:02:05");
  EXPECT_EQ(Progress::format_duration(-1), "--:--");
}
