/* shard_io.h - a checkpoint of a session whose optimizer moments are
 * sharded (session.h): one file, the same format as ever (checkpoint.h),
 * written by rank 0 while each other rank streams its shard of adam_m and
 * adam_v to it in chunks of at most 1 MiB, on request. No rank ever holds
 * moments it does not own beyond one chunk. */
#ifndef RINGATTN_SHARD_IO_H
#define RINGATTN_SHARD_IO_H

#include "session.h"

/* Every rank calls it: rank 0 writes path (atomically, as ra_ckpt_save),
 * pulling the other shards; every other rank serves the requests for its
 * shard until all of it was sent or rank 0 gave up. Returns this rank's
 * status (agree on it after). config_text NULL on rank 0 (out of memory):
 * nothing is written, the owners are released, an error is returned. */
ra_status ra_shard_save(const ra_cli *c, ra_session *s, const char *path, const char *config_text,
                        const ra_ckpt_state *state);

#endif
