// The loss curve PNG: a few lines, ticks and labels drawn pixel by pixel.
#include <algorithm>
#include <array>
#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

#include "dreambooth/train/metrics.h"

namespace dreambooth::train {
namespace {

struct Rgb {
  uint8_t r, g, b;
};

constexpr Rgb kBackground{255, 255, 255};
constexpr Rgb kAxis{60, 60, 60};
constexpr Rgb kGrid{228, 228, 228};
constexpr Rgb kRaw{160, 190, 235};
constexpr Rgb kSmooth{20, 70, 170};
constexpr Rgb kPrior{235, 130, 40};

// 5x7 glyphs, one row per byte, bit 4 = leftmost column.
struct Glyph {
  char c;
  std::array<uint8_t, 7> rows;
};
constexpr Glyph kFont[] = {
    {'0', {0x0E, 0x11, 0x13, 0x15, 0x19, 0x11, 0x0E}}, {'1', {0x04, 0x0C, 0x04, 0x04, 0x04, 0x04, 0x0E}},
    {'2', {0x0E, 0x11, 0x01, 0x02, 0x04, 0x08, 0x1F}}, {'3', {0x1F, 0x02, 0x04, 0x02, 0x01, 0x11, 0x0E}},
    {'4', {0x02, 0x06, 0x0A, 0x12, 0x1F, 0x02, 0x02}}, {'5', {0x1F, 0x10, 0x1E, 0x01, 0x01, 0x11, 0x0E}},
    {'6', {0x06, 0x08, 0x10, 0x1E, 0x11, 0x11, 0x0E}}, {'7', {0x1F, 0x01, 0x02, 0x04, 0x08, 0x08, 0x08}},
    {'8', {0x0E, 0x11, 0x11, 0x0E, 0x11, 0x11, 0x0E}}, {'9', {0x0E, 0x11, 0x11, 0x0F, 0x01, 0x02, 0x0C}},
    {'.', {0x00, 0x00, 0x00, 0x00, 0x00, 0x0C, 0x0C}}, {'-', {0x00, 0x00, 0x00, 0x1F, 0x00, 0x00, 0x00}},
    {'+', {0x00, 0x04, 0x04, 0x1F, 0x04, 0x04, 0x00}}, {'e', {0x00, 0x00, 0x0E, 0x11, 0x1F, 0x10, 0x0E}},
    {'l', {0x0C, 0x04, 0x04, 0x04, 0x04, 0x04, 0x0E}}, {'o', {0x00, 0x00, 0x0E, 0x11, 0x11, 0x11, 0x0E}},
    {'s', {0x00, 0x00, 0x0F, 0x10, 0x0E, 0x01, 0x1E}}, {'i', {0x04, 0x00, 0x0C, 0x04, 0x04, 0x04, 0x0E}},
    {'n', {0x00, 0x00, 0x16, 0x19, 0x11, 0x11, 0x11}}, {'t', {0x08, 0x08, 0x1C, 0x08, 0x08, 0x09, 0x06}},
    {'a', {0x00, 0x00, 0x0E, 0x01, 0x0F, 0x11, 0x0F}}, {'c', {0x00, 0x00, 0x0E, 0x10, 0x10, 0x11, 0x0E}},
    {'p', {0x00, 0x00, 0x1E, 0x11, 0x1E, 0x10, 0x10}}, {'r', {0x00, 0x00, 0x16, 0x19, 0x10, 0x10, 0x10}},
    {'v', {0x00, 0x00, 0x11, 0x11, 0x11, 0x0A, 0x04}}, {'g', {0x00, 0x00, 0x0F, 0x11, 0x0F, 0x01, 0x0E}},
};

class Canvas {
 public:
  Canvas(int width, int height) : image_{width, height, std::vector<uint8_t>(size_t(width) * height * 3)} {
    fill_rect(0, 0, width, height, kBackground);
  }
  io::Image& image() { return image_; }

  void set(int x, int y, Rgb c) {
    if (x < 0 || y < 0 || x >= image_.width || y >= image_.height) return;
    uint8_t* p = &image_.pixels[(size_t(y) * image_.width + x) * 3];
    p[0] = c.r;
    p[1] = c.g;
    p[2] = c.b;
  }
  void fill_rect(int x0, int y0, int w, int h, Rgb c) {
    for (int y = y0; y < y0 + h; ++y)
      for (int x = x0; x < x0 + w; ++x) set(x, y, c);
  }
  // Bresenham, `thickness` pixels wide (square pen).
  void line(int x0, int y0, int x1, int y1, Rgb c, int thickness = 1) {
    const int dx = std::abs(x1 - x0), sx = x0 < x1 ? 1 : -1;
    const int dy = -std::abs(y1 - y0), sy = y0 < y1 ? 1 : -1;
    int err = dx + dy;
    for (;;) {
      fill_rect(x0 - thickness / 2, y0 - thickness / 2, thickness, thickness, c);
      if (x0 == x1 && y0 == y1) break;
      const int e2 = 2 * err;
      if (e2 >= dy) { err += dy; x0 += sx; }
      if (e2 <= dx) { err += dx; y0 += sy; }
    }
  }
  // Text with its top-left corner at (x, y); unknown characters leave a gap.
  void text(int x, int y, const std::string& s, Rgb c, int scale = 1) {
    for (char ch : s) {
      for (const Glyph& g : kFont) {
        if (g.c != ch) continue;
        for (int row = 0; row < 7; ++row)
          for (int col = 0; col < 5; ++col)
            if (g.rows[row] & (0x10 >> col)) fill_rect(x + col * scale, y + row * scale, scale, scale, c);
      }
      x += 6 * scale;
    }
  }
  static int text_width(const std::string& s, int scale = 1) { return static_cast<int>(s.size()) * 6 * scale; }

