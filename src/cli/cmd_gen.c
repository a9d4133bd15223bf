/* cmd_gen.c - `ringattn gen`: random attention inputs as .npy files.
 *
 * Element i of tensor t is ra_rand_uniform(seed * 8 + t, i), so each rank
 * generates and writes only its own slab and the files do not depend on the
 * number of ranks. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <stdlib.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/mem.h"
#include "ringattn/rng.h"

static const char *help =
    "usage: [mpirun -n P] ringattn gen --dir DIR [--B 1] [--H 4] [--Hkv H] --L N [--D 64]\n"
    "                       [--seed 1] [--segments N]\n"
    "\n"
    "Writes DIR/q.npy [B, H, L, D], DIR/k.npy and DIR/v.npy [B, Hkv, L, D] and\n"
    "DIR/dout.npy (like q), uniform in [-1, 1), float32; with --segments N also\n"
    "DIR/seg.npy int32 [B, L] with N segments per sequence (without, an earlier\n"
    "set's DIR/seg.npy is removed). Without --B the\n"
    "arrays are 3-D ([H, L, D]). L accepts K/M suffixes (x1024). DIR is created\n"
    "if missing (its parent must exist); it and every output in it are checked\n"
    "for writing before anything is generated.\n";

/* The files gen writes into DIR; a random one draws stream seed * 8 + index. */
enum { GEN_Q, GEN_K, GEN_V, GEN_DOUT, GEN_SEG, GEN_FILES };
static const char *const gen_files[GEN_FILES] = { "q.npy", "k.npy", "v.npy", "dout.npy", "seg.npy" };

/* The files are staged at "<path>.tmp" and renamed together at the end
 * (ra_outputs_finish): a failure (a full disk at dout.npy) leaves every
 * earlier set in DIR whole, never a new q.npy beside an old k.npy. */
static ra_status stage_random(const ra_cli *c, const char *path, uint64_t stream, int ndim,
                              const int64_t *shape, int64_t outer, int64_t L, int64_t inner)
{
    ra_slab s = { outer, L, inner, RA_LAYOUT_CONTIGUOUS, c->size, c->rank };
    int64_t Lr = ra_layout_count(s.layout, L, c->size, c->rank);
    int64_t g0 = ra_layout_global(s.layout, L, c->size, c->rank, 0);
    float *x;
    RA_TRY(ra_agree(c->comm, ra_alloc(&x, sizeof(float) * outer * Lr * inner, path)));
    for (int64_t o = 0; o < outer; o++)
        for (int64_t i = 0; i < Lr * inner; i++)
            x[o * Lr * inner + i] = ra_rand_uniform(stream, (uint64_t)((o * L + g0) * inner + i));
    ra_status st = ra_slab_write_partial(c->comm, path, ndim, shape, &s, x);
    free(x);
    return st;
}

/* Rank 0, before generating: DIR exists (created when missing) and takes
 * new files, and no output name in it is a directory. */
static ra_status prepare_dir(const char *dir, int nseg)
{
    RA_TRY(ra_prepare_output_dir(dir, "gen: --dir"));
    char paths[GEN_FILES][2048];
    const char *all[GEN_FILES];
    const int n = nseg ? GEN_FILES : GEN_SEG;
    for (int i = 0; i < n; i++) ra_join_path(paths[i], sizeof paths[i], dir, gen_files[i]), all[i] = paths[i];
    char what[2100];
    snprintf(what, sizeof what, "gen: --dir %s", dir);
    RA_TRY(ra_check_leftover_tmps(what, all, n));
    for (int i = 0; i < n; i++) {
        const char *path = paths[i];
        RA_TRY(ra_check_output_fresh(path, "gen: output"));
        RA_TRY(ra_check_output_path(path, "gen: output"));
    }
    /* without --segments an earlier set's seg.npy goes with it (old_segments):
     * only a file or a link can, anything else is refused here */
    struct stat sb;
    ra_join_path(paths[GEN_SEG], sizeof paths[GEN_SEG], dir, gen_files[GEN_SEG]);
    if (!nseg && lstat(paths[GEN_SEG], &sb) == 0 && !S_ISREG(sb.st_mode) && !S_ISLNK(sb.st_mode))
        return RA_FAIL(RA_ERR_IO, "gen: --dir %s: %s is %s, where an earlier set's segments would be (this set has "
                       "none; they are removed with it): remove it, or give --segments", dir, paths[GEN_SEG],
                       ra_file_kind(sb.st_mode));
    return RA_OK;
}

