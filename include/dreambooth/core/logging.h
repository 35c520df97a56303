// All logs go to stderr through spdlog; stdout is reserved for results (optionally JSON lines).
#pragma once

namespace dreambooth {

enum class Verbosity { Quiet, Normal, Verbose };

void setup_logging(Verbosity verbosity);

}  // namespace dreambooth
