// A line-based reader for the few scalars we need from an original LDM config (.yaml beside a single
// file): UNet head counts, parameterization, image sizes, the latent scale factor. Not a YAML parser:
// it understands `key: value` lines nested by indentation, `#` comments and quoted scalars; list items
// and multi-line values are skipped. That covers the configs CompVis and Stability AI ship.
#pragma once

#include <filesystem>
#include <map>
#include <optional>
#include <string>

namespace dreambooth::checkpoint {

class LdmYaml {
 public:
  static LdmYaml parse(const std::string& text, const std::string& source);
  static LdmYaml load(const std::filesystem::path& path);  // input error if unreadable
  // `<stem>.yaml` beside a checkpoint file, when present.
  static std::optional<LdmYaml> beside(const std::filesystem::path& checkpoint);

  const std::string& source() const { return source_; }
  // The value whose dotted path ends with `suffix` on a '.' boundary
  // ("unet_config.params.num_heads" finds model.params.unet_config.params.num_heads).
  // Quotes are stripped. nullopt when absent; a model error when the suffix matches several paths.
  std::optional<std::string> find(const std::string& suffix) const;
  // The same, as an integer / a number; a model error naming the file when the value is not one.
  std::optional<long long> find_int(const std::string& suffix) const;
  std::optional<double> find_number(const std::string& suffix) const;

  const std::map<std::string, std::string>& values() const { return values_; }

 private:
  std::string source_;
  std::map<std::string, std::string> values_;  // full dotted path -> scalar text
};

}  // namespace dreambooth::checkpoint
