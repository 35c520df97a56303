#include "command.h"

#include <torch/torch.h>

#include "dreambooth/core/torch_compat.h"

namespace dreambooth::cli {

void add_common_options(CLI::App& command, CommonOptions& common) {
  command.add_option("--threads", common.threads, "CPU threads (default: all cores)")->check(CLI::NonNegativeNumber);
  command.add_flag("-q,--quiet", common.quiet, "only warnings and errors on stderr; no progress");
  command.add_flag("-v,--verbose", common.verbose, "debug logging");
}

CommandRunner register_version_command(CLI::App& app, CommonOptions& common) {
  CLI::App* command = app.add_subcommand("version", "print the version, LibTorch version and devices");
  add_common_options(*command, common);
  return [] {
    std::printf("dreambooth %s\nlibtorch %s\ncuda %s\nthreads %d\n", DREAMBOOTH_VERSION,
                torch_version_string().c_str(), cuda_available() ? "available" : "not available",
                torch::get_num_threads());
    return 0;
  };
}

}  // namespace dreambooth::cli
