#include "dreambooth/core/config_reader.h"

#include <spdlog/spdlog.h>

#include "dreambooth/core/error.h"

namespace dreambooth {

ConfigReader::ConfigReader(const nlohmann::json& object, std::string source)
    : object_(object), source_(std::move(source)) {
  if (!object_.is_object()) throw input_error(source_, "config is not a JSON object");
}

bool ConfigReader::has(const std::string& key) const {
  auto it = object_.find(key);
  return it != object_.end() && !it->is_null();
}

void throw_config_type_error(const std::string& source, const std::string& key, const char* expected,
                             const nlohmann::json& value) {
  throw input_error(source, "config key '" + key + "' should be " + expected + ", got " + value.dump());
}

void ConfigReader::read_int_or_list(const std::string& key, std::vector<int>& value) {
  touched_.insert(key);
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return;
  if (it->is_number_integer()) {
    value = {it->get<int>()};
    return;
  }
  if (it->is_array()) {
    std::vector<int> list;
    for (const auto& v : *it) {
      if (!v.is_number_integer()) throw_config_type_error(source_, key, "an integer or a list of integers", *it);
      list.push_back(v.get<int>());
    }
    value = list;
    return;
  }
  throw_config_type_error(source_, key, "an integer or a list of integers", *it);
}

void ConfigReader::require_value(const std::string& key, const nlohmann::json& supported) {
  touched_.insert(key);
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null() || *it == supported) return;
  throw model_error(source_, "config key '" + key + "' = " + it->dump() + " is not supported",
                    "supported: " + (supported.is_null() ? std::string("null") : supported.dump()));
}

void ConfigReader::ignore(const std::string& key) { touched_.insert(key); }

void ConfigReader::ignore_prefix(const std::string& prefix) { ignored_prefixes_.push_back(prefix); }

std::vector<std::string> ConfigReader::unknown_keys() const {
  std::vector<std::string> unknown;
  for (auto it = object_.begin(); it != object_.end(); ++it) {
    const std::string& key = it.key();
    if (touched_.count(key)) continue;
    bool ignored = false;
    for (const auto& prefix : ignored_prefixes_) ignored = ignored || key.rfind(prefix, 0) == 0;
    if (!ignored) unknown.push_back(key);
  }
  return unknown;
}

void ConfigReader::warn_unknown() const {
  for (const auto& key : unknown_keys()) spdlog::warn("{}: unknown config key '{}' ignored", source_, key);
}

}  // namespace dreambooth
