/* cmd_plan.c - `ringattn plan`: the cost model (costmodel.h) for a config
 * at P ranks: candidate layouts and chunks, the choice, the rates (given,
 * defaults, or calibrated: plan_calibrate.c), projections to large
 * clusters (docs/planner.md). */
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "plan_calibrate.h"
#include "ringattn/costmodel.h"
#include "ringattn/dist.h"
#include "ringattn/fileio.h"
#include "ringattn/threads.h"

static const char *help =
    "usage: ringattn plan --config FILE -n P [--dp N] [--layout L] [--chunk C] [--threads T]\n"
    "                     [--link-gbps X] [--link-latency-us Y] [--ranks-per-node R]\n"
    "                     [--calibrate [--save-rates FILE] | --rates FILE] [--set SEC.KEY=VAL]...\n"
    "                     [--project weak|strong --profile ib100|eth25|eth1 [--max-p 4096] [--csv FILE]]\n"
    "       ringattn plan --attn -n P -L N [-H 4] [-D 64] [--Hkv H] [--B 1] [--causal] [--head KIND]\n"
    "                     [--span S] [--row M] [--layout L] [--chunk C] [rates options]\n"
    "\n"
    "Predicts a training step of the config on P ranks (P/dp per ring; --dp is\n"
    "run.dp, the config's by default) for every\n"
    "candidate layout x chunk: compute_ms (busiest rank), comm_ms (ring transfers +\n"
    "gradient all-reduce), wait_ms (imbalance + exposed transfers), balance (mean\n"
    "rank work / busiest), MiB/rank (the model's plan + head buffers + AdamW) and\n"
    "step_ms, then a 'choice:' line with the reason. Rates: --calibrate times the\n"
    "kernels here (under mpirun, a ping-pong from rank 0 to the next rank of its\n"
    "node and one to the first rank of another node: the shm and link rates), --rates\n"
    "reads a saved file, otherwise documented defaults (said in the output).\n"
    "--ranks-per-node: ranks sharing a node's shared memory (default: all P; 1\n"
    "when --link-gbps/--link-latency-us is given; under --calibrate across nodes,\n"
    "rank 0's node's ranks). --project: step time, tokens/s,\n"
    "comm share and memory for P = 1, 2, 4, ... max-p nodes of 64 cores (weak: L/P\n"
    "fixed at the config's L; strong: L fixed). --attn: one head call as 'bench attn'\n"
    "runs it (predicted fwd/bwd ms and waits). See docs/planner.md.\n";

typedef struct {
    const char *config, *rates, *save_rates, *csv, *profile;
    const char *sets[32];
    int nsets;
    int P, dp, chunk, chunk_set, threads, rpn, calibrate, project, max_p, max_p_set, attn;
    int layout_set, dp_set;
    ra_layout layout;
    double link_gbps, link_lat;
    ra_cm_attn a;
} plan_args;

enum { PROJ_NONE, PROJ_WEAK, PROJ_STRONG };

static ra_status positive(const char *opt, const char *v, double *out)
{
    char *end;
    double x = strtod(v, &end);
    if (end == v || *end || !(x >= RA_CM_VALUE_MIN && x <= RA_CM_VALUE_MAX) || /* as in a rates file */
        v[strspn(v, "+-0123456789.eE")] != '\0') /* strtod's hex: -n 0x10 is refused too */
        return RA_FAIL(RA_ERR_ARG, "%s: need a number from %g to %g (got '%s')", opt, RA_CM_VALUE_MIN,
                       RA_CM_VALUE_MAX, v);
    *out = x;
    return RA_OK;
}

