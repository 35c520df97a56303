#include "dreambooth/core/progress.h"

#include <unistd.h>

#include <cmath>

namespace dreambooth {

Progress::Progress(std::string label, int total, bool quiet, std::FILE* out)
    : label_(std::move(label)), total_(total > 0 ? total : 1), quiet_(quiet), out_(out) {
  tty_ = ::isatty(::fileno(out_)) != 0;
  start_ = std::chrono::steady_clock::now();
  last_print_ = start_;
}

std::string Progress::format_duration(double seconds) {
  if (!std::isfinite(seconds) || seconds < 0) return "--:--";
  long s = std::lround(seconds);
  char buffer[32];
  if (s >= 3600)
    std::snprintf(buffer, sizeof buffer, "%ld:%02ld:%02ld", s / 3600, (s / 60) % 60, s % 60);
  else
    std::snprintf(buffer, sizeof buffer, "%02ld:%02ld", s / 60, s % 60);
  return buffer;
}

void Progress::update(int done, const std::string& extra) {
  if (quiet_ || finished_) return;
  auto now = std::chrono::steady_clock::now();
  double since_print = std::chrono::duration<double>(now - last_print_).count();
  // Terminals redraw at most ~10 times a second; logs get a line every 10 s or at every 10%.
  bool due = tty_ ? since_print >= 0.1
                  : (since_print >= 10.0 || (done * 10 / total_) != (std::max(last_done_, 0) * 10 / total_));
  if (!due && done < total_ && last_done_ >= 0) return;
  draw(done, extra, false);
  last_print_ = now;
  last_done_ = done;
}

void Progress::finish(const std::string& extra) {
  if (quiet_ || finished_) return;
  draw(last_done_ < 0 ? total_ : std::max(last_done_, 0), extra, true);
  finished_ = true;
}

void Progress::draw(int done, const std::string& extra, bool final_line) {
  double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
  double rate = done > 0 && elapsed > 0 ? done / elapsed : 0.0;
  double eta = rate > 0 ? (total_ - done) / rate : NAN;
  char speed[32];
  if (rate >= 1.0 || rate == 0.0)
    std::snprintf(speed, sizeof speed, "%.2f it/s", rate);
  else
    std::snprintf(speed, sizeof speed, "%.2f s/it", 1.0 / rate);
  std::string tail = " " + std::to_string(done) + "/" + std::to_string(total_) + " [" + format_duration(elapsed) +
                     "<" + format_duration(eta) + ", " + speed + "]" + (extra.empty() ? "" : " " + extra);
  if (tty_) {
    const int width = 24;
    int filled = static_cast<int>(width * static_cast<double>(done) / total_);
    std::string bar(filled, '#');
    bar += std::string(width - filled, '.');
    std::fprintf(out_, "\r\033[K%s |%s|%s%s", label_.c_str(), bar.c_str(), tail.c_str(), final_line ? "\n" : "");
  } else {
    std::fprintf(out_, "%s%s\n", label_.c_str(), tail.c_str());
  }
  std::fflush(out_);
}

}  // namespace dreambooth
