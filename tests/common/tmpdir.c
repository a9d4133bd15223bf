/* tmpdir.c - see tmpdir.h. */
#include "tmpdir.h"

#include <errno.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int tmpdir_make(char *dir, const char *prefix)
{
    const char *base = getenv("TMPDIR");
    if (!base || !*base) base = "/tmp";
    int n = snprintf(dir, TMPDIR_CAP, "%s/%s.XXXXXX", base, prefix);
    if (n < 0 || n >= TMPDIR_CAP) {
        fprintf(stderr, "tmpdir_make: path too long under %s\n", base);
        errno = ENAMETOOLONG;
        return -1;
    }
    if (!mkdtemp(dir)) {
        fprintf(stderr, "tmpdir_make: mkdtemp %s: %s\n", dir, strerror(errno));
        return -1;
    }
    return 0;
}

char *tmpdir_path(char *out, const char *dir, const char *name)
{
    int n = snprintf(out, TMPDIR_CAP, "%s/%s", dir, name);
    if (n < 0 || n >= TMPDIR_CAP) {
        fprintf(stderr, "tmpdir_path: %s/%s is too long\n", dir, name);
        abort();
    }
    return out;
}

static int remove_one(const char *path, const struct stat *st, int type, struct FTW *ftw)
{
    (void)st, (void)type, (void)ftw;
    if (remove(path) != 0) {
        fprintf(stderr, "tmpdir_remove: %s: %s\n", path, strerror(errno));
        return -1;
    }
    return 0;
}

int tmpdir_remove(const char *dir)
{
    /* depth first (children before their directory), never following links */
    return nftw(dir, remove_one, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}