static ra_status parse(int argc, char **argv, plan_args *a, int *want_help)
{
    enum { O_CONFIG = 256, O_DP, O_LINK, O_LAT, O_CAL, O_RATES, O_SAVE, O_LAYOUT, O_CHUNK, O_THREADS, O_PROJECT,
           O_MAXP, O_PROFILE, O_CSV, O_RPN, O_ATTN, O_HKV, O_B, O_CAUSAL, O_HEAD, O_SPAN, O_ROW, O_SET, O_HELP };
    static const struct option opts[] = {
        { "config", required_argument, 0, O_CONFIG },  { "dp", required_argument, 0, O_DP },
        { "link-gbps", required_argument, 0, O_LINK }, { "link-latency-us", required_argument, 0, O_LAT },
        { "calibrate", no_argument, 0, O_CAL },        { "rates", required_argument, 0, O_RATES },
        { "save-rates", required_argument, 0, O_SAVE }, { "layout", required_argument, 0, O_LAYOUT },
        { "chunk", required_argument, 0, O_CHUNK },    { "threads", required_argument, 0, O_THREADS },
        { "project", required_argument, 0, O_PROJECT }, { "max-p", required_argument, 0, O_MAXP },
        { "profile", required_argument, 0, O_PROFILE }, { "csv", required_argument, 0, O_CSV },
        { "ranks-per-node", required_argument, 0, O_RPN }, { "attn", no_argument, 0, O_ATTN },
        { "Hkv", required_argument, 0, O_HKV },        { "B", required_argument, 0, O_B },
        { "causal", no_argument, 0, O_CAUSAL },        { "head", required_argument, 0, O_HEAD },
        { "span", required_argument, 0, O_SPAN },      { "row", required_argument, 0, O_ROW },
        { "set", required_argument, 0, O_SET },        { "help", no_argument, 0, O_HELP },
        { 0, 0, 0, 0 },
    };
    *a = (plan_args){ .dp = 1, .max_p = 4096, .a = { .B = 1, .H = 4, .D = 64, .head = RA_HEAD_FULL } };
    int n_set = 0, c;
    int64_t L = 0;
    const char *attn_opt = NULL; /* the last option of --attn's head call given */
    opterr = 0;
    optind = 1;
    while ((c = ra_getopt(argc, argv, ":n:L:H:D:h", opts)) != -1) {
        static const struct { int code; const char *name; } head_opts[] = {
            { 'L', "-L" }, { 'H', "-H" }, { 'D', "-D" }, { O_HKV, "--Hkv" }, { O_B, "--B" },
            { O_CAUSAL, "--causal" }, { O_HEAD, "--head" }, { O_SPAN, "--span" }, { O_ROW, "--row" } };
        for (size_t i = 0; i < sizeof head_opts / sizeof *head_opts; i++)
            if (c == head_opts[i].code) attn_opt = head_opts[i].name;
        switch (c) {
        case 'n': RA_TRY(ra_arg_int("-n", optarg, 1, 1 << 24, &a->P)); n_set = 1; break;
        case 'L': RA_TRY(ra_arg_size("-L", optarg, 1, &L)); a->a.L = L; break; /* 16K as bench's -b */
        case 'H': RA_TRY(ra_arg_int("-H", optarg, 1, 1 << 16, &a->a.H)); break;
        case 'D': RA_TRY(ra_arg_int("-D", optarg, 1, 1 << 16, &a->a.D)); break;
        case O_HKV: RA_TRY(ra_arg_int("--Hkv", optarg, 1, 1 << 16, &a->a.Hkv)); break;
        case O_B: RA_TRY(ra_arg_int("--B", optarg, 1, 1 << 16, &a->a.B)); break;
        case O_CAUSAL: a->a.causal = 1; break;
        case O_SPAN: RA_TRY(ra_arg_int("--span", optarg, 1, INT32_MAX, &a->a.span)); break;
        case O_ROW: RA_TRY(ra_arg_int("--row", optarg, 1, INT32_MAX, &a->a.row)); break;
        case O_HEAD: {
            int id = ra_name_find(ra_head_words, optarg);
            if (id < 0) return RA_FAIL(RA_ERR_ARG, "--head: unknown head '%s'", optarg);
            a->a.head = (ra_head_id)id;
            break;
        }
        case O_ATTN: a->attn = 1; break;
        case O_CONFIG: a->config = optarg; break;
        case O_SET:
            if (a->nsets == 32) return RA_FAIL(RA_ERR_ARG, "--set: at most 32");
            a->sets[a->nsets++] = optarg;
            break;
        case O_DP: { /* run.dp's own range, so that the first refusal is the right one */
            int lo = 1, hi = 1;
            RA_ASSERT(ra_config_int_range("run.dp", &lo, &hi), "run.dp is not an integer key of the schema");
            RA_TRY(ra_arg_int("--dp", optarg, lo, hi, &a->dp));
            a->dp_set = 1;
            break;
        }
        case O_LINK: RA_TRY(positive("--link-gbps", optarg, &a->link_gbps)); break;
        case O_LAT: RA_TRY(positive("--link-latency-us", optarg, &a->link_lat)); break;
        case O_CAL: a->calibrate = 1; break;
        case O_RATES: a->rates = optarg; break;
        case O_SAVE: a->save_rates = optarg; break;
        case O_LAYOUT: RA_TRY(ra_layout_parse(optarg, &a->layout)); a->layout_set = 1; break;
        case O_CHUNK: RA_TRY(ra_arg_int("--chunk", optarg, 1, 1 << 30, &a->chunk)); a->chunk_set = 1; break;
        case O_THREADS: RA_TRY(ra_arg_int("--threads", optarg, 1, 4096, &a->threads)); break;
        case O_RPN: RA_TRY(ra_arg_int("--ranks-per-node", optarg, 1, 1 << 24, &a->rpn)); break;
        case O_PROJECT:
            if (!strcmp(optarg, "weak")) a->project = PROJ_WEAK;
            else if (!strcmp(optarg, "strong")) a->project = PROJ_STRONG;
            else return RA_FAIL(RA_ERR_ARG, "--project: expected weak or strong (got '%s')", optarg);
            break;
        case O_MAXP: RA_TRY(ra_arg_int("--max-p", optarg, 1, 1 << 20, &a->max_p)); a->max_p_set = 1; break;
        case O_PROFILE: a->profile = optarg; break;
        case O_CSV: a->csv = optarg; break;
        case 'h': case O_HELP: *want_help = 1; return RA_OK;
        default: return ra_arg_unknown("plan", c, argv[optind - 1]);
        }
    }
    if (optind < argc) return RA_FAIL(RA_ERR_ARG, "plan: unexpected argument '%s'", argv[optind]);
    if (!n_set && !a->project) return RA_FAIL(RA_ERR_ARG, "plan: -n P (the ranks to plan for) is required");
    if (!n_set) a->P = 1;
    if (a->P % a->dp)
        return RA_FAIL(RA_ERR_ARG, "--dp %d does not divide -n %d (P/dp ranks per ring)", a->dp, a->P);
    if (a->calibrate && a->rates) return RA_FAIL(RA_ERR_ARG, "plan: --calibrate and --rates exclude each other");
    if (a->save_rates && !a->calibrate) return RA_FAIL(RA_ERR_ARG, "--save-rates needs --calibrate");
    if (a->csv && !a->project) return RA_FAIL(RA_ERR_ARG, "--csv needs --project (the projection's table is what it writes)");
    if (a->max_p_set && !a->project) /* it was ignored: exit 0 with no projection */
        return RA_FAIL(RA_ERR_ARG, "--max-p needs --project (the largest P of the projection)");
    /* each mode's sizes are its own: the others' were ignored, exit 0 */
    if (!a->attn && attn_opt)
        return RA_FAIL(RA_ERR_ARG, "plan: %s describes --attn's head call; a config's model and length come from "
                       "it (--set model.heads=N, --set data.seq_len=N, ...)", attn_opt);
    if (a->attn && a->dp_set) /* it was taken and ignored: the header said P, the numbers were P/dp's */
        return RA_FAIL(RA_ERR_ARG, "plan --attn takes no --dp: it predicts one head call on a ring of the -n ranks; "
                       "give -n the ranks of one ring");
    if (a->attn && !a->project && (a->config || a->nsets)) /* --project names its own refusal */
        return RA_FAIL(RA_ERR_ARG, "plan --attn takes no %s: its head call is -L, -H, -D, --Hkv, --B, --causal, "
                       "--head", a->config ? "--config" : "--set");
    if (a->attn) {
        if (!a->a.L) return RA_FAIL(RA_ERR_ARG, "plan --attn: -L N (the sequence length) is required");
        if (!a->a.Hkv) a->a.Hkv = a->a.H;
        if (a->a.H % a->a.Hkv) return RA_FAIL(RA_ERR_ARG, "--Hkv %d must divide -H %d", a->a.Hkv, a->a.H);
        if (a->a.head == RA_HEAD_COMBINER_LOGSPARSE && !a->a.causal)
            return RA_FAIL(RA_ERR_ARG, "--head combiner-logsparse is causal only: add --causal");
        if (!a->layout_set) /* as bench attn */
            a->layout = a->a.causal && a->a.head == RA_HEAD_FULL ? RA_LAYOUT_ZIGZAG : RA_LAYOUT_CONTIGUOUS;
    } else if (!a->config) {
        return RA_FAIL(RA_ERR_ARG, "plan: --config FILE is required (or --attn for one head call)");
    }
    if (a->project) { /* the projection picks these itself: given, they were ignored */
        const char *why = a->attn                           ? "--attn (it projects a model config)"
                          : a->layout_set                   ? "--layout (it takes each P's best)"
                          : a->chunk_set                    ? "--chunk (it takes the auto chunk)"
                          : a->dp > 1                       ? "--dp (it projects one ring)"
                          : a->rpn                          ? "--ranks-per-node (it puts one rank on a node)"
                          : a->link_gbps > 0 || a->link_lat > 0 ? "--link-gbps or --link-latency-us (the profile "
                                                                  "gives the link)"
                                                            : NULL;
        if (why) return RA_FAIL(RA_ERR_ARG, "--project does not take %s", why);
    } else if (a->rpn > a->P) {
        return RA_FAIL(RA_ERR_ARG, "--ranks-per-node %d is more than -n %d (the ranks there are)", a->rpn, a->P);
    }
    if (a->project && !a->profile)
        return RA_FAIL(RA_ERR_ARG, "--project needs --profile (ib100, eth25 or eth1)");
    if (a->profile && !a->project) /* only the projection's link is a profile's: ignored, it would mislead */
        return RA_FAIL(RA_ERR_ARG, "--profile needs --project weak|strong (the profile is the projected "
                       "cluster's link; for this machine's link give --link-gbps and --link-latency-us)");
    if (a->profile && strcmp(a->profile, "ib100") && strcmp(a->profile, "eth25") && strcmp(a->profile, "eth1"))
        return RA_FAIL(RA_ERR_ARG, "--profile: unknown profile '%s' (ib100, eth25 or eth1)", a->profile);
    return RA_OK;
}

