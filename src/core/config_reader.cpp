#include "dreambooth/core/config_reader.h"

#include <limits>
#include <string>

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

namespace {

// Placeholders for the non-standard tokens: a string holding a control character, which JSON text can
// only write escaped ("\u0001..."), so no real value collides with it.
constexpr const char* kNanMark = "\x01NaN";
constexpr const char* kInfMark = "\x01Infinity";
constexpr const char* kNegInfMark = "\x01-Infinity";

void restore_non_finite(nlohmann::json& value) {
  if (value.is_structured()) {
    for (auto& child : value) restore_non_finite(child);
  } else if (value.is_string()) {
    const auto& s = value.get_ref<const std::string&>();
    if (s == kNanMark) value = std::numeric_limits<double>::quiet_NaN();
    else if (s == kInfMark) value = std::numeric_limits<double>::infinity();
    else if (s == kNegInfMark) value = -std::numeric_limits<double>::infinity();
  }
}

}  // namespace

nlohmann::json parse_python_json(const std::string& text, const std::string& source) {
  std::string out;
  out.reserve(text.size());
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      out += c;
      if (c == '\\' && i + 1 < text.size()) out += text[++i];
      else if (c == '"') in_string = false;
      continue;
    }
    if (c == '"') {
      in_string = true;
      out += c;
      continue;
    }
    const struct { const char* token; const char* escaped_mark; } tokens[] = {
        {"-Infinity", "\"\\u0001-Infinity\""}, {"Infinity", "\"\\u0001Infinity\""}, {"NaN", "\"\\u0001NaN\""}};
    bool replaced = false;
    for (const auto& t : tokens) {
      const size_t n = std::char_traits<char>::length(t.token);
      if (text.compare(i, n, t.token) == 0) {
        out += t.escaped_mark;
        i += n - 1;
        replaced = true;
        break;
      }
    }
    if (!replaced) out += c;
  }
  nlohmann::json json;
  try {
    json = nlohmann::json::parse(out);
  } catch (const nlohmann::json::exception& e) {
    throw input_error(source, std::string("not valid JSON: ") + e.what());
  }
  restore_non_finite(json);
  return json;
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
