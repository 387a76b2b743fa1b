/* death.h: for tests of die(): run a function in a child process and check that it exits with
 * status 1 after writing exactly one line to stderr that holds every given needle. Header-only
 * (static functions) because only tests/test_*.c are built as programs. */
#ifndef DDPM_TEST_DEATH_H
#define DDPM_TEST_DEATH_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

/* fn(ctx) runs in the child; if it returns (nothing died), the child exits 0 and the parent's
 * status check fails. */
static void expect_one_line_death(void (*fn)(const void *ctx), const void *ctx, int nneedles,
                                  ...) {
    int fds[2];
    assert_int_equal(pipe(fds), 0);
    fflush(stdout);
    fflush(stderr);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(fds[0]);
        dup2(fds[1], 2);
        fn(ctx);
        _exit(0);
    }
    close(fds[1]);
    char msg[2048] = {0};
    size_t len = 0;
    ssize_t got;
    while (len < sizeof msg - 1 && (got = read(fds[0], msg + len, sizeof msg - 1 - len)) > 0)
        len += (size_t)got;
    close(fds[0]);
    int status = 0;
    waitpid(pid, &status, 0);
    printf("  child said: %s", msg);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_int_equal(strncmp(msg, "ddpm: ", 6), 0);
    char *nl = strchr(msg, '\n');
    assert_non_null(nl);
    assert_int_equal(nl[1], '\0'); /* exactly one line: library error stacks stay quiet */
    va_list ap;
    va_start(ap, nneedles);
    for (int i = 0; i < nneedles; i++) {
        const char *needle = va_arg(ap, const char *);
        if (!strstr(msg, needle)) fail_msg("message lacks \"%s\"", needle);
    }
    va_end(ap);
}

#endif
