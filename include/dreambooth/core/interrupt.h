// Ctrl-C (SIGINT) and SIGTERM set a flag; long loops check it once per step and stop cleanly.
#pragma once

namespace dreambooth {

void install_interrupt_handlers();
bool interrupt_requested();
void request_interrupt();  // for tests
void clear_interrupt();    // for tests

}  // namespace dreambooth
