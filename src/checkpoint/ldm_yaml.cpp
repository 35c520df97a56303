#include "dreambooth/checkpoint/ldm_yaml.h"

#include <fstream>
#include <sstream>
#include <utility>
#include <vector>

#include "dreambooth/core/error.h"

namespace fs = std::filesystem;

namespace dreambooth::checkpoint {
namespace {

std::string trim(const std::string& s) {
  const auto begin = s.find_first_not_of(" \t\r");
  if (begin == std::string::npos) return "";
  const auto end = s.find_last_not_of(" \t\r");
  return s.substr(begin, end - begin + 1);
}

// Drops a `#` comment that is not inside quotes.
std::string strip_comment(const std::string& line) {
  char quote = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    const char c = line[i];
    if (quote) {
      if (c == quote) quote = 0;
    } else if (c == '"' || c == '\'') {
      quote = c;
    } else if (c == '#' && (i == 0 || line[i - 1] == ' ' || line[i - 1] == '\t')) {
      return line.substr(0, i);
    }
  }
  return line;
}

std::string unquote(const std::string& value) {
  if (value.size() >= 2 && (value.front() == '"' || value.front() == '\'') && value.back() == value.front())
    return value.substr(1, value.size() - 2);
  return value;
}

bool ends_with_path(const std::string& path, const std::string& suffix) {
  if (path.size() < suffix.size() || path.compare(path.size() - suffix.size(), suffix.size(), suffix) != 0)
    return false;
  return path.size() == suffix.size() || path[path.size() - suffix.size() - 1] == '.';
}

}  // namespace

LdmYaml LdmYaml::parse(const std::string& text, const std::string& source) {
  LdmYaml yaml;
  yaml.source_ = source;
  std::vector<std::pair<size_t, std::string>> stack;  // (indent, key) of the open mappings
  std::istringstream in(text);
  std::string raw;
  while (std::getline(in, raw)) {
    const std::string line = strip_comment(raw);
    const std::string content = trim(line);
    if (content.empty() || content == "---" || content[0] == '-') continue;  // list items are not needed
    const size_t indent = line.find_first_not_of(" \t");
    const auto colon = content.find(':');
    if (colon == std::string::npos || colon == 0) continue;  // a continuation line
    if (colon + 1 < content.size() && content[colon + 1] != ' ' && content[colon + 1] != '\t') continue;
    const std::string key = unquote(trim(content.substr(0, colon)));
    const std::string value = trim(content.substr(colon + 1));
    while (!stack.empty() && stack.back().first >= indent) stack.pop_back();
    std::string path;
    for (const auto& [_, parent] : stack) path += parent + ".";
    path += key;
    if (value.empty())
      stack.emplace_back(indent, key);
    else
      yaml.values_[path] = unquote(value);
  }
  return yaml;
}

LdmYaml LdmYaml::load(const fs::path& path) {
  std::ifstream in(path);
  if (!in) throw input_error(path.string(), "cannot read the config file");
  std::stringstream text;
  text << in.rdbuf();
  return parse(text.str(), path.string());
}

std::optional<LdmYaml> LdmYaml::beside(const fs::path& checkpoint) {
  fs::path yaml = checkpoint;
  yaml.replace_extension(".yaml");
  std::error_code ec;
  if (!fs::is_regular_file(yaml, ec)) return std::nullopt;
  return load(yaml);
}

std::optional<std::string> LdmYaml::find(const std::string& suffix) const {
  std::optional<std::string> found;
  std::string found_path;
  for (const auto& [path, value] : values_) {
    if (!ends_with_path(path, suffix)) continue;
    if (found) throw model_error(source_, "'" + suffix + "' is ambiguous (" + found_path + ", " + path + ")");
    found = value;
    found_path = path;
  }
  return found;
}

std::optional<long long> LdmYaml::find_int(const std::string& suffix) const {
  auto value = find(suffix);
  if (!value) return std::nullopt;
  try {
    size_t used = 0;
    long long n = std::stoll(*value, &used);
    if (used == value->size()) return n;
  } catch (const std::exception&) {
  }
  throw model_error(source_, suffix + " is '" + *value + "', expected an integer");
}

std::optional<double> LdmYaml::find_number(const std::string& suffix) const {
  auto value = find(suffix);
  if (!value) return std::nullopt;
  try {
    size_t used = 0;
    double x = std::stod(*value, &used);
    if (used == value->size()) return x;
  } catch (const std::exception&) {
  }
  throw model_error(source_, suffix + " is '" + *value + "', expected a number");
}

}  // namespace dreambooth::checkpoint
