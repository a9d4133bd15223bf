/* heads.h - attention heads behind one interface, chosen per layer by name.
 *
 * A head maps q [B][H][Lr][D], k, v [B][Hkv][Lr][D] (this rank's tokens) to
 * o [B][H][Lr][D] and lse [B][H][Lr], and back. The transformer only talks
 * to this interface, so a new head kind is a new file, one enum value and
 * word in names.h, and one line in the registry (src/heads/registry.c):
 *
 *     const ra_head_kind *kind = ra_head_kind_of(RA_HEAD_FULL);
 *     ra_head *h;
 *     RA_TRY(kind->create(&h, &opts, comm));
 *     RA_TRY(h->kind->forward(h, q, k, v, NULL, o, lse));
 */
#ifndef RINGATTN_HEADS_H
#define RINGATTN_HEADS_H

#include <mpi.h>

#include "ringattn/config.h"
#include "ringattn/names.h"
#include "ringattn/ring.h"
#include "ringattn/status.h"

typedef struct ra_head ra_head;

typedef struct {
    ra_ring_opts ring;          /* shapes, scale, causal, layout, chunk */
    const ra_layer_config *layer; /* head kind parameters (span, row, ...) */
} ra_head_opts;

typedef struct {
    const char *name;
    ra_status (*create)(ra_head **out, const ra_head_opts *opts, MPI_Comm comm);
    ra_status (*forward)(ra_head *h, const float *q, const float *k, const float *v,
                         const int32_t *seg, float *o, float *lse);
    ra_status (*backward)(ra_head *h, const float *q, const float *k, const float *v,
                          const int32_t *seg, const float *o, const float *lse,
                          const float *dout, float *dq, float *dk, float *dv);
    /* seconds blocked on communication in the last call */
    double (*wait_seconds)(const ra_head *h);
    /* bytes this rank sent to other ranks in the last call */
    double (*bytes_sent)(const ra_head *h);
    void (*destroy)(ra_head *h);
} ra_head_kind;

/* Every head starts with its kind. */
struct ra_head {
    const ra_head_kind *kind;
};

/* Create the head a layer asks for: its kind (layer->head_id; full when
 * opts->layer is NULL), wrapped in its preconditioner (layer->precond_id:
 * none or rownorm; spectral acts on the projections, not the head). The
 * layer's ids must match its words (ra_config_finish resolves them; a layer
 * built by hand sets both). */
ra_status ra_head_create(ra_head **out, const ra_head_opts *opts, MPI_Comm comm);

/* The kind of a head id (names.h); NULL when out of range. */
const ra_head_kind *ra_head_kind_of(ra_head_id id);
/* The kind named word (ra_head_words), or NULL: for command-line words. */
const ra_head_kind *ra_head_find(const char *name);
/* "full, combiner-fixed, ... or ..." for messages */
const char *ra_head_names(void);

#endif
