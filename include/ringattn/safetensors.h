/* safetensors.h - read and write safetensors files, the tensor format of
 * Hugging Face models (docs/design.md §14).
 *
 * A file is an 8-byte little-endian header length N, N bytes of JSON
 *     {"NAME": {"dtype": "F32", "shape": [2, 3], "data_offsets": [BEGIN, END]}, ...,
 *      "__metadata__": {"KEY": "VALUE", ...}}            (metadata optional)
 * then the data: each tensor's bytes, little-endian, C order, at
 * [8 + N + BEGIN, 8 + N + END). The reader trusts nothing: the header
 * length against the file and a 100 MB cap, the JSON (json.h limits), every
 * entry's keys and types, the dtype, the shape's element count times the
 * dtype size against END - BEGIN (overflow-checked), and the offsets, which
 * must tile the data exactly (no gap, no overlap, nothing after the last
 * tensor); duplicate names are refused. Each error names the file and the
 * tensor or key. F32, F16 and BF16 tensors are read as float32 (exact
 * conversions: subnormals, infinities and NaN payloads kept); other dtypes
 * are named and refused.
 *
 * A model directory holds model.safetensors or, sharded,
 * model.safetensors.index.json ({"weight_map": {NAME: FILE}}) and the
 * files it names, which must lie in the same directory (a FILE with a path
 * separator, "." or ".." is refused); every tensor of a shard must be
 * mapped to that shard.
 *
 * The writer writes float32 tensors with the header padded by spaces so
 * that the data start at a multiple of 8, atomically ("<path>.tmp", then a
 * rename; fileio.h), tensor by tensor so that a caller can transpose one at
 * a time.
 *
 *     ra_st *st;
 *     RA_TRY(ra_st_open_dir(&st, "llama/"));          // or ra_st_open(&st, "x.safetensors")
 *     const ra_st_tensor *t = ra_st_find(st, "model.norm.weight");
 *     RA_TRY(ra_st_read(st, t, buf));                 // t->count floats
 *     ra_st_close(st);
 *
 *     ra_st_writer *w;
 *     RA_TRY(ra_st_write_begin(&w, "out.safetensors", specs, n, meta, nmeta));
 *     for (i = 0; i < n && st == RA_OK; i++) st = ra_st_write_next(w, data[i]);
 *     RA_TRY(ra_st_write_end(w, st));                  // commits only when all went well
 */
#ifndef RINGATTN_SAFETENSORS_H
#define RINGATTN_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "ringattn/status.h"

#define RA_ST_MAX_DIMS 8
#define RA_ST_MAX_HEADER 100000000u /* bytes of JSON header (as the reference implementation) */
#define RA_ST_INDEX_NAME "model.safetensors.index.json"
#define RA_ST_FILE_NAME "model.safetensors"

typedef enum { RA_ST_F32, RA_ST_F16, RA_ST_BF16 } ra_st_dtype;

typedef struct {
    const char *name;      /* UTF-8, NUL-terminated */
    ra_st_dtype dtype;
    int ndim;              /* 0 (a scalar) .. RA_ST_MAX_DIMS */
    int64_t shape[RA_ST_MAX_DIMS];
    int64_t count;         /* elements: the product of shape */
    uint64_t begin, end;   /* bytes within the data part of its file */
    int file;              /* which file of the set (ra_st_file_path) */
} ra_st_tensor;

typedef struct ra_st ra_st;

/* One safetensors file. */
ra_status ra_st_open(ra_st **out, const char *path);
/* A model directory: DIR/model.safetensors when it exists, else
 * DIR/model.safetensors.index.json and its shards. */
ra_status ra_st_open_dir(ra_st **out, const char *dir);
void ra_st_close(ra_st *st);

int ra_st_count(const ra_st *st);
/* Tensors sorted by name (i < ra_st_count). */
const ra_st_tensor *ra_st_tensor_at(const ra_st *st, int i);
const ra_st_tensor *ra_st_find(const ra_st *st, const char *name);
int ra_st_files(const ra_st *st);
const char *ra_st_file_path(const ra_st *st, int file);
/* What was opened, for messages: the file, or the index and its shards. */
const char *ra_st_source(const ra_st *st);
/* A metadata value of file 0 (NULL when absent). */
const char *ra_st_metadata(const ra_st *st, const char *key);
/* "F32", "F16", "BF16" */
const char *ra_st_dtype_name(ra_st_dtype d);

/* t's count values converted to float32 into out. The file is reopened and
 * must be the one that was opened (device, inode and size). */
ra_status ra_st_read(const ra_st *st, const ra_st_tensor *t, float *out);

/* The conversions of ra_st_read, exact. */
float ra_st_f16_to_f32(uint16_t h);
float ra_st_bf16_to_f32(uint16_t b);

/* ---- writing ---- */

typedef struct {
    const char *name; /* non-empty UTF-8, unique */
    int ndim;
    int64_t shape[RA_ST_MAX_DIMS];
} ra_st_spec;

typedef struct ra_st_writer ra_st_writer;

/* Check the specs, create "<path>.tmp" and write the header (tensors in the
 * given order; meta: nmeta key/value string pairs, meta[2i] the key). */
ra_status ra_st_write_begin(ra_st_writer **out, const char *path, const ra_st_spec *t, int n,
                            const char *const *meta, int nmeta);
/* The next tensor's values (its element count of floats). */
ra_status ra_st_write_next(ra_st_writer *w, const float *data);
/* With st == RA_OK and every tensor written: sync, rename over path;
 * otherwise remove the temporary file. Frees w; returns the first failure. */
ra_status ra_st_write_end(ra_st_writer *w, ra_status st);
/* The same, but the complete file stays at "<path>.tmp", to be renamed with
 * other outputs by ra_atomic_commit_all (fileio.h). */
ra_status ra_st_write_stage(ra_st_writer *w, ra_status st);

#endif
