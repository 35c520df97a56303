// Strict reading of JSON config files (diffusers config.json, our option presets).
//
// Every key must be read, checked against a known default, or ignored on purpose; whatever is left
// is an unknown key and gets a warning naming it. A value of the wrong type is an error.
#pragma once

#include <optional>
#include <set>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace dreambooth {

class ConfigReader {
 public:
  // `source` names the file (or flag) in messages.
  ConfigReader(const nlohmann::json& object, std::string source);

  bool has(const std::string& key) const;
  // Reads `key` into `value` if present (and not null); leaves the default otherwise.
  template <typename T>
  void read(const std::string& key, T& value);
  // An optional setting: set when the key holds a value; left as it is when the key is absent or null.
  template <typename T>
  void read(const std::string& key, std::optional<T>& value);
  // For keys diffusers writes as either a scalar or a per-block list ("attention_head_dim": 8 | [5,10,20,20]).
  void read_int_or_list(const std::string& key, std::vector<int>& value);
  // A key we do not implement: fine when absent, null or equal to `supported`; a model error otherwise.
  void require_value(const std::string& key, const nlohmann::json& supported);
  // Keys that carry no meaning for us (bookkeeping such as "_class_name", "_diffusers_version").
  void ignore(const std::string& key);
  void ignore_prefix(const std::string& prefix);
  // Warns once per key never touched.
  void warn_unknown() const;
  std::vector<std::string> unknown_keys() const;

 private:
  const nlohmann::json& object_;
  std::string source_;
  std::set<std::string> touched_;
  std::vector<std::string> ignored_prefixes_;
};

// Parses JSON text as Python's json module writes it: the non-standard tokens NaN, Infinity and -Infinity
// (outside strings) become floating-point numbers (diffusers writes "lambda_min_clipped": -Infinity).
// Throws an input error naming `source` when the text is not JSON.
nlohmann::json parse_python_json(const std::string& text, const std::string& source);

[[noreturn]] void throw_config_type_error(const std::string& source, const std::string& key, const char* expected,
                                          const nlohmann::json& value);

template <typename T>
void ConfigReader::read(const std::string& key, T& value) {
  touched_.insert(key);
  auto it = object_.find(key);
  if (it == object_.end() || it->is_null()) return;
  try {
    // Reject bool<->number and number->string coercions nlohmann would otherwise accept.
    if constexpr (std::is_same_v<T, bool>) {
      if (!it->is_boolean()) throw_config_type_error(source_, key, "a boolean", *it);
    } else if constexpr (std::is_integral_v<T>) {
      if (!it->is_number_integer()) throw_config_type_error(source_, key, "an integer", *it);
    } else if constexpr (std::is_floating_point_v<T>) {
      if (!it->is_number()) throw_config_type_error(source_, key, "a number", *it);
    } else if constexpr (std::is_same_v<T, std::string>) {
      if (!it->is_string()) throw_config_type_error(source_, key, "a string", *it);
    }
    value = it->get<T>();
  } catch (const nlohmann::json::exception&) {
    throw_config_type_error(source_, key, "a value of another type", *it);
  }
}

template <typename T>
void ConfigReader::read(const std::string& key, std::optional<T>& value) {
  T read_value{};
  touched_.insert(key);
  if (!has(key)) return;
  read(key, read_value);
  value = read_value;
}

}  // namespace dreambooth
