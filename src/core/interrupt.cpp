#include "dreambooth/core/interrupt.h"

#include <csignal>
#include <unistd.h>

namespace dreambooth {
namespace {

volatile std::sig_atomic_t g_interrupted = 0;

extern "C" void on_signal(int signal_number) {
  if (g_interrupted) {
    // A second Ctrl-C means "now": leave without saving, with the conventional code.
    _exit(128 + signal_number);
  }
  g_interrupted = 1;
}

}  // namespace

void install_interrupt_handlers() {
  struct sigaction action {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  sigaction(SIGINT, &action, nullptr);
  sigaction(SIGTERM, &action, nullptr);
}

bool interrupt_requested() { return g_interrupted != 0; }
void request_interrupt() { g_interrupted = 1; }
void clear_interrupt() { g_interrupted = 0; }

}  // namespace dreambooth
