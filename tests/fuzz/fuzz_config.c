/* fuzz_config.c: libFuzzer target for the INI config parser and validation. Every rejection
 * goes through die(), which the hook turns into a longjmp back here, checking that a message
 * was produced. Any crash or sanitizer report is a finding. */
#include <setjmp.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "util.h"

static jmp_buf back;
static int died;
static char *round1, *round2; /* freed after a longjmp too */

static void on_die(const char *message) {
    if (!message[0]) abort();
    died = 1;
    longjmp(back, 1);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *text = malloc(size + 1);
    memcpy(text, data, size);
    text[size] = 0; /* a NUL inside the input simply ends the text */
    die_hook = on_die;
    died = 0;
    Config cfg;
    config_defaults(&cfg);
    round1 = round2 = NULL;
    if (!setjmp(back)) {
        config_load_text(&cfg, text, "fuzz");
        config_validate(&cfg, "fuzz");
        round1 = config_text(&cfg); /* a valid config writes out and reads back equal */
        Config again;
        config_defaults(&again);
        died = 0;
        config_load_text(&again, round1, "fuzz round trip");
        round2 = config_text(&again);
        if (strcmp(round1, round2)) abort();
    } else if (round1) {
        abort(); /* the written config of a valid one was rejected */
    }
    free(round1);
    free(round2);
    free(text);
    return 0;
}