/* Rank 0, after a set without --segments replaced the files: the earlier
 * set's seg.npy (a file, or a link, not its target) would sit beside q, k,
 * v and dout it does not belong to, and attn --segments read it with them. */
static void old_segments(const char *dir, const char *shown)
{
    char path[2048];
    struct stat sb;
    ra_join_path(path, sizeof path, dir, gen_files[GEN_SEG]);
    if (lstat(path, &sb) != 0) return;
    if (unlink(path) == 0)
        printf("gen: removed %s%s%s, the segments of the set replaced (this one has none)\n", shown,
               strcmp(shown, "/") ? "/" : "", gen_files[GEN_SEG]);
    else
        fprintf(stderr, "ringattn: warning: gen: %s is an earlier set's segments and could not be removed: %s; "
                        "remove it before attn --segments reads it with this set\n", path, strerror(errno));
}

static ra_status stage_segments(const ra_cli *c, const char *path, int B, int64_t L, int nseg)
{
    ra_status st = RA_OK;
    if (c->rank == 0) { /* int32 [B, L]: small next to the float tensors */
        int32_t *s;
        st = ra_alloc(&s, sizeof(int32_t) * B * L, "segment ids");
        if (st == RA_OK) {
            for (int b = 0; b < B; b++) /* segments shift with b so they cross ranks differently */
                for (int64_t i = 0; i < L; i++)
                    s[b * L + i] = (int32_t)(((i + b * (L / (2 * nseg))) * nseg) / L) % nseg;
            int64_t shape[2] = { B, L };
            st = ra_npy_stage_i32(path, 2, shape, s);
            free(s);
        }
    }
    return ra_agree(c->comm, st);
}

