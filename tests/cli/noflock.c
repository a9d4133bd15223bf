/* noflock.c - a preload for test_noflock.sh: flock fails as it does on a
 * file system without it (some NFS mounts, FUSE, CIFS: ENOLCK). */
#include <errno.h>
#include <sys/file.h>

int flock(int fd, int op)
{
    (void)fd, (void)op;
    errno = ENOLCK;
    return -1;
}
