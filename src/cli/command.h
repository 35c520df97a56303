// What every subcommand shares: common flags and the registration signature.
#pragma once

#include <functional>
#include <memory>
#include <string>

#include <CLI/CLI.hpp>

namespace dreambooth::cli {

struct CommonOptions {
  int threads = 0;  // 0 = all cores
  bool quiet = false;
  bool verbose = false;
};

// Runs the chosen command after parsing; returns the process exit code.
using CommandRunner = std::function<int()>;

// Adds --threads/--quiet/--verbose to a subcommand.
void add_common_options(CLI::App& command, CommonOptions& common);

// Each command file registers its subcommand and returns what to run when it is chosen.
using CommandRegistration = CommandRunner (*)(CLI::App& app, CommonOptions& common);

CommandRunner register_version_command(CLI::App& app, CommonOptions& common);
CommandRunner register_convert_command(CLI::App& app, CommonOptions& common);
CommandRunner register_info_command(CLI::App& app, CommonOptions& common);
CommandRunner register_init_command(CLI::App& app, CommonOptions& common);
CommandRunner register_sample_command(CLI::App& app, CommonOptions& common);
CommandRunner register_train_command(CLI::App& app, CommonOptions& common);
CommandRunner register_tokens_command(CLI::App& app, CommonOptions& common);
CommandRunner register_merge_lora_command(CLI::App& app, CommonOptions& common);

}  // namespace dreambooth::cli