/* ---- output ------------------------------------------------------------------------ */

static void profile_link(const char *name, double *gbps, double *lat)
{
    if (!strcmp(name, "ib100")) *gbps = 100, *lat = 2;
    else if (!strcmp(name, "eth25")) *gbps = 25, *lat = 10;
    else *gbps = 1, *lat = 50;
}
enum { CORES_PER_NODE = 64 };

typedef struct {
    ra_layout layout;
    int chunk; /* option value: 0 auto */
    ra_cm_train t;
    int nc, eff_chunk;
} candidate;

static ra_status candidates(const ra_config *cfg, const ra_cm_setup *base, const ra_cm_rates *r, const plan_args *pa,
                            candidate *out, int cap, int *n)
{
    *n = 0;
    const int P = base->P / (base->dp > 1 ? base->dp : 1);
    for (int lay = 0; lay < 3; lay++) {
        if (pa && pa->layout_set && (int)pa->layout != lay) continue;
        int chunks[16], nch = 0;
        if (pa && pa->chunk_set) chunks[nch++] = pa->chunk;
        else {
            chunks[nch++] = 0;
            if (P > 1)
                for (int c = 512; c <= cfg->seq_len && nch < 16; c *= 2) chunks[nch++] = c;
        }
        int seen[16], ns = 0;
        for (int i = 0; i < nch && *n < cap; i++) {
            ra_cm_setup s = *base;
            s.layout = (ra_layout)lay, s.chunk = chunks[i];
            int nc, ch;
            ra_cm_ring_pieces(cfg->seq_len, P, s.layout, s.chunk, &nc, &ch);
            int dup = 0;
            for (int j = 0; j < ns; j++) dup |= seen[j] == ch;
            if (dup) continue;
            seen[ns++] = ch;
            candidate *c = &out[(*n)++];
            c->layout = s.layout, c->chunk = chunks[i], c->nc = nc, c->eff_chunk = ch;
            RA_TRY(ra_arg_cmd("plan", ra_cm_train_time(cfg, &s, r, &c->t)));
        }
    }
    return RA_OK;
}

