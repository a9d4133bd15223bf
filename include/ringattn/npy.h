/* npy.h - NumPy .npy files, read and written in slabs.
 *
 * Supports format versions 1.0, 2.0 and 3.0, C order, little-endian (or
 * byte-order-free) float32, float64, int32 and int64. A rank never reads or
 * writes the whole array: it opens the file, checks the header, then moves
 * runs of elements with positioned I/O (pread/pwrite), converting on the way.
 *
 *     ra_npy f;
 *     RA_TRY(ra_npy_open(&f, "q.npy"));          // header checked, size checked
 *     // f.shape = {H, L, D}: read rows [a, a+n) of head h as float32
 *     RA_TRY(ra_npy_read_f32(&f, (h * L + a) * D, n * D, dst));
 *     ra_npy_close(&f);
 *
 * Writing is atomic for the collective writer (see ring I/O in the CLI):
 * data goes to "<path>.tmp" (fileio.h), which is renamed to path only when every
 * writer succeeded, so a failed run never leaves a half-written path. */
#ifndef RINGATTN_NPY_H
#define RINGATTN_NPY_H

#include <stdint.h>

#include "ringattn/status.h"

#define RA_NPY_MAX_DIMS 8

/* uint16 and uint32 are token files (data.h); ra_npy_read_f32/i32 refuse them. */
typedef enum { RA_DT_F32, RA_DT_F64, RA_DT_I32, RA_DT_I64, RA_DT_U16, RA_DT_U32 } ra_dtype;

typedef struct {
    char path[1024];       /* as given, for error messages */
    ra_dtype dtype;
    int ndim;              /* 0 .. RA_NPY_MAX_DIMS */
    int64_t shape[RA_NPY_MAX_DIMS];
    int64_t count;         /* product of shape (1 for ndim == 0) */
    int64_t data_offset;   /* bytes from the start of the file to element 0 */
    int fd;                /* -1 when closed */
} ra_npy;

const char *ra_dtype_name(ra_dtype dt); /* "float32", "float64", "int32", "int64", "uint16", "uint32" */
int ra_dtype_size(ra_dtype dt);         /* bytes per element */

/* Open for reading and validate: magic "\x93NUMPY", version 1.0/2.0/3.0,
 * a well-formed header dict with 'descr', 'fortran_order', 'shape',
 * fortran_order False, descr one of <f4 <f8 <i4 <i8 <u2 <u4 (or '|'/'='
 * forms that are unambiguous on little-endian), and a file long enough for
 * the data.
 * Every error names f->path and says what was found and what was expected,
 * for example "k.npy: truncated: header promises 4096 bytes of data, file
 * has 1000". A FIFO, directory or device is refused by name without being
 * read ("q.npy: is a FIFO (named pipe), not a regular file"). */
ra_status ra_npy_open(ra_npy *f, const char *path);

/* Read count elements starting at element index first (C order), converting
 * to float32 (from f4 or f8; an integer file is an RA_ERR_FORMAT error naming
 * the dtype) or to int32 (from i4 or i8; a value outside int32 is an error
 * naming the file and the element index; a float file is an error). */
ra_status ra_npy_read_f32(const ra_npy *f, int64_t first, int64_t count, float *dst);
ra_status ra_npy_read_i32(const ra_npy *f, int64_t first, int64_t count, int32_t *dst);
/* count elements as float64 (from f8, or f4 widened exactly). */
ra_status ra_npy_read_f64(const ra_npy *f, int64_t first, int64_t count, double *dst);

/* Create "<path>.tmp" (a stale one removed first, never followed) with a version 1.0 header (2.0 when the header
 * needs it) for a float32 array of the given shape, sized to the full data
 * length (ftruncate), and open it for writing. Only one process creates. */
ra_status ra_npy_create_f32(ra_npy *f, const char *path, int ndim, const int64_t *shape);
/* Open "<path>.tmp", made by ra_npy_create_f32 in another process, for
 * writing; checks its header against ndim/shape. */
ra_status ra_npy_open_partial(ra_npy *f, const char *path, int ndim, const int64_t *shape);
/* Write count float32 elements at element index first. */
ra_status ra_npy_write_f32(const ra_npy *f, int64_t first, int64_t count, const float *src);
/* fsync and close a file opened for writing; reports fsync/close errors. */
ra_status ra_npy_sync_close(ra_npy *f);
/* Rename "<path>.tmp" to path and fsync the directory (commit; the one
 * policy of fileio.h) or remove it (abort). */
ra_status ra_npy_commit(const char *path);
void ra_npy_abort(const char *path);

/* Close a file opened for reading (safe on a closed or zeroed ra_npy). */
void ra_npy_close(ra_npy *f);

/* Convenience for small arrays held whole (tests, generators): write a
 * float32 or int32 array atomically (.tmp + fsync + rename) in one call,
 * and load a whole array converted to float32. *out is malloc'd. */
ra_status ra_npy_save_f32(const char *path, int ndim, const int64_t *shape, const float *data);
ra_status ra_npy_save_i32(const char *path, int ndim, const int64_t *shape, const int32_t *data);
ra_status ra_npy_load_f32(const char *path, ra_npy *info, float **out);
/* As ra_npy_save_i32, but the file stays at "<path>.tmp" for a commit of a
 * set of outputs (ra_outputs_finish, dist.h). */
ra_status ra_npy_stage_i32(const char *path, int ndim, const int64_t *shape, const int32_t *data);

/* Render a shape as "[4, 128, 64]" into buf (for messages). */
const char *ra_shape_str(char *buf, int buflen, int ndim, const int64_t *shape);

#endif
