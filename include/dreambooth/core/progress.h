// Progress on stderr: a redrawn bar on a terminal, plain periodic lines otherwise (logs, CI).
#pragma once

#include <chrono>
#include <cstdio>
#include <string>

namespace dreambooth {

class Progress {
 public:
  // total > 0. quiet: print nothing. force_plain: lines even on a terminal (tests).
  Progress(std::string label, int total, bool quiet = false, std::FILE* out = stderr);
  // `done` steps finished; `extra` is appended (e.g. "loss 0.0123").
  void update(int done, const std::string& extra = "");
  void finish(const std::string& extra = "");

  static std::string format_duration(double seconds);

 private:
  void draw(int done, const std::string& extra, bool final_line);

  std::string label_;
  int total_;
  bool quiet_;
  bool tty_;
  std::FILE* out_;
  std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_print_;
  int last_done_ = -1;
  bool finished_ = false;
};

}  // namespace dreambooth
