#include "support/module_loading.h"

#include <set>
#include <sstream>

#include <torch/torch.h>

#include "dreambooth/core/error.h"
#include "dreambooth/io/safetensors.h"

namespace dreambooth::testing {

::testing::AssertionResult load_module_weights(torch::nn::Module& module, const std::filesystem::path& file) {
  io::SafetensorsReader reader(file);
  std::set<std::string> unexpected;
  for (const auto& entry : reader.entries()) unexpected.insert(entry.name);
  std::ostringstream problems;
  for (auto& item : module.named_parameters()) {
    const std::string& name = item.key();
    if (!reader.contains(name)) {
      problems << " missing: " << name << ";";
      continue;
    }
    unexpected.erase(name);
    try {
      reader.load_into(name, item.value());
    } catch (const Error& e) {
      problems << " " << e.what() << ";";
    }
  }
  for (const auto& name : unexpected) problems << " unexpected: " << name << ";";
  if (!problems.str().empty()) return ::testing::AssertionFailure() << file << ":" << problems.str();
  return ::testing::AssertionSuccess();
}

}  // namespace dreambooth::testing