static int best_of(const candidate *c, int n)
{
    int b = 0;
    for (int i = 1; i < n; i++)
        if (c[i].t.step_s < c[b].t.step_s * (1 - 1e-9) ||
            (fabs(c[i].t.step_s - c[b].t.step_s) <= 1e-9 * c[b].t.step_s && c[i].t.bytes_per_rank < c[b].t.bytes_per_rank))
            b = i;
    return b;
}

static void say_choice(const ra_cli *c, const candidate *cs, int n, int b)
{
    const candidate *w = &cs[b];
    /* the best of another layout, to say what the choice avoids */
    int o = -1;
    for (int i = 0; i < n; i++)
        if (cs[i].layout != w->layout && (o < 0 || cs[i].t.step_s < cs[o].t.step_s)) o = i;
    char why[256];
    if (o < 0) {
        snprintf(why, sizeof why, "the only layout considered");
    } else {
        const candidate *x = &cs[o];
        const double ratio = x->t.step_s / w->t.step_s;
        /* the larger part of the gap on the busiest rank: its compute, or
         * the time it waits (the step less its compute and the reduction) */
        const double dc = x->t.compute_s - w->t.compute_s;
        const double dw = (x->t.step_s - x->t.compute_s) - (w->t.step_s - w->t.compute_s);
        const char *cause = x->t.balance < w->t.balance - 0.02   ? "causal imbalance"
                            : dw > dc && dw > 0.005 * w->t.step_s ? "exposed transfers"
                            : dc > 0.005 * w->t.step_s             ? "more tile work (partial tiles)"
                                                                   : "no difference beyond noise";
        snprintf(why, sizeof why, "%s is %.2fx slower (%s: compute %.1f vs %.1f ms, balance %.2f vs %.2f, wait %.1f "
                 "vs %.1f ms)", ra_layout_name(x->layout), ratio, cause, x->t.compute_s * 1e3,
                 w->t.compute_s * 1e3, x->t.balance, w->t.balance, x->t.wait_s * 1e3, w->t.wait_s * 1e3);
    }
    /* the chunk: among this layout's chunks */
    char cwhy[160] = "";
    int worst = -1;
    for (int i = 0; i < n; i++)
        if (cs[i].layout == w->layout && i != b && (worst < 0 || cs[i].t.step_s > cs[worst].t.step_s)) worst = i;
    if (worst >= 0)
        snprintf(cwhy, sizeof cwhy, "; chunk %d beats chunk %d by %.1f%%", w->eff_chunk, cs[worst].eff_chunk,
                 100 * (cs[worst].t.step_s / w->t.step_s - 1));
    ra_say(c, "choice: layout=%s chunk=%s%d: step %.1f ms; %s%s\n", ra_layout_name(w->layout),
           w->chunk ? "" : "auto=", w->eff_chunk, w->t.step_s * 1e3, why, cwhy);
}

