/* test_isa.c - which copy of the kernels a process runs (ringattn/isa.h).
 *
 *   test_isa                        the choice itself: without RINGATTN_ISA,
 *                                   with a level, with an unknown name (each
 *                                   in a process of its own: the choice is
 *                                   made once per process)
 *   test_isa LEVEL PROGRAM [ARG...] checks that RINGATTN_ISA=LEVEL makes a
 *                                   process run LEVEL, then runs PROGRAM with
 *                                   it (meson's "isa" suite: the kernel tests
 *                                   once per level); exit 77 (skipped) when
 *                                   the CPU cannot run LEVEL
 * Exit status 0 when every check holds, 1 (with file:line) when one fails. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "ringattn/isa.h"

#define CHECK(cond, ...)                                                   \
    do {                                                                   \
        if (!(cond)) {                                                     \
            fprintf(stderr, "%s:%d: check failed: %s: ", __FILE__, __LINE__, #cond); \
            fprintf(stderr, __VA_ARGS__);                                  \
            fputc('\n', stderr);                                           \
            exit(1);                                                       \
        }                                                                  \
    } while (0)

static int known_name(const char *s)
{
    const char *names[] = { "native", "generic", "x86-64", "x86-64-v3", "x86-64-v4" };
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        if (!strcmp(s, names[i])) return 1;
    return 0;
}

/* one copy per level: a -Dnative=false build on x86-64 */
static int dispatching(void) { return strncmp(ra_kernel_isa(), "x86-64", 6) == 0; }

/* This process, started with RINGATTN_ISA=want: runs want, or says why not. */
static int child(const char *want)
{
    const char *isa = ra_kernel_isa(), *problem = ra_kernel_isa_problem();
    if (!strcmp(want, "bogus")) {
        CHECK(problem && strstr(problem, "RINGATTN_ISA=bogus"), "problem: %s", problem ? problem : "(none)");
        CHECK(known_name(isa), "runs '%s' after the refused request", isa);
        return 0;
    }
    if (!dispatching()) { /* one copy: any request is refused, naming the build */
        CHECK(problem && strstr(problem, "one copy"), "problem: %s", problem ? problem : "(none)");
        return 0;
    }
    if (problem && strstr(problem, "cannot run")) return 77;
    CHECK(!problem, "RINGATTN_ISA=%s: %s", want, problem);
    CHECK(!strcmp(isa, want), "RINGATTN_ISA=%s runs %s", want, isa);
    return 0;
}

static const char *self; /* argv[0]: under valgrind /proc/self/exe is valgrind's */

/* status of this program run again as `test_isa --child WANT` with RINGATTN_ISA=WANT */
static int run_child(const char *want)
{
    pid_t pid = fork();
    CHECK(pid >= 0, "fork");
    if (pid == 0) {
        setenv("RINGATTN_ISA", want, 1);
        execl(self, self, "--child", want, (char *)NULL);
        _exit(127);
    }
    int status;
    CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
    CHECK(WIFEXITED(status), "child for %s died", want);
    return WEXITSTATUS(status);
}

int main(int argc, char **argv)
{
    self = argv[0];
    if (argc == 3 && !strcmp(argv[1], "--child")) return child(argv[2]);
    if (argc >= 3) { /* LEVEL PROGRAM [ARG...] */
        int rc = run_child(argv[1]);
        if (rc != 0) return rc;
        setenv("RINGATTN_ISA", argv[1], 1);
        execv(argv[2], argv + 2);
        perror(argv[2]);
        return 1;
    }
    CHECK(argc == 1, "usage: test_isa [LEVEL PROGRAM [ARG...]]");
    unsetenv("RINGATTN_ISA");
    CHECK(known_name(ra_kernel_isa()), "runs '%s'", ra_kernel_isa());
    CHECK(ra_kernel_isa_problem() == NULL, "no request, yet: %s", ra_kernel_isa_problem());
    printf("kernels: %s\n", ra_kernel_isa());
    CHECK(run_child("bogus") == 0, "an unknown level");
    const char *levels[] = { "x86-64", "x86-64-v3", "x86-64-v4" };
    for (int i = 0; i < 3; i++) {
        int rc = run_child(levels[i]);
        CHECK(rc == 0 || rc == 77, "RINGATTN_ISA=%s (status %d)", levels[i], rc);
        printf("RINGATTN_ISA=%s: %s\n", levels[i],
               !dispatching() ? "refused (one copy)" : rc == 77 ? "not run by this CPU" : "runs it");
        /* a CPU runs every level below the best one it runs */
        if (dispatching() && !strcmp(levels[i], ra_kernel_isa())) CHECK(rc == 0, "the best level %s", levels[i]);
    }
    return 0;
}
