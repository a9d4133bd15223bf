/* plan.h - plan-then-carve: one list gives both the size of a block and the
 * pointers into it, so no buffer size is ever summed by hand.
 *
 *     ra_plan plan = RA_PLAN_INIT;
 *     RA_PLAN_ADD(&plan, m->logits, (size_t)N * V);   // float *logits
 *     RA_PLAN_ADD(&plan, m->pos, Lr);                 // int32_t *pos
 *     RA_TRY(ra_plan_alloc(&plan, &m->block, "model scratch"));  // sets both
 *     ...
 *     free(m->block);
 *
 * Every buffer starts on a 64-byte boundary; counts and the total are
 * checked for overflow; a count of 0 gets a valid (unused) pointer. */
#ifndef RINGATTN_PLAN_H
#define RINGATTN_PLAN_H

#include <stddef.h>

#include "ringattn/status.h"

typedef struct {
    void **ptr;    /* where to store the buffer's address */
    size_t offset; /* bytes from the block's start */
} ra_plan_item;

typedef struct {
    ra_plan_item *item;
    int n, cap;
    size_t total;   /* bytes so far, each buffer rounded up to 64 */
    int overflow;   /* a count * size or the total did not fit size_t */
    int nomem;      /* the item list could not grow */
} ra_plan;

#define RA_PLAN_INIT {0}

/* Add a buffer of count elements of elem bytes whose address goes to *ptr. */
void ra_plan_add(ra_plan *p, void **ptr, size_t count, size_t elem);
#define RA_PLAN_ADD(plan, lvalue, count) ra_plan_add((plan), (void **)&(lvalue), (count), sizeof *(lvalue))

/* Allocate the block (64-byte aligned; not zeroed unless zero), point every
 * planned buffer into it, free the plan's list. *block is what to free().
 * On failure nothing is allocated; what names the block in the message. */
ra_status ra_plan_alloc(ra_plan *p, void *block, const char *what);
ra_status ra_plan_calloc(ra_plan *p, void *block, const char *what);
/* Drop a plan without allocating. */
void ra_plan_discard(ra_plan *p);

#endif
