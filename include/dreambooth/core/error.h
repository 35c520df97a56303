// Typed errors thrown by the library. `main` is the one catch site; it maps the kind to an exit code.
#pragma once

#include <stdexcept>
#include <string>

namespace dreambooth {

// Exit codes are part of the CLI contract (scripts test them); keep numbers stable.
enum class ErrorKind {
  Runtime = 1,      // anything unexpected (a bug, an out-of-memory, a LibTorch failure)
  Usage = 2,        // bad flag or flag combination
  Input = 3,        // missing, unreadable, corrupt or unsupported input file
  Model = 4,        // checkpoint does not fit: missing/unexpected/mis-shaped keys, wrong family
  Output = 5,       // cannot write an output (exists without --overwrite, no space, no permission)
  Numerical = 6,    // NaN/Inf in loss or weights
  Interrupted = 130 // SIGINT/SIGTERM, after a clean checkpoint
};

int exit_code(ErrorKind kind);
const char* error_kind_name(ErrorKind kind);

class Error : public std::runtime_error {
 public:
  Error(ErrorKind kind, const std::string& message) : std::runtime_error(message), kind_(kind) {}
  ErrorKind kind() const { return kind_; }

 private:
  ErrorKind kind_;
};

// "<subject>: <what> (<hint>)" keeps every user-facing error on one line naming the file or flag.
std::string format_error(const std::string& subject, const std::string& what, const std::string& hint = "");

inline Error usage_error(const std::string& what, const std::string& hint = "") {
  return Error(ErrorKind::Usage, hint.empty() ? what : what + " (" + hint + ")");
}
inline Error input_error(const std::string& file, const std::string& what, const std::string& hint = "") {
  return Error(ErrorKind::Input, format_error(file, what, hint));
}
inline Error model_error(const std::string& file, const std::string& what, const std::string& hint = "") {
  return Error(ErrorKind::Model, format_error(file, what, hint));
}
inline Error output_error(const std::string& file, const std::string& what, const std::string& hint = "") {
  return Error(ErrorKind::Output, format_error(file, what, hint));
}
inline Error numerical_error(const std::string& what, const std::string& hint = "") {
  return Error(ErrorKind::Numerical, hint.empty() ? what : what + " (" + hint + ")");
}

}  // namespace dreambooth