static void table(const ra_cli *c, const candidate *cs, int n)
{
    ra_say(c, "%-11s %8s %4s %11s %9s %9s %8s %9s %10s\n", "layout", "chunk", "nc", "compute_ms", "comm_ms", "wait_ms",
           "balance", "MiB/rank", "step_ms");
    for (int i = 0; i < n; i++) {
        char ch[24];
        snprintf(ch, sizeof ch, "%s%d", cs[i].chunk ? "" : "a", cs[i].eff_chunk);
        ra_say(c, "%-11s %8s %4d %11.2f %9.2f %9.2f %8.3f %9.1f %10.2f\n", ra_layout_name(cs[i].layout), ch, cs[i].nc,
               cs[i].t.compute_s * 1e3, cs[i].t.comm_s * 1e3, cs[i].t.wait_s * 1e3, cs[i].t.balance,
               cs[i].t.bytes_per_rank / 1048576.0, cs[i].t.step_s * 1e3);
    }
}

static ra_status project(const ra_cli *c, const plan_args *pa, const ra_config *cfg0, const ra_cm_rates *calib)
{
    ra_cm_rates r = *calib;
    const double per_core = (double)CORES_PER_NODE / calib->threads; /* linear in cores (docs/planner.md) */
    r.sgemm_gflops *= per_core, r.attn_fwd_gflops *= per_core, r.attn_bwd_gflops *= per_core;
    r.mem_gbs *= per_core > 8 ? 8 : per_core; /* memory bandwidth: at most 8x one socket's share */
    r.threads = CORES_PER_NODE;
    profile_link(pa->profile, &r.link_gbps, &r.link_lat_us);
    r.link_cpu_s_per_gb = 0; /* a cluster's NIC offloads TCP's work, or RDMA has none */
    const char *mode = pa->project == PROJ_WEAK ? "weak" : "strong";
    FILE *csv = NULL;
    char *csv_text = NULL;
    size_t csv_len = 0;
    if (pa->csv && c->rank == 0) {
        csv = open_memstream(&csv_text, &csv_len); /* written atomically at the end */
        if (!csv) return RA_FAIL(RA_ERR_NOMEM, "--csv %s: out of memory", pa->csv);
        fprintf(csv, "profile,mode,config,P,L,layout,chunk,step_ms,tokens_per_s,comm_share,mib_per_rank\n");
    }
    ra_say(c, "# projection: %s scaling, profile %s (%.0f Gbit/s, %.0f us), one rank per node of %d cores, rates "
              "per core from %s x %d\n", mode, pa->profile, r.link_gbps, r.link_lat_us, CORES_PER_NODE,
           calib->calibrated ? "calibration" : "the defaults", CORES_PER_NODE);
    if (cfg0->dp > 1) /* taken and ignored unsaid */
        ra_say(c, "# the config's run.dp = %d is not used: the projection is of one ring of P ranks\n", cfg0->dp);
    ra_say(c, "%8s %11s %-11s %7s %12s %14s %7s %10s\n", "P", "L", "layout", "chunk", "step_ms", "tokens/s", "comm%",
           "MiB/rank");
    ra_status st = RA_OK;
    for (int64_t P = 1; P <= pa->max_p && st == RA_OK; P *= 2) {
        ra_config cfg = *cfg0;
        int64_t L = pa->project == PROJ_WEAK ? (int64_t)cfg0->seq_len * P : cfg0->seq_len;
        if (L > INT32_MAX || L < P) {
            ra_say(c, "%8lld %11lld (stops: %s)\n", (long long)P, (long long)L,
                   L < P ? "fewer tokens than ranks" : "L over 2^31-1");
            break;
        }
        cfg.seq_len = (int)L;
        ra_cm_setup s = { .P = (int)P, .dp = 1, .ranks_per_node = 1, .layout = cfg.layout_id, .chunk = 0 };
        candidate cs[3];
        int n = 0;
        /* auto chunk only (the projection is about scaling, not tuning) */
        for (int lay = 0; lay < 3 && st == RA_OK; lay++) {
            ra_cm_setup s2 = s;
            s2.layout = (ra_layout)lay;
            candidate *cc = &cs[n++];
            cc->layout = s2.layout, cc->chunk = 0;
            ra_cm_ring_pieces(L, (int)P, s2.layout, 0, &cc->nc, &cc->eff_chunk);
            st = ra_cm_train_time(&cfg, &s2, &r, &cc->t);
        }
        if (st != RA_OK) break;
        int b = best_of(cs, n);
        const ra_cm_train *t = &cs[b].t;
        const double tps = t->tokens / t->step_s, share = 100 * (t->wait_s + t->allreduce_s) / t->step_s;
        ra_say(c, "%8lld %11lld %-11s %7d %12.2f %14.1f %7.1f %10.1f\n", (long long)P, (long long)L,
               ra_layout_name(cs[b].layout), cs[b].eff_chunk, t->step_s * 1e3, tps, share,
               t->bytes_per_rank / 1048576.0);
        if (csv)
            fprintf(csv, "%s,%s,%s,%lld,%lld,%s,%d,%.6g,%.6g,%.4f,%.3f\n", pa->profile, mode, pa->config, (long long)P,
                    (long long)L, ra_layout_name(cs[b].layout), cs[b].eff_chunk, t->step_s * 1e3, tps, share / 100,
                    t->bytes_per_rank / 1048576.0);
    }
    if (csv) {
        if (fclose(csv) != 0 && st == RA_OK) st = RA_FAIL(RA_ERR_NOMEM, "--csv %s: out of memory", pa->csv);
        if (st == RA_OK)
            st = ra_cli_not_written("plan", "--csv", pa->csv, ra_write_file_atomic(pa->csv, csv_text, csv_len));
        free(csv_text);
    }
    return st;
}

