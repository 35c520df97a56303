#include "dreambooth/core/error.h"

namespace dreambooth {

int exit_code(ErrorKind kind) { return static_cast<int>(kind); }

const char* error_kind_name(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::Runtime: return "runtime";
    case ErrorKind::Usage: return "usage";
    case ErrorKind::Input: return "input";
    case ErrorKind::Model: return "model";
    case ErrorKind::Output: return "output";
    case ErrorKind::Numerical: return "numerical";
    case ErrorKind::Interrupted: return "interrupted";
  }
  return "runtime";
}

std::string format_error(const std::string& subject, const std::string& what, const std::string& hint) {
  std::string message = subject.empty() ? what : subject + ": " + what;
  if (!hint.empty()) message += " (" + hint + ")";
  // One line, always: a newline inside an error breaks scripts that read stderr line by line.
  for (char& c : message)
    if (c == '\n' || c == '\r') c = ' ';
  return message;
}

}  // namespace dreambooth
