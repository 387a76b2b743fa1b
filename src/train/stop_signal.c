/* stop_signal.c: record SIGTERM / SIGINT / SIGUSR1 for the training loop to act on. */
#include "stop_signal.h"

#include <signal.h>
#include <string.h>
#include <unistd.h>

static volatile sig_atomic_t pending = 0;

static void on_signal(int sig) {
    if (sig == SIGINT && pending == SIGINT) _exit(130); /* second Ctrl-C: leave now */
    pending = sig;
}

void stop_signal_install(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sa.sa_flags = SA_RESTART;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGUSR1, &sa, NULL);
}

int stop_signal_pending(void) { return pending; }
