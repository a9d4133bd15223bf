/* plan_calibrate.h - the rates of `ringattn plan --calibrate` (plan_calibrate.c). */
#ifndef RINGATTN_CLI_PLAN_CALIBRATE_H
#define RINGATTN_CLI_PLAN_CALIBRATE_H

#include "cli.h"
#include "ringattn/config.h"
#include "ringattn/costmodel.h"

/* Times the kernels on every rank at once (cfg's shapes, or shape's when
 * cfg is NULL) and the links from rank 0; *node_ranks: the ranks on rank
 * 0's node when another node was reached (the link measured), else 0.
 * Collective. */
ra_status ra_plan_calibrate(const ra_cli *c, const ra_config *cfg, const ra_cm_attn *shape, ra_cm_rates *r,
                            int *node_ranks);

#endif