 private:
  io::Image image_;
};

std::string format_number(double v) {
  char buffer[32];
  std::snprintf(buffer, sizeof buffer, "%.3g", v);
  return buffer;
}

}  // namespace

io::Image render_loss_plot(const std::vector<StepMetrics>& history, int width, int height) {
  Canvas canvas(width, height);
  const int left = 64, right = 16, top = 28, bottom = 36;
  const int plot_w = width - left - right, plot_h = height - top - bottom;

  // Ranges: steps as given; loss from 0 to a little above the 99th percentile (one spike does not flatten
  // the curve; clipped values are drawn at the top edge).
  std::vector<double> values;
  for (const auto& m : history) {
    if (std::isfinite(m.loss)) values.push_back(m.loss);
    if (m.prior_loss && std::isfinite(*m.prior_loss)) values.push_back(*m.prior_loss);
  }
  double y_max = 1.0;
  if (!values.empty()) {
    std::sort(values.begin(), values.end());
    y_max = values[std::min(values.size() - 1, static_cast<size_t>(0.99 * values.size()))] * 1.1;
    if (!(y_max > 0)) y_max = 1.0;
  }
  const int first_step = history.empty() ? 0 : history.front().step;
  const int last_step = history.empty() ? 1 : std::max(history.back().step, first_step + 1);
  auto px = [&](double step) {
    return left + static_cast<int>(std::lround((step - first_step) / (last_step - first_step) * (plot_w - 1)));
  };
  auto py = [&](double v) {
    const double clipped = std::clamp(v, 0.0, y_max);
    return top + plot_h - 1 - static_cast<int>(std::lround(clipped / y_max * (plot_h - 1)));
  };

  // --- grid, ticks and labels
  const int ticks = 5;
  for (int i = 0; i <= ticks; ++i) {
    const double v = y_max * i / ticks;
    const int y = py(v);
    canvas.line(left, y, left + plot_w - 1, y, kGrid);
    const std::string label = format_number(v);
    canvas.text(left - 6 - Canvas::text_width(label), y - 3, label, kAxis);
    const double s = first_step + (last_step - first_step) * static_cast<double>(i) / ticks;
    const int x = px(s);
    canvas.line(x, top, x, top + plot_h - 1, kGrid);
    const std::string step_label = std::to_string(static_cast<long>(std::lround(s)));
    canvas.text(x - Canvas::text_width(step_label) / 2, top + plot_h + 6, step_label, kAxis);
  }
  canvas.line(left, top, left, top + plot_h - 1, kAxis);
  canvas.line(left, top + plot_h - 1, left + plot_w - 1, top + plot_h - 1, kAxis);
  canvas.text(left + plot_w / 2 - Canvas::text_width("step") / 2, height - 14, "step", kAxis);

  // --- curves: raw loss, prior loss, then the moving average on top
  auto polyline = [&](auto value_of, Rgb color, int thickness) {
    bool have_previous = false;
    int x_prev = 0, y_prev = 0;
    for (const auto& m : history) {
      const std::optional<double> v = value_of(m);
      if (!v || !std::isfinite(*v)) { have_previous = false; continue; }
      const int x = px(m.step), y = py(*v);
      if (have_previous) canvas.line(x_prev, y_prev, x, y, color, thickness);
      else canvas.set(x, y, color);
      x_prev = x;
      y_prev = y;
      have_previous = true;
    }
  };
  polyline([](const StepMetrics& m) { return std::optional<double>(m.loss); }, kRaw, 1);
  polyline([](const StepMetrics& m) { return m.prior_loss; }, kPrior, 1);
  double average = history.empty() ? 0 : history.front().loss;
  const double alpha = history.size() > 50 ? 0.05 : 0.2;
  std::vector<StepMetrics> smoothed = history;
  for (auto& m : smoothed) {
    if (std::isfinite(m.loss)) average = alpha * m.loss + (1 - alpha) * average;
    m.loss = average;
  }
  for (size_t i = 1; i < smoothed.size(); ++i)
    canvas.line(px(smoothed[i - 1].step), py(smoothed[i - 1].loss), px(smoothed[i].step), py(smoothed[i].loss), kSmooth, 2);

  // --- legend
  int x = left + 8;
  const int y = 8;
  auto legend = [&](const std::string& name, Rgb color) {
    canvas.fill_rect(x, y + 2, 14, 3, color);
    canvas.text(x + 18, y, name, kAxis);
    x += 18 + Canvas::text_width(name) + 16;
  };
  legend("loss", kRaw);
  legend("avg", kSmooth);
  if (std::any_of(history.begin(), history.end(), [](const StepMetrics& m) { return m.prior_loss.has_value(); }))
    legend("prior", kPrior);
  return canvas.image();
}

void save_loss_plot(const std::filesystem::path& path, const std::vector<StepMetrics>& history) {
  io::save_png(path, render_loss_plot(history));
}

}  // namespace dreambooth::train
