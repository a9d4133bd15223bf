/* cmd_llama.c - `ringattn export` and `ringattn import`: a checkpoint to and
 * from a Hugging Face Llama model directory (llama.h, docs/design.md §14).
 *
 * Both run as one process: on P > 1 ranks they are refused at once (rank 0
 * would work alone for minutes while the others wait under the peer
 * timeout). The files are checked before any work, as every command does
 * (io_checks.c): the inputs are regular files, no output is an input. */
#include <getopt.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cli.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/llama.h"
#include "ringattn/safetensors.h"
#include "session.h"

static const char *export_help =
    "usage: ringattn export --checkpoint CKPT|DIR --out DIR\n"
    "\n"
    "Writes the parameters of a checkpoint (DIR: DIR/last.ckpt) as a Hugging Face\n"
    "Llama model: OUT/model.safetensors (float32) and OUT/config.json\n"
    "(LlamaForCausalLM: the tensor names, layouts and config keys of the Llama\n"
    "convention of transformers). The rows of q_proj and k_proj are permuted\n"
    "from ringattn's interleaved RoPE pairs to Llama's half-split ones. Refused:\n"
    "model.ffn = gelu, Combiner heads, preconditioners (no Llama equivalent).\n"
    "max_position_embeddings is the checkpoint's data.seq_len. One process\n"
    "(no mpirun, or -n 1).\n";

static const char *import_help =
    "usage: ringattn import --from DIR --out CKPT [--set SEC.KEY=VAL]...\n"
    "\n"
    "Reads a Hugging Face Llama model: DIR/config.json and DIR/model.safetensors\n"
    "or DIR/model.safetensors.index.json with its shards (F32, F16 or BF16, read\n"
    "as float32), and writes a ringattn checkpoint at step 0 that eval, diag,\n"
    "generate and train --resume load on any number of ranks. The model keys come\n"
    "from config.json; --set may change the train, data and run keys (and\n"
    "model.ffn_block); data.seq_len is the default, not max_position_embeddings.\n"
    "Refused, naming the key or tensor: rope_scaling, attention or MLP biases,\n"
    "an activation other than silu, missing, extra or misshapen tensors,\n"
    "non-finite weights. One process (no mpirun, or -n 1).\n";

/* One process only. */
static ra_status one_rank(const ra_cli *c, const char *cmd)
{
    if (c->size == 1) return RA_OK;
    return RA_FAIL(RA_ERR_ARG, "%s runs as one process, not on %d ranks: run 'ringattn %s ...' without mpirun "
                   "(or with mpirun -n 1); its output loads on any number of ranks", cmd, c->size, cmd);
}

static ra_status parse(ra_cli *c, int argc, char **argv, const char *cmd, const char *help, const char **in,
                       const char **out, ra_session_args *sa, int *helped)
{
    static const struct option opts[] = {
        { "checkpoint", required_argument, 0, 'k' }, { "from", required_argument, 0, 'f' },
        { "out", required_argument, 0, 'o' },        { "set", required_argument, 0, 'S' },
        { "help", no_argument, 0, 'h' },             { 0, 0, 0, 0 },
    };
    const int exporting = !strcmp(cmd, "export");
    ra_status st = RA_OK;
    int o;
    opterr = 0;
    optind = 1;
    while (st == RA_OK && (o = ra_getopt(argc, argv, ":h", opts)) != -1) {
        switch (o) {
        case 'k':
        case 'f':
            if ((o == 'k') != exporting) st = ra_arg_unknown(cmd, o, argv[optind - 1]);
            else *in = optarg;
            break;
        case 'o': *out = optarg; break;
        case 'S':
            if (exporting) st = RA_FAIL(RA_ERR_ARG, "export: --set is import's option: export writes the checkpoint "
                                                    "as it is");
            else ra_session_opt(sa, o, optarg, &st);
            break;
        case 'h':
            ra_say(c, "%s", help);
            *helped = 1;
            return RA_OK;
        default: st = ra_arg_unknown(cmd, o, argv[optind - 1]);
        }
    }
    if (st == RA_OK && optind < argc) st = RA_FAIL(RA_ERR_ARG, "%s: unexpected argument '%s'", cmd, argv[optind]);
    if (st == RA_OK && !*in) st = RA_FAIL(RA_ERR_ARG, "%s: %s is required", cmd, exporting ? "--checkpoint" : "--from");
    if (st == RA_OK && !*out) st = RA_FAIL(RA_ERR_ARG, "%s: --out is required", cmd);
    if (st == RA_OK && (!(*in)[0] || !(*out)[0])) /* "" would name the root directory's files */
        st = RA_FAIL(RA_ERR_ARG, "%s: %s: empty file name", cmd,
                     !(*in)[0] ? (exporting ? "--checkpoint" : "--from") : "--out");
    if (st == RA_OK) st = one_rank(c, cmd);
    return st;
}

