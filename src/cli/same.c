/* same.c - every rank runs with what rank 0 runs with.
 *
 * Each rank reads --config FILE and the checkpoint itself, and parses its
 * own command line. A config replaced while the ranks start (edited for
 * the next job: cp new.ini tmp; mv tmp live.ini), or an MPMD launch
 * (mpirun -n 1 ringattn ... : -n 1 ringattn ...) with other options on
 * some ranks, gave ranks different configs, checkpoints or prompts: the
 * replicas diverged with exit 0, or the run failed much later with an
 * opaque MPI error or a timeout reported as a deadlock. So the ranks
 * compare what they ended up with, as "key = value" text, by a 64-bit
 * FNV-1a hash (two small collectives); only when one differs is its text
 * sent, for rank 0 to name the keys. */
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "ringattn/dist.h"

#define SAME_MAX_SHOWN 4 /* differing keys named in the message; the rest counted */

uint64_t ra_hash64_more(uint64_t h, const void *data, size_t n)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ull;
    return h;
}

uint64_t ra_hash64(const void *data, size_t n)
{
    return ra_hash64_more(RA_HASH64_START, data, n);
}

/* The lowest rank whose hash is not rank 0's, on every rank (INT_MAX:
 * none). Collective. */
static ra_status first_differing(const ra_cli *c, uint64_t hash, int *first)
{
    uint64_t h0 = hash;
    RA_TRY(ra_bcast(&h0, 1, MPI_UINT64_T, 0, c->comm, "rank 0's hash of what it read"));
    int mine = h0 == hash ? INT_MAX : c->rank;
    return ra_allreduce_named(&mine, first, 1, MPI_INT, MPI_MIN, c->comm, "the ranks that read something else");
}

/* Rank `from`'s source and text, "source\0text\0", into *out (malloc'd)
 * on every rank. Collective. */
static ra_status fetch(const ra_cli *c, int from, const char *source, const char *text, char **out)
{
    const size_t ns = strlen(source) + 1, nt = strlen(text) + 1;
    int len = ns + nt > INT_MAX ? INT_MAX : (int)(ns + nt); /* config texts are KiB: the cap only keeps it an int */
    *out = NULL;
    RA_TRY(ra_bcast(&len, 1, MPI_INT, from, c->comm, "the length of the differing rank's text"));
    char *buf = malloc((size_t)len + 1);
    ra_status st = ra_agree(c->comm, buf ? RA_OK : RA_FAIL(RA_ERR_NOMEM, "out of memory for rank %d's text", from));
    if (st != RA_OK) {
        free(buf);
        return st;
    }
    if (c->rank == from) {
        memcpy(buf, source, ns);
        memcpy(buf + ns, text, (size_t)len - ns);
    }
    st = ra_bcast(buf, len, MPI_CHAR, from, c->comm, "the differing rank's text");
    buf[len] = buf[len - 1] = '\0';
    if (st != RA_OK) free(buf);
    else *out = buf;
    return st;
}

/* ---- naming the keys that differ -------------------------------------------- */

typedef struct {
    const char *p;        /* the rest of the text */
    char sec[64];         /* the last "[section]" */
    char key[192];        /* "section.key" */
    char val[80];         /* its value as written (cut to fit) */
} kv_reader;

static const char *skip_blank(const char *s)
{
    while (*s == ' ' || *s == '\t') s++;
    return s;
}

/* The value after "= ": a quoted string whole, else up to a comment (an
 * unquoted value holds no '#'), without the blanks before it. */
static void read_value(const char *v, const char *eol, char *out, size_t cap)
{
    const char *e = v;
    if (*v == '"') {
        for (e = v + 1; e < eol && *e != '"'; e++) e += *e == '\\' && e + 1 < eol;
        if (e < eol) e++;
    } else {
        while (e < eol && *e != '#') e++;
        while (e > v && (e[-1] == ' ' || e[-1] == '\t')) e--;
    }
    snprintf(out, cap, "%.*s", (int)(e - v), v);
}

