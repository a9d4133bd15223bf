/* plan.c - plan-then-carve allocation (plan.h). */
#include "ringattn/plan.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/mem.h"

enum { ALIGN = 64 };

void ra_plan_add(ra_plan *p, void **ptr, size_t count, size_t elem)
{
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 32;
        ra_plan_item *it = realloc(p->item, sizeof *it * (size_t)cap);
        if (!it) {
            p->nomem = 1;
            return;
        }
        p->item = it, p->cap = cap;
    }
    size_t bytes = 0;
    if (elem && count > (SIZE_MAX - ALIGN) / elem) p->overflow = 1;
    else bytes = (count * elem + ALIGN - 1) / ALIGN * ALIGN;
    if (p->total > SIZE_MAX - ALIGN - bytes) p->overflow = 1;
    p->item[p->n++] = (ra_plan_item){ .ptr = ptr, .offset = p->total };
    if (!p->overflow) p->total += bytes;
}

void ra_plan_discard(ra_plan *p)
{
    free(p->item);
    *p = (ra_plan)RA_PLAN_INIT;
}

static ra_status plan_alloc(ra_plan *p, void *block, const char *what, int zero)
{
    *(void **)block = NULL;
    if (p->nomem) {
        ra_plan_discard(p);
        return RA_FAIL(RA_ERR_NOMEM, "out of memory planning %s", what);
    }
    if (p->overflow) {
        ra_plan_discard(p);
        return RA_FAIL(RA_ERR_NOMEM, "%s: the buffer sizes overflow the address space (a size too large)", what);
    }
    char *base;
    ra_status s = ra_alloc(&base, p->total ? p->total : ALIGN, what);
    if (s != RA_OK) {
        ra_plan_discard(p);
        return s;
    }
    if (zero) memset(base, 0, p->total);
    for (int i = 0; i < p->n; i++) *p->item[i].ptr = base + p->item[i].offset;
    ra_plan_discard(p);
    *(void **)block = base;
    return RA_OK;
}

ra_status ra_plan_alloc(ra_plan *p, void *block, const char *what) { return plan_alloc(p, block, what, 0); }
ra_status ra_plan_calloc(ra_plan *p, void *block, const char *what) { return plan_alloc(p, block, what, 1); }