static ra_status run_export(ra_cli *c, const char *ckpt_arg, const char *dir)
{
    char ckpt[RA_PATH_MAX + 32], st_path[RA_PATH_MAX + 64], cfg_path[RA_PATH_MAX + 64];
    ra_ckpt_resolve(ckpt, sizeof ckpt, ckpt_arg);
    if (!ra_join_path(st_path, sizeof st_path, dir, RA_ST_FILE_NAME) ||
        !ra_join_path(cfg_path, sizeof cfg_path, dir, "config.json"))
        return RA_FAIL(RA_ERR_ARG, "export: --out %.200s: path too long", dir);
    struct stat sb;
    /* named as given: the checks below would say "/dev/null/model.safetensors: is in /dev" */
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode))
        return RA_FAIL(RA_ERR_ARG, "export: --out %s: is %s, not a directory (export writes %s and config.json "
                       "into one)", dir, ra_file_kind(sb.st_mode), RA_ST_FILE_NAME);
    const ra_cli_file ins[] = { { "--checkpoint", ckpt } };
    const ra_cli_file outs[] = { { "--out", st_path }, { "--out", cfg_path } };
    RA_TRY(ra_check_files("export", ins, 1, outs, 2, 0)); /* before the directory is made */
    char index[RA_PATH_MAX + 64];
    ra_join_path(index, sizeof index, dir, RA_ST_INDEX_NAME);
    if (lstat(index, &sb) == 0) /* its shards would stay beside the new weights */
        return RA_FAIL(RA_ERR_ARG, "export: --out %s holds a sharded model (%s): writing there would leave its "
                       "shards and index beside the new model.safetensors and replace its config.json; give an "
                       "empty or new directory", dir, index);
    const int made = stat(dir, &sb) != 0; /* a refused export removes the directory it made */
    RA_TRY(ra_prepare_output_dir(dir, "export: --out"));
    if (made) ra_atomic_cleanup_dir(dir); /* a signal removes it too */
    ra_llama_info info;
    ra_status st = ra_check_files("export", ins, 1, outs, 2, 1);
    if (st == RA_OK) st = ra_arg_cmd("export", ra_llama_export(ckpt, dir, &info)); /* named, as the options' errors */
    ra_atomic_cleanup_dir(NULL);
    if (st != RA_OK) {
        if (made) rmdir(dir); /* only while empty: nothing else is lost */
        return st;
    }
    ra_say(c, "export: %s -> %s (%d tensors, %lld parameters, F32) and %s (LlamaForCausalLM)\n", ckpt, st_path,
           info.tensors, (long long)info.params, cfg_path);
    return RA_OK;
}

/* 1 when path is a Llama model's directory, or a file in one (its
 * config.json, safetensors or index); dir: that directory. */
static int llama_model(const char *path, char *dir, size_t cap)
{
    struct stat sb;
    if (stat(path, &sb) != 0) return 0;
    if (S_ISDIR(sb.st_mode)) snprintf(dir, cap, "%s", path);
    else if (S_ISREG(sb.st_mode)) ra_dir_of(path, dir, cap);
    else return 0; /* a FIFO or device there is refused as what it is */
    char cfg[RA_PATH_MAX + 64], one[RA_PATH_MAX + 64], index[RA_PATH_MAX + 64];
    if (!ra_join_path(cfg, sizeof cfg, dir, "config.json") || !ra_join_path(one, sizeof one, dir, RA_ST_FILE_NAME) ||
        !ra_join_path(index, sizeof index, dir, RA_ST_INDEX_NAME))
        return 0;
    return stat(cfg, &sb) == 0 && S_ISREG(sb.st_mode) &&
           ((stat(one, &sb) == 0 && S_ISREG(sb.st_mode)) || (stat(index, &sb) == 0 && S_ISREG(sb.st_mode)));
}

