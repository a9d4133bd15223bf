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
