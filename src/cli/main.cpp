// The one catch site: parses the command line, runs one subcommand, maps errors to exit codes.
#include <cstdio>
#include <new>
#include <vector>

#include <c10/util/Exception.h>
#include <spdlog/spdlog.h>

#include "command.h"
#include "dreambooth/core/cpu_allocator.h"
#include "dreambooth/core/error.h"
#include "dreambooth/core/interrupt.h"
#include "dreambooth/core/logging.h"
#include "dreambooth/core/runtime.h"

namespace {

constexpr const char* kExitCodes =
    "Exit codes: 0 ok, 1 internal error, 2 bad command line, 3 unreadable/corrupt/unsupported input, "
    "4 checkpoint does not fit (keys, shapes, family), 5 cannot write output, 6 NaN/Inf, 130 interrupted.";

std::string first_line(const std::string& text) {
  auto end = text.find('\n');
  return end == std::string::npos ? text : text.substr(0, end);
}

}  // namespace

int main(int argc, char** argv) {
  using namespace dreambooth;
  CLI::App app{"dreambooth: personalise Stable Diffusion from a few photos (DreamBooth), then sample from it."};
  app.footer(kExitCodes);
  app.require_subcommand(1);
  app.set_version_flag("--version", std::string("dreambooth ") + DREAMBOOTH_VERSION);

  cli::CommonOptions common;
  const std::vector<cli::CommandRegistration> commands = {
      cli::register_info_command,
      cli::register_init_command,
      cli::register_convert_command,
      cli::register_sample_command,
      cli::register_train_command,
      cli::register_tokens_command,
      cli::register_merge_lora_command,
      cli::register_version_command,
  };
  std::vector<std::pair<CLI::App*, cli::CommandRunner>> runners;
  for (auto registration : commands) {
    size_t before = app.get_subcommands({}).size();
    cli::CommandRunner runner = registration(app, common);
    runners.emplace_back(app.get_subcommands({}).at(before), runner);
  }

  try {
    app.parse(argc, argv);
  } catch (const CLI::CallForHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForAllHelp& e) {
    return app.exit(e);
  } catch (const CLI::CallForVersion& e) {
    return app.exit(e);
  } catch (const CLI::ParseError& e) {
    std::fprintf(stderr, "error: %s (see 'dreambooth --help')\n", first_line(e.what()).c_str());
    return exit_code(ErrorKind::Usage);
  }

  setup_logging(common.quiet ? Verbosity::Quiet : common.verbose ? Verbosity::Verbose : Verbosity::Normal);
  try {
    configure_threads(common.threads);
    install_caching_cpu_allocator();
    install_interrupt_handlers();
    for (auto& [command, runner] : runners)
      if (command->parsed()) return runner();
    return exit_code(ErrorKind::Usage);
  } catch (const Error& e) {
    spdlog::error("{}", e.what());
    return exit_code(e.kind());
  } catch (const std::bad_alloc&) {
    spdlog::error("out of memory (try a smaller --batch-size or resolution, or --dtype fp16 on a GPU)");
    return exit_code(ErrorKind::Runtime);
  } catch (const c10::Error& e) {
    spdlog::error("internal error in LibTorch: {}", first_line(e.what_without_backtrace()));
    return exit_code(ErrorKind::Runtime);
  } catch (const std::exception& e) {
    spdlog::error("internal error: {}", first_line(e.what()));
    return exit_code(ErrorKind::Runtime);
  }
}
