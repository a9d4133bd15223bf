/* registry.c - the head kinds a layer may name, indexed by ra_head_id: the
 * words themselves live in names.h (ra_head_words), shared with the config
 * and the command line. */
#include "ringattn/heads.h"

#include "ringattn/names.h"

extern const ra_head_kind ra_head_full;
extern const ra_head_kind ra_head_combiner_fixed;
extern const ra_head_kind ra_head_combiner_logsparse;
extern const ra_head_kind ra_head_combiner_axial;

static const ra_head_kind *const kinds[] = {
    [RA_HEAD_FULL] = &ra_head_full,
    [RA_HEAD_COMBINER_FIXED] = &ra_head_combiner_fixed,
    [RA_HEAD_COMBINER_LOGSPARSE] = &ra_head_combiner_logsparse,
    [RA_HEAD_COMBINER_AXIAL] = &ra_head_combiner_axial,
};
enum { N_KINDS = sizeof kinds / sizeof *kinds };

const ra_head_kind *ra_head_kind_of(ra_head_id id)
{
    return (unsigned)id < N_KINDS ? kinds[id] : NULL;
}

const ra_head_kind *ra_head_find(const char *name)
{
    int id = ra_name_find(ra_head_words, name);
    return id < 0 ? NULL : ra_head_kind_of((ra_head_id)id);
}

const char *ra_head_names(void)
{
    static char names[256];
    if (!names[0]) ra_name_list(ra_head_words, names, sizeof names);
    return names;
}

ra_status ra_precond_rownorm_wrap(ra_head **out, ra_head *inner, const ra_head_opts *opts, MPI_Comm comm);

/* A layer built by hand must carry the ids of its words (ra_config_finish
 * resolves them for a config): a word whose id says otherwise would
 * silently select another head. */
static ra_status check_resolved(const ra_layer_config *l)
{
    if (l->head[0] && ra_name_find(ra_head_words, l->head) != (int)l->head_id)
        return RA_FAIL(RA_ERR_INTERNAL, "layer head '%s' has an unresolved id %d (set head_id, or ra_config_finish)",
                       l->head, (int)l->head_id);
    if (l->precond[0] && ra_name_find(ra_precond_words, l->precond) != (int)l->precond_id)
        return RA_FAIL(RA_ERR_INTERNAL, "layer precond '%s' has an unresolved id %d (set precond_id, or ra_config_finish)",
                       l->precond, (int)l->precond_id);
    return RA_OK;
}

ra_status ra_head_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm)
{
    const ra_layer_config *l = opts->layer;
    if (l) RA_TRY(check_resolved(l));
    const ra_head_id id = l ? l->head_id : RA_HEAD_FULL;
    const ra_head_kind *kind = ra_head_kind_of(id);
    if (!kind) return RA_FAIL(RA_ERR_ARG, "unknown head id %d (known: %s)", (int)id, ra_head_names());
    ra_head *h = NULL;
    RA_TRY(kind->create(&h, opts, comm));
    if (l && l->precond_id == RA_PRECOND_ROWNORM) return ra_precond_rownorm_wrap(out, h, opts, comm);
    *out = h; /* spectral acts on the projections (the model), not on the head */
    return RA_OK;
}