/* The next "key = value" line (comments, blank lines and section lines
 * skipped; a section names the keys after it): 0 at the end. */
static int next_kv(kv_reader *r)
{
    while (*r->p) {
        const char *line = skip_blank(r->p), *eol = strchr(line, '\n');
        if (!eol) eol = line + strlen(line);
        r->p = *eol ? eol + 1 : eol;
        const char *eq = memchr(line, '=', (size_t)(eol - line));
        if (*line == '[' && memchr(line, ']', (size_t)(eol - line))) {
            snprintf(r->sec, sizeof r->sec, "%.*s", (int)(strchr(line, ']') - line - 1), line + 1);
            continue;
        }
        if (*line == '#' || !eq) continue;
        const char *ke = eq;
        while (ke > line && (ke[-1] == ' ' || ke[-1] == '\t')) ke--;
        snprintf(r->key, sizeof r->key, "%s%s%.*s", r->sec, r->sec[0] ? "." : "", (int)(ke - line), line);
        read_value(skip_blank(eq + 1), eol, r->val, sizeof r->val);
        return 1;
    }
    return 0;
}

/* "train.seed (1 on rank 0, 2 on rank 3), ..." into out: the keys whose
 * values differ, in order, the first SAME_MAX_SHOWN of them; a key present
 * in one text only ends the list (model.layers differing adds or drops
 * [layer.N] sections after it). */
static void differing_keys(const char *mine, const char *theirs, int r, char *out, size_t cap)
{
    kv_reader a = { .p = mine }, b = { .p = theirs };
    int shown = 0;
    size_t n = 0;
    out[0] = '\0';
    for (;;) {
        const int ha = next_kv(&a), hb = next_kv(&b);
        if (!ha && !hb) break;
        const int same_key = ha && hb && !strcmp(a.key, b.key);
        if (same_key && !strcmp(a.val, b.val)) continue;
        if (shown == SAME_MAX_SHOWN) {
            snprintf(out + n, cap - n, " and more");
            break;
        }
        if (same_key)
            n += (size_t)snprintf(out + n, cap - n, "%s%s (%s on rank 0, %s on rank %d)", shown ? ", " : "", a.key,
                                  a.val, b.val, r);
        else
            n += (size_t)snprintf(out + n, cap - n, "%s%s (only on rank %d)", shown ? ", " : "",
                                  ha ? a.key : b.key, ha ? 0 : r);
        if (n >= cap) n = cap - 1;
        shown++;
        if (!same_key) break;
    }
    if (!shown) snprintf(out, cap, "no key (the text differs elsewhere)");
}

/* Rank 0's message; every other rank stays quiet (RA_ERR_PEER). */
static ra_status refuse(const ra_cli *c, int r, const char *source, const char *did, const char *why,
                        const char *text, const char *got)
{
    if (c->rank != 0) return RA_ERR_PEER;
    const char *their_source = got, *their_text = got + strlen(got) + 1;
    char keys[640], own[200] = "";
    differing_keys(text, their_text, r, keys, sizeof keys);
    if (strcmp(their_source, source) != 0) snprintf(own, sizeof own, " (given %.180s)", their_source);
    return RA_FAIL(RA_ERR_ARG, "%s: rank %d%s %s than rank 0 (%s); differing: %s", source, r, own, did, why, keys);
}

ra_status ra_same_on_ranks(const ra_cli *c, const char *source, const char *did, const char *why, const char *text)
{
    int first;
    RA_TRY(first_differing(c, ra_hash64(text, strlen(text)), &first));
    if (first == INT_MAX) return RA_OK;
    char *got;
    RA_TRY(fetch(c, first, source, text, &got));
    ra_status st = refuse(c, first, source, did, why, text, got);
    free(got);
    return st;
}

ra_status ra_same_options(const ra_cli *c, const char *cmd, const char *text)
{
    return ra_same_on_ranks(c, cmd, "was given different options",
                            "an MPMD launch gave the ranks different command lines; give every rank the same", text);
}
