/* registry.c - the head kinds a layer may name in its config. */
#include <string.h>

#include "ringattn/heads.h"

extern const ra_head_kind ra_head_full;
extern const ra_head_kind ra_head_combiner_fixed;
extern const ra_head_kind ra_head_combiner_logsparse;
extern const ra_head_kind ra_head_combiner_axial;

static const ra_head_kind *const kinds[] = {
    &ra_head_full,
    &ra_head_combiner_fixed,
    &ra_head_combiner_logsparse,
    &ra_head_combiner_axial,
};

const ra_head_kind *ra_head_find(const char *name)
{
    for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++)
        if (!strcmp(kinds[i]->name, name)) return kinds[i];
    return NULL;
}

const char *ra_head_names(void)
{
    static char names[256];
    if (!names[0])
        for (size_t i = 0; i < sizeof kinds / sizeof *kinds; i++) {
            if (i) strncat(names, ", ", sizeof names - strlen(names) - 1);
            strncat(names, kinds[i]->name, sizeof names - strlen(names) - 1);
        }
    return names;
}

ra_status ra_precond_rownorm_wrap(ra_head **out, ra_head *inner, const ra_head_opts *opts, MPI_Comm comm);

ra_status ra_head_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm)
{
    const char *name = opts->layer ? opts->layer->head : "full";
    const ra_head_kind *kind = ra_head_find(name);
    if (!kind) return RA_FAIL(RA_ERR_ARG, "unknown head '%s' (known: %s)", name, ra_head_names());
    ra_head *h = NULL;
    RA_TRY(kind->create(&h, opts, comm));
    if (opts->layer && !strcmp(opts->layer->precond, "rownorm")) return ra_precond_rownorm_wrap(out, h, opts, comm);
    *out = h;
    return RA_OK;
}