static ra_status write_rates(const char *path, const ra_cm_rates *r)
{
    char text[1024];
    int n = ra_cm_rates_text(r, text, sizeof text);
    if (n < 0 || (size_t)n >= sizeof text) return RA_FAIL(RA_ERR_INTERNAL, "--save-rates: the rates text does not fit");
    return ra_cli_not_written("plan", "--save-rates", path, ra_write_file_atomic(path, text, (size_t)n));
}

/* --config FILE with every --set, finished and checked. */
/* --dp is run.dp, as train reads it: checked against train.batch and
 * train.accum by the config's own rules; without it, the config's run.dp
 * is the plan's (it planned dp = 1 whatever the config said). */
static ra_status load_config(plan_args *pa, ra_config *cfg)
{
    RA_TRY(ra_config_load(cfg, pa->config));
    for (int i = 0; i < pa->nsets; i++) {
        RA_TRY(ra_config_set(cfg, pa->sets[i], "--set"));
        const char *k = pa->sets[i] + strspn(pa->sets[i], " \t");
        if (pa->dp_set && !strncmp(k, "run.dp", 6) && strchr(" \t=", k[6]))
            return RA_FAIL(RA_ERR_ARG, "--dp and --set run.dp both give the data-parallel groups; give one");
    }
    if (pa->dp_set) cfg->dp = pa->dp;
    ra_status st = ra_config_finish(cfg);
    if (st != RA_OK) return st;
    if (!pa->dp_set && !pa->project) pa->dp = cfg->dp; /* --project plans one ring */
    if (pa->P % pa->dp)
        return RA_FAIL(RA_ERR_ARG, "run.dp = %d does not divide -n %d (P/dp ranks per ring)", pa->dp, pa->P);
    return RA_OK;
}

