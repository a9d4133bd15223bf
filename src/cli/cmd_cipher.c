/* cmd_cipher.c - `ringattn cipher --data FILE [--bits b]`: the Bit Cipher
 * code of every byte value, from byte frequencies counted over FILE (each
 * rank counts its share; the counts are summed over ranks). */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "ringattn/cipher.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"

static const char *help =
    "usage: [mpirun -n P] ringattn cipher --data FILE [--bits b]\n"
    "\n"
    "Counts the bytes of FILE and prints one line per byte value: the value, its\n"
    "count, its frequency rank (0: most frequent; ties by smaller value) and its\n"
    "Bit Cipher code as a bit string of b bits (default floor(log2 256) + 1 = 9).\n"
    "A file that grows meanwhile is counted up to the smallest size a rank saw\n"
    "when it opened it; an empty file is refused.\n";

/* This rank's share of the first size bytes of the file open at fd. */
static ra_status count_share(const ra_cli *c, int fd, const char *path, int64_t size, int64_t counts[256])
{
    off_t a = (off_t)(size * c->rank / c->size), e = (off_t)(size * (c->rank + 1) / c->size);
    unsigned char buf[65536];
    ra_status st = RA_OK;
    while (st == RA_OK && a < e) {
        size_t n = (size_t)(e - a < (off_t)sizeof buf ? e - a : (off_t)sizeof buf);
        st = ra_pread_full(fd, path, buf, n, a);
        for (size_t i = 0; st == RA_OK && i < n; i++) counts[buf[i]]++;
        a += (off_t)n;
    }
    return st;
}

ra_status ra_cmd_cipher(ra_cli *c, int argc, char **argv)
{
    static const struct option opts[] = { { "data", required_argument, 0, 'd' }, { "bits", required_argument, 0, 'b' },
                                          { "help", no_argument, 0, 'h' },      { 0, 0, 0, 0 } };
    const char *data = NULL;
    int bits = 0, o;
    ra_status st = RA_OK;
    opterr = 0;
    optind = 1;
    while (st == RA_OK && (o = ra_getopt(argc, argv, ":h", opts)) != -1) {
        if (o == 'd') data = optarg;
        else if (o == 'b') st = ra_arg_int("--bits", optarg, 1, 30, &bits);
        else if (o == 'h') { ra_say(c, "%s", help); return RA_OK; }
        else st = ra_arg_unknown("cipher", o, argv[optind - 1]);
    }
    st = ra_arg_cmd("cipher", st);
    if (st == RA_OK) st = ra_arg_rest("cipher", argc, argv);
    if (st == RA_OK && !data) st = RA_FAIL(RA_ERR_ARG, "cipher: --data is required");
    const int b = ra_cipher_bits(256, bits);
    if (st == RA_OK && bits && bits < b)
        st = RA_FAIL(RA_ERR_ARG, "cipher: --bits %d: 256 byte values need at least %d bits", bits, b);
    int fd = -1;
    int64_t size = 0;
    if (st == RA_OK) st = ra_arg_cmd("cipher", ra_file_open_input(data, "--data", &fd, &size));
    RA_TRY(ra_agree(c->comm, st));
    /* one file on every rank (an MPMD launch counted a share of each, exit 0):
     * compared resolved, as train compares data.path */
    char real[PATH_MAX], text[PATH_MAX + 16];
    snprintf(text, sizeof text, "--data = %s\n", ra_path_for_ranks(data, real, sizeof real));
    st = ra_same_options(c, "cipher", text);
    if (st != RA_OK) {
        close(fd);
        return st;
    }
    /* one size for every rank's share: a file growing while the ranks open
     * it gave each rank another split (shares overlapped or left gaps) */
    st = ra_allreduce_named(MPI_IN_PLACE, &size, 1, MPI_INT64_T, MPI_MIN, c->comm, "the file size");
    if (st == RA_OK && size == 0)
        st = RA_FAIL(RA_ERR_ARG, "cipher: --data %s: the file is empty: there are no bytes to count", data);
    int64_t counts[256] = { 0 };
    if (st == RA_OK) st = ra_arg_cmd("cipher", count_share(c, fd, data, size, counts));
    close(fd);
    RA_TRY(ra_agree(c->comm, st));
    RA_TRY(ra_allreduce_named(MPI_IN_PLACE, counts, 256, MPI_INT64_T, MPI_SUM, c->comm, "the sum of byte counts"));
    int rank[256];
    uint32_t code[256];
    RA_TRY(ra_agree(c->comm, ra_cipher_assign(counts, 256, b, rank, code)));
    char buf[40];
    ra_say(c, "# byte count rank code (%d bits; %s)\n", b, data);
    for (int t = 0; t < 256; t++) ra_say(c, "%d %lld %d %s\n", t, (long long)counts[t], rank[t], ra_cipher_string(code[t], b, buf));
    return RA_OK;
}
