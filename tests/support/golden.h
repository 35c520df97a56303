// Where the reference data lives, and how tests reach it.
#pragma once

#include <filesystem>
#include <string>

#include <nlohmann/json.hpp>

namespace dreambooth::testing {

// ../shared/golden unless DREAMBOOTH_GOLDEN_DIR (CMake cache or environment) says otherwise.
std::filesystem::path golden_dir();
// True when present. When absent: under CI=true the calling test fails; otherwise it is skipped.
bool golden_available();
std::filesystem::path golden_path(const std::string& relative);
// tiny-sd1/golden/index.json, parsed once.
const nlohmann::json& golden_index();
// The index.json entry for one case, e.g. "unet_tint".
const nlohmann::json& golden_case(const std::string& name);
// The reference's suggested absolute tolerance for one compared tensor of a case.
double golden_atol(const std::string& case_name, const std::string& tensor_name);

std::filesystem::path dreambooth_binary();
std::filesystem::path source_dir();

// A fresh empty directory under the system temp dir, removed by the destructor.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  const std::filesystem::path& path() const { return path_; }
  std::filesystem::path operator/(const std::string& name) const { return path_ / name; }

 private:
  std::filesystem::path path_;
};

struct CommandResult {
  int exit_code = -1;
  std::string out;  // stdout
  std::string err;  // stderr
};
// Runs the built `dreambooth` binary with arguments (each shell-quoted).
CommandResult run_cli(const std::vector<std::string>& args, const std::string& env = "");

}  // namespace dreambooth::testing

// Skips (locally) or fails (CI=true) when ../shared/golden is missing.
#define REQUIRE_GOLDEN()                                                                  \
  do {                                                                                    \
    if (!::dreambooth::testing::golden_available()) {                                     \
      if (::dreambooth::testing::ci_mode()) FAIL() << "golden dir missing under CI=true: " \
                                                   << ::dreambooth::testing::golden_dir(); \
      GTEST_SKIP() << "golden dir not found: " << ::dreambooth::testing::golden_dir();     \
    }                                                                                     \
  } while (0)

namespace dreambooth::testing {
bool ci_mode();
}