ra_status ra_llama_given_advice(ra_status st, int argc, char **argv)
{
    if (st == RA_OK || st == RA_ERR_PEER) return st;
    for (int i = 1; i < argc; i++) {
        const char *v = NULL;
        for (const char *const *o = (const char *const[]){ "--checkpoint", "--resume", NULL }; *o; o++) {
            const size_t n = strlen(*o);
            if (!strcmp(argv[i], *o) && i + 1 < argc) v = argv[i + 1];
            else if (!strncmp(argv[i], *o, n) && argv[i][n] == '=') v = argv[i] + n + 1;
        }
        char dir[RA_PATH_MAX], ckpt[RA_PATH_MAX + 32];
        if (!v || !llama_model(v, dir, sizeof dir)) continue;
        ra_ckpt_resolve(ckpt, sizeof ckpt, v);
        if (ra_ckpt_is_one(ckpt)) continue; /* a checkpoint is there too (an export beside it): not the cause */
        char why[RA_ERROR_MAX];
        snprintf(why, sizeof why, "%s", ra_last_error());
        return RA_FAIL(st, "%s; %s is a Llama model (config.json and safetensors), not a ringattn checkpoint: "
                       "convert it first (ringattn import --from %s --out model.ckpt) and give model.ckpt", why, v,
                       dir);
    }
    return st;
}

static ra_status run_import(ra_cli *c, const char *dir, const char *ckpt, const ra_session_args *sa)
{
    char cfg_path[RA_PATH_MAX + 64], one[RA_PATH_MAX + 64], index[RA_PATH_MAX + 64];
    if (!ra_join_path(cfg_path, sizeof cfg_path, dir, "config.json") ||
        !ra_join_path(one, sizeof one, dir, RA_ST_FILE_NAME) || !ra_join_path(index, sizeof index, dir, RA_ST_INDEX_NAME))
        return RA_FAIL(RA_ERR_ARG, "import: --from %.200s: path too long", dir);
    struct stat sb;
    if (stat(dir, &sb) == 0 && !S_ISDIR(sb.st_mode)) /* the model.safetensors itself, a FIFO: "Not a directory" */
        return RA_FAIL(RA_ERR_ARG, "import: --from %s: is %s, not a directory (give the model's directory, which "
                                   "holds config.json and " RA_ST_FILE_NAME ")", dir, ra_file_kind(sb.st_mode));
    const ra_cli_file ins[] = { { "--from", cfg_path },
                                { "--from", stat(one, &sb) == 0 ? one : NULL },
                                { "--from", stat(index, &sb) == 0 ? index : NULL } };
    const ra_cli_file outs[] = { { "--out", ckpt } };
    RA_TRY(ra_check_files("import", ins, 3, outs, 1, 1));
    ra_llama_info info;
    RA_TRY(ra_arg_cmd("import", ra_llama_import(dir, ckpt, sa->sets, sa->nsets, &info))); /* --set's errors too */
    ra_say(c, "import: %s (%s) -> %s (%d tensors, %lld parameters; step 0, AdamW moments 0)\n", info.source,
           info.dtypes, ckpt, info.tensors, (long long)info.params);
    if (info.ignored[0]) ra_say(c, "import: config.json keys not used: %s\n", info.ignored);
    /* an export killed between its two renames (SIGKILL, a crash) left the
     * second's .tmp: the pair may be new weights beside an old config.json */
    const char *pair[] = { one, cfg_path };
    for (int i = 0; i < 2; i++) {
        char tmp[RA_PATH_MAX + 80];
        if (c->rank == 0 && ra_tmp_name(tmp, sizeof tmp, pair[i]) && lstat(tmp, &sb) == 0)
            fprintf(stderr, "ringattn: warning: import: %s is there, left by an export that did not finish: "
                    "if it stopped between its renames, %s and %s come from different exports; remove it and "
                    "export again to be sure\n", tmp, one, cfg_path);
    }
    return RA_OK;
}

static ra_status run(ra_cli *c, int argc, char **argv, int exporting)
{
    const char *cmd = exporting ? "export" : "import";
    const char *in = NULL, *out = NULL;
    ra_session_args sa = { 0 };
    int helped = 0;
    ra_status st =
        ra_arg_cmd(cmd, parse(c, argc, argv, cmd, exporting ? export_help : import_help, &in, &out, &sa, &helped));
    if (st == RA_OK && !helped) st = exporting ? run_export(c, in, out) : run_import(c, in, out, &sa);
    return ra_agree(c->comm, st);
}

ra_status ra_cmd_export(ra_cli *c, int argc, char **argv) { return run(c, argc, argv, 1); }
ra_status ra_cmd_import(ra_cli *c, int argc, char **argv) { return run(c, argc, argv, 0); }