ra_status ra_cmd_gen(ra_cli *c, int argc, char **argv)
{
    enum { O_DIR = 256, O_B, O_H, O_HKV, O_L, O_D, O_SEED, O_SEG, O_HELP };
    static const struct option opts[] = {
        { "dir", required_argument, 0, O_DIR }, { "B", required_argument, 0, O_B },
        { "H", required_argument, 0, O_H },     { "Hkv", required_argument, 0, O_HKV },
        { "L", required_argument, 0, O_L },     { "D", required_argument, 0, O_D },
        { "seed", required_argument, 0, O_SEED }, { "segments", required_argument, 0, O_SEG },
        { "help", no_argument, 0, O_HELP },     { 0, 0, 0, 0 },
    };
    const char *dir = NULL;
    int B = 0, H = 4, Hkv = 0, D = 64, seed = 1, nseg = 0, c_;
    int64_t L = 0;
    ra_status st = RA_OK;
    opterr = 0;
    optind = 1;
    while (st == RA_OK && (c_ = ra_getopt(argc, argv, ":h", opts)) != -1) {
        switch (c_) {
        case O_DIR: dir = optarg; break;
        case O_B: st = ra_arg_int("--B", optarg, 1, 1 << 20, &B); break;
        case O_H: st = ra_arg_int("--H", optarg, 1, 1 << 16, &H); break;
        case O_HKV: st = ra_arg_int("--Hkv", optarg, 1, 1 << 16, &Hkv); break;
        case O_L: st = ra_arg_size("--L", optarg, 1, &L); break;
        case O_D: st = ra_arg_int("--D", optarg, 1, 1 << 16, &D); break;
        case O_SEED: st = ra_arg_int("--seed", optarg, 0, 1 << 30, &seed); break;
        case O_SEG: st = ra_arg_int("--segments", optarg, 1, 1 << 30, &nseg); break;
        case 'h':
        case O_HELP: ra_say(c, "%s", help); return RA_OK;
        default: st = ra_arg_unknown("gen", c_, argv[optind - 1]);
        }
    }
    st = ra_arg_cmd("gen", st);
    if (st == RA_OK) st = ra_arg_rest("gen", argc, argv);
    if (st == RA_OK && (!dir || L == 0)) /* the one missing, or both */
        st = RA_FAIL(RA_ERR_ARG, "gen: %s required (see ringattn gen --help)",
                     dir ? "--L is" : L ? "--dir is" : "--dir and --L are");
    /* every output's temporary, DIR/dout.npy.tmp at the longest, fits a path
     * buffer (past it the refusal came late, cut short, without its reason) */
    const size_t longest = strlen("/dout.npy" RA_TMP_SUFFIX);
    if (st == RA_OK && strlen(dir) + longest > RA_PATH_MAX - 1)
        st = RA_FAIL(RA_ERR_ARG, "gen: --dir %.60s...: the path is %zu bytes long; at most %zu are allowed (the "
                     "outputs' temporaries, DIR/dout.npy.tmp, must fit in %d bytes)", dir, strlen(dir),
                     (size_t)(RA_PATH_MAX - 1) - longest, RA_PATH_MAX - 1);
    if (st == RA_OK && Hkv == 0) Hkv = H;
    if (st == RA_OK && H % Hkv != 0)
        st = RA_FAIL(RA_ERR_ARG, "gen: --Hkv %d must divide --H %d", Hkv, H);
    if (st == RA_OK && L < c->size)
        st = RA_FAIL(RA_ERR_ARG, "gen: --L %lld is shorter than the %d ranks", (long long)L, c->size);
    if (st == RA_OK && nseg > L) st = RA_FAIL(RA_ERR_ARG, "gen: --segments %d exceeds --L", nseg);
    /* a rank holds one tensor at a time, q its largest: refused before any
     * file is made when it cannot fit this machine's memory (--L 1G asked
     * malloc for 1 TiB and left an empty --dir) */
    const double per_rank = 4.0 * (B > 0 ? B : 1) * H * D * ((double)L / c->size + 1);
    const double phys = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    if (st == RA_OK && phys > 0 && per_rank > phys)
        st = RA_FAIL(RA_ERR_ARG, "gen: --L %lld: q alone is %.3g GiB on each of the %d ranks, more than this "
                     "machine's %.3g GiB of memory", (long long)L, per_rank / 1073741824.0, c->size,
                     phys / 1073741824.0);
    /* the values, against rank 0's: an MPMD launch with another --seed wrote
     * a mix of both seeds under one header (collective, so agreed first) */
    st = ra_agree(c->comm, st);
    if (st == RA_OK) {
        char text[256];
        snprintf(text, sizeof text, "--B = %d\n--H = %d\n--Hkv = %d\n--L = %lld\n--D = %d\n--seed = %d\n"
                 "--segments = %d\n", B, H, Hkv, (long long)L, D, seed, nseg);
        st = ra_same_options(c, "gen", text);
    }
    /* a failed gen leaves no directory it made (rank 0 makes it) */
    struct stat sb;
    const int made = st == RA_OK && c->rank == 0 && stat(dir, &sb) != 0;
    if (st == RA_OK && c->rank == 0) st = prepare_dir(dir, nseg);
    st = ra_agree(c->comm, st);
    if (st != RA_OK && made) (void)rmdir(dir);
    RA_TRY(st);
    if (made) ra_atomic_cleanup_dir(dir);

    int four = B > 0, Bn = four ? B : 1;
    int64_t qs[4] = { Bn, H, L, D }, ks[4] = { Bn, Hkv, L, D };
    const int64_t *qshape = four ? qs : qs + 1, *kshape = four ? ks : ks + 1;
    int nd = four ? 4 : 3;
    uint64_t s8 = (uint64_t)seed * 8;
    char paths[GEN_FILES][2048];
    const char *staged[GEN_FILES];
    const int nfiles = nseg ? GEN_FILES : GEN_SEG;
    for (int i = 0; i < nfiles; i++) {
        ra_join_path(paths[i], sizeof paths[i], dir, gen_files[i]);
        staged[i] = paths[i];
    }
    for (int i = 0; st == RA_OK && i < GEN_SEG; i++) {
        const int q = i == GEN_Q || i == GEN_DOUT; /* [B, H, L, D]; k and v [B, Hkv, L, D] */
        st = stage_random(c, paths[i], s8 + (uint64_t)i, nd, q ? qshape : kshape, (int64_t)Bn * (q ? H : Hkv), L, D);
    }
    if (st == RA_OK && nseg) st = stage_segments(c, paths[GEN_SEG], Bn, L, nseg);
    st = ra_outputs_finish(c->comm, staged, nfiles, st);
    if (st != RA_OK && made) (void)rmdir(dir); /* the staged files are gone: empty */
    ra_atomic_cleanup_dir(NULL);
    RA_TRY(ra_arg_cmd("gen", st));
    char shown[RA_PATH_MAX];
    snprintf(shown, sizeof shown, "%s", dir);
    ra_trim_slashes(shown); /* "d2//" wrote d2/q.npy: said so, not d2///{q,...} */
    ra_say(c, "gen: wrote %s%s{q,k,v,dout%s}.npy  B=%d H=%d Hkv=%d L=%lld D=%d seed=%d\n", shown,
           strcmp(shown, "/") ? "/" : "",
           nseg ? ",seg" : "", Bn, H, Hkv, (long long)L, D, seed);
    if (!nseg && c->rank == 0) old_segments(dir, shown);
    return ra_stdout_finish(c);
}
