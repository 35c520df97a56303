#include "support/golden.h"

#include <unistd.h>

#include <array>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <random>
#include <sstream>
#include <stdexcept>
#include <sys/wait.h>

#include "dreambooth/core/config_reader.h"
#include "dreambooth/core/remove_tree.h"

namespace fs = std::filesystem;

namespace dreambooth::testing {

fs::path golden_dir() {
  if (const char* env = std::getenv("DREAMBOOTH_GOLDEN_DIR"); env && *env) return env;
  return DREAMBOOTH_GOLDEN_DIR;
}

bool ci_mode() {
  const char* ci = std::getenv("CI");
  return ci && std::string(ci) == "true";
}

bool golden_available() { return fs::is_directory(golden_dir() / "tiny-sd1" / "golden"); }

fs::path golden_path(const std::string& relative) { return golden_dir() / relative; }

const nlohmann::json& golden_index() {
  static const nlohmann::json index = [] {
    std::ifstream in(golden_path("tiny-sd1/golden/index.json"));
    if (!in) throw std::runtime_error("cannot read golden index.json");
    std::stringstream text;
    text << in.rdbuf();
    // The DPM-Solver case stores "lambda_min_clipped": -Infinity (Python's json extension).
    return parse_python_json(text.str(), "index.json");
  }();
  return index;
}

const nlohmann::json& golden_case(const std::string& name) {
  for (const auto& c : golden_index().at("cases"))
    if (c.at("name") == name) return c;
  throw std::runtime_error("golden case not found: " + name);
}

double golden_atol(const std::string& case_name, const std::string& tensor_name) {
  const auto& c = golden_case(case_name);
  return c.at("fp32_vs_fp64").at(tensor_name).at("suggested_atol").get<double>();
}

fs::path dreambooth_binary() {
  if (const char* env = std::getenv("DREAMBOOTH_BINARY"); env && *env) return env;
  return DREAMBOOTH_BINARY;
}

fs::path source_dir() { return DREAMBOOTH_SOURCE_DIR; }

TempDir::TempDir() {
  std::random_device rd;
  for (int attempt = 0; attempt < 100; ++attempt) {
    fs::path candidate = fs::temp_directory_path() / ("dreambooth-test-" + std::to_string(::getpid()) + "-" +
                                                       std::to_string(rd() % 1000000));
    std::error_code ec;
    if (fs::create_directory(candidate, ec)) {
      path_ = candidate;
      return;
    }
  }
  throw std::runtime_error("cannot create a temporary directory");
}

TempDir::~TempDir() {
  std::error_code ec;
  ec = remove_tree(path_);
}

namespace {
std::string shell_quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += (c == '\'') ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

std::string slurp(const fs::path& p) {
  std::ifstream in(p, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}
}  // namespace

CommandResult run_cli(const std::vector<std::string>& args, const std::string& env) {
  TempDir capture;
  std::string command = env.empty() ? "" : env + " ";
  command += shell_quote(dreambooth_binary().string());
  for (const auto& a : args) command += " " + shell_quote(a);
  command += " >" + shell_quote((capture.path() / "out").string()) + " 2>" +
             shell_quote((capture.path() / "err").string()) + " </dev/null";
  int status = std::system(command.c_str());
  CommandResult result;
  result.exit_code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
  result.out = slurp(capture.path() / "out");
  result.err = slurp(capture.path() / "err");
  return result;
}

}  // namespace dreambooth::testing