/* The config every rank loaded against rank 0's (same.c): a file replaced
 * while the ranks read it calibrated some ranks on another model. */
static ra_status same_config(const ra_cli *c, const plan_args *pa, const ra_config *cfg)
{
    char *text = ra_config_text(cfg);
    RA_TRY(ra_agree(c->comm, text ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "plan: out of memory for the config's text")));
    char source[RA_PATH_MAX + 32];
    snprintf(source, sizeof source, "plan: --config %s", pa->config);
    ra_status st = ra_same_on_ranks(c, source, "read a different config",
                                    "the file changed while the ranks read it, or the ranks were given different "
                                    "options; give every rank the same", text);
    free(text);
    return st;
}

/* --rates FILE read and parsed. */
static ra_status read_rates(const plan_args *pa, ra_cm_rates *r)
{
    char *text = NULL;
    size_t len;
    RA_TRY(ra_file_read_all(pa->rates, "--rates file", 1 << 16, &text, &len));
    if (strlen(text) != len) {
        free(text);
        return RA_FAIL(RA_ERR_FORMAT, "--rates %s: the file holds NUL bytes", pa->rates);
    }
    char name[512];
    snprintf(name, sizeof name, "--rates %s", pa->rates);
    ra_status st = ra_cm_rates_parse(r, text, name);
    free(text);
    return st;
}

