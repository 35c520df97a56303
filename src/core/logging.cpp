#include "dreambooth/core/logging.h"

#include <spdlog/sinks/stdout_color_sinks.h>
#include <spdlog/spdlog.h>

namespace dreambooth {

void setup_logging(Verbosity verbosity) {
  auto logger = spdlog::stderr_color_mt("dreambooth");
  logger->set_pattern("%^%l%$: %v");
  switch (verbosity) {
    case Verbosity::Quiet: logger->set_level(spdlog::level::warn); break;
    case Verbosity::Normal: logger->set_level(spdlog::level::info); break;
    case Verbosity::Verbose: logger->set_level(spdlog::level::debug); break;
  }
  spdlog::set_default_logger(logger);
}

}  // namespace dreambooth