static ra_status run(ra_cli *c, plan_args *pa)
{
    ra_config cfg;
    int have_cfg = 0;
    if (pa->config) {
        /* every rank reads it: a failure on some is every rank's (the others went on to a collective) */
        RA_TRY(ra_agree(c->comm, ra_arg_cmd("plan", load_config(pa, &cfg)))); /* named, as the options' errors */
        RA_TRY(same_config(c, pa, &cfg));
        have_cfg = 1;
        if (!pa->layout_set) pa->layout = cfg.layout_id;
        if (!pa->project) /* before the rates line: nothing printed for a refusal */
            RA_TRY(ra_arg_cmd("plan", ra_cm_train_check(&cfg, &(ra_cm_setup){ .P = pa->P, .dp = pa->dp })));
    }
    /* calibration measures on the rank's cores: placed and bound the way the
     * commands it predicts are (a rank mpirun bound to one core would time
     * two threads on it); otherwise --threads only scales the rates */
    /* the outputs before any work: not an input, a place a file can be made */
    const ra_cli_file ins[] = { { "--config", pa->config }, { "--rates", pa->rates } };
    const ra_cli_file outs[] = { { "--save-rates", pa->save_rates }, { "--csv", pa->csv } };
    RA_TRY(ra_agree(c->comm, ra_check_files("plan", ins, 2, outs, 2, c->rank == 0)));
    if (pa->calibrate || !pa->threads) ra_set_threads(c, pa->threads, "--threads");
    else ra_threads_set(pa->threads);
    ra_cm_rates r;
    const char *source = "defaults (docs/planner.md; --calibrate to measure this machine)";
    int calib_rpn = 0; /* ranks on rank 0's node when the calibration reached another node */
    if (pa->rates) {
        RA_TRY(ra_agree(c->comm, ra_arg_cmd("plan", read_rates(pa, &r)))); /* named, as the options' errors */
        source = "--rates file";
    } else if (pa->calibrate) {
        RA_TRY(ra_agree(c->comm, ra_arg_cmd("plan", ra_blas_claim()))); /* its GEMMs: threads.h */
        RA_TRY(ra_arg_cmd("plan", ra_plan_calibrate(c, have_cfg ? &cfg : NULL, &pa->a, &r, &calib_rpn)));
        source = c->size < 2      ? "calibrated here (kernels; links: defaults, no second rank)"
                 : calib_rpn == 0 ? "calibrated here (kernels, a ping-pong in the node; link: defaults, one node)"
                 : calib_rpn == 1 ? "calibrated here (kernels, a ping-pong across nodes; shm: defaults, one rank a node)"
                                  : "calibrated here (kernels, ping-pongs in the node and across nodes)";
        if (pa->save_rates && c->rank == 0) RA_TRY(write_rates(pa->save_rates, &r));
    } else {
        ra_cm_default_rates(&r);
    }
    if (pa->threads && pa->threads != r.threads) { /* linear in threads (docs/planner.md) */
        const double k = (double)pa->threads / r.threads;
        r.sgemm_gflops *= k, r.attn_fwd_gflops *= k, r.attn_bwd_gflops *= k;
        r.threads = pa->threads;
    }
    if (pa->link_gbps > 0) r.link_gbps = pa->link_gbps;
    if (pa->link_lat > 0) r.link_lat_us = pa->link_lat;
    if (pa->link_gbps > 0 || pa->link_lat > 0) r.link_cpu_s_per_gb = 0; /* a link not measured here: offloaded */
    const int rpn = pa->rpn                                ? pa->rpn
                    : (pa->link_gbps > 0 || pa->link_lat > 0) ? 1
                    : calib_rpn > 0                           ? calib_rpn /* as the calibration's ranks sat */
                                                              : pa->P;
    ra_say(c, "# rates: %s: sgemm %.1f GFLOP/s, attention %.1f fwd / %.1f bwd GFLOP/s, passes %.1f GB/s, "
              "shm %.1f Gbit/s %.2f us, link %.1f Gbit/s %.1f us %.2f s CPU/GB, %d thread(s)/rank\n", source,
           r.sgemm_gflops, r.attn_fwd_gflops, r.attn_bwd_gflops, r.mem_gbs, r.shm_gbps, r.shm_lat_us, r.link_gbps,
           r.link_lat_us, r.link_cpu_s_per_gb, r.threads);
    if (pa->calibrate && pa->save_rates) ra_say(c, "# rates saved to %s\n", pa->save_rates);
    ra_cm_setup s = { .P = pa->P, .dp = pa->dp, .ranks_per_node = rpn, .layout = pa->layout, .chunk = pa->chunk };
    if (pa->attn) {
        ra_cm_attn_cost ac;
        RA_TRY(ra_arg_cmd("plan", ra_cm_attn_time(&pa->a, &s, &r, &ac)));
        ra_say(c, "# attn: head=%s P=%d L=%lld B=%d H=%d Hkv=%d D=%d %s layout=%s chunk=%d nc=%d ranks/node=%d\n",
               ra_head_words[pa->a.head], pa->P, (long long)pa->a.L, pa->a.B, pa->a.H, pa->a.Hkv, pa->a.D,
               pa->a.causal ? "causal" : "bidirectional", ra_layout_name(s.layout), ac.chunk, ac.nc, rpn);
        ra_say(c, "predicted: fwd_ms=%.3f bwd_ms=%.3f fwd_wait_ms=%.3f bwd_wait_ms=%.3f balance=%.3f "
                  "imbalance_ms=%.3f MiB_sent=%.2f head_MiB=%.2f\n", ac.fwd_s * 1e3, ac.bwd_s * 1e3,
               ac.fwd_wait_s * 1e3, ac.bwd_wait_s * 1e3, ac.balance, ac.imbalance_s * 1e3, ac.bytes_sent / 1048576.0,
               ac.head_bytes / 1048576.0);
        return RA_OK;
    }
    if (pa->project) return project(c, pa, &cfg, &r);
    candidate cs[64];
    int n;
    RA_TRY(candidates(&cfg, &s, &r, pa, cs, 64, &n));
    ra_say(c, "# plan: %s, P=%d (dp=%d: %d rank%s per ring), L=%d, batch %d (accum %d), %d layer%s, %zu parameters, "
              "optimizer %s, %d rank(s) per node\n", pa->config, pa->P, pa->dp, pa->P / pa->dp, pa->P / pa->dp == 1 ? "" : "s", cfg.seq_len, cfg.batch,
           cfg.accum, cfg.layers, cfg.layers == 1 ? "" : "s", cs[0].t.nparams, cs[0].t.sharded ? "sharded" : "replicated", rpn);
    table(c, cs, n);
    int b = best_of(cs, n);
    ra_say(c, "predicted: step_ms=%.3f attn_fwd_ms=%.3f attn_bwd_ms=%.3f allreduce_ms=%.3f tokens_per_s=%.1f\n",
           cs[b].t.step_s * 1e3, cs[b].t.attn_fwd_s * 1e3, cs[b].t.attn_bwd_s * 1e3, cs[b].t.allreduce_s * 1e3,
           cs[b].t.tokens / cs[b].t.step_s);
    say_choice(c, cs, n, b);
    return RA_OK;
}

ra_status ra_cmd_plan(ra_cli *c, int argc, char **argv)
{
    plan_args pa;
    int want_help = 0;
    RA_TRY(ra_agree(c->comm, ra_arg_cmd("plan", parse(argc, argv, &pa, &want_help))));
    if (want_help) {
        ra_say(c, "%s", help);
        return RA_OK;
    }
    return ra_agree(c->comm, run(c, &pa));
}
