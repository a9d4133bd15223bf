/* fuzz_npy.c - libFuzzer harness for the .npy reader (npy.h).
 *
 * The reader only opens paths, so the input goes into a memfd (a regular
 * file in memory) opened through /proc/self/fd/N. A file that opens must
 * keep the header's promises, checked here against the raw input: ndim and
 * count consistent with the shape, the data inside the file, and every value
 * read equal to the bytes (float32/int32), their conversion (float64 ->
 * float32) or refused exactly when out of range (int64 -> int32). Reading
 * the other kind (float as int, int as float) must fail, and so must reading
 * a uint16/uint32 token file with either (npy.h). A broken promise
 * aborts. ra_npy_load_f32 (the whole-array convenience) runs on the same
 * file. */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ringattn/npy.h"

#define MAX_INPUT (1 << 20)

static int mem_fd = -1;
static char mem_path[64];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_npy: %s\n", what);
    abort();
}

static void put_input(const uint8_t *data, size_t size)
{
    if (mem_fd < 0) {
        mem_fd = memfd_create("fuzz.npy", MFD_CLOEXEC);
        if (mem_fd < 0) fail("memfd_create failed");
        snprintf(mem_path, sizeof mem_path, "/proc/self/fd/%d", mem_fd);
    }
    if (ftruncate(mem_fd, 0) != 0) fail("ftruncate failed");
    size_t done = 0;
    while (done < size) {
        ssize_t w = pwrite(mem_fd, data + done, size - done, (off_t)done);
        if (w <= 0) fail("pwrite failed");
        done += (size_t)w;
    }
}

static void check_header(const ra_npy *f, size_t size)
{
    if (f->ndim < 0 || f->ndim > RA_NPY_MAX_DIMS) fail("ndim out of range");
    int es = ra_dtype_size(f->dtype);
    if (es != 2 && es != 4 && es != 8) fail("unknown dtype accepted");
    /* numpy's rule: the non-zero extents' byte count fits in int64 */
    int64_t bytes = es;
    bool empty = false;
    for (int d = 0; d < f->ndim; d++) {
        if (f->shape[d] < 0) fail("negative dimension accepted");
        if (f->shape[d] == 0) empty = true;
        else if (__builtin_mul_overflow(bytes, f->shape[d], &bytes))
            fail("a shape whose non-zero extents overflow int64 in bytes accepted (numpy refuses it)");
    }
    if ((empty ? 0 : bytes / es) != f->count) fail("count is not the product of the shape");
    if (f->data_offset < 10 || (uint64_t)f->data_offset > size) fail("data offset outside the file");
    if ((uint64_t)f->count * (uint64_t)es > size - (uint64_t)f->data_offset) fail("data runs past the file");
    char buf[64];
    ra_shape_str(buf, sizeof buf, f->ndim, f->shape);
    if (!memchr(buf, '\0', sizeof buf)) fail("ra_shape_str overflowed");
}

static void check_values(const ra_npy *f, const uint8_t *data)
{
    const uint8_t *raw = data + f->data_offset;
    const int64_t n = f->count;
    float *fv = malloc((size_t)(n ? n : 1) * sizeof *fv);
    int32_t *iv = malloc((size_t)(n ? n : 1) * sizeof *iv);
    if (!fv || !iv) abort();
    bool is_float = f->dtype == RA_DT_F32 || f->dtype == RA_DT_F64;
    ra_status sf = ra_npy_read_f32(f, 0, n, fv), si = ra_npy_read_i32(f, 0, n, iv);
    if (f->dtype == RA_DT_U16 || f->dtype == RA_DT_U32) { /* token files (npy.h): neither reader takes them */
        if (sf == RA_OK || si == RA_OK) fail("a uint16/uint32 file was read as float32 or int32");
        free(fv);
        free(iv);
        return;
    }
    if (is_float) {
        if (sf != RA_OK) fail("a float file that opened cannot be read as float32");
        if (si == RA_OK && n > 0) fail("a float file was read as int32");
        for (int64_t i = 0; i < n; i++) {
            float want;
            if (f->dtype == RA_DT_F32) {
                memcpy(&want, raw + 4 * i, 4);
            } else {
                double d;
                memcpy(&d, raw + 8 * i, 8);
                want = (float)d;
            }
            if (memcmp(&want, &fv[i], 4) != 0) fail("float value differs from the file");
        }
    } else {
        if (sf == RA_OK && n > 0) fail("an int file was read as float32");
        bool all_fit = true;
        for (int64_t i = 0; i < n; i++) {
            int64_t want;
            if (f->dtype == RA_DT_I32) {
                int32_t v;
                memcpy(&v, raw + 4 * i, 4);
                want = v;
            } else {
                memcpy(&want, raw + 8 * i, 8);
            }
            if (want < INT32_MIN || want > INT32_MAX) {
                all_fit = false;
                break;
            }
            if (si == RA_OK && iv[i] != want) fail("int value differs from the file");
        }
        if ((si == RA_OK) != all_fit) fail("int64 -> int32 range check wrong");
    }
    /* a slab in the middle, and ranges that must be refused */
    if (n > 2) {
        if (is_float && ra_npy_read_f32(f, 1, n - 2, fv) != RA_OK) fail("slab read failed");
        if (!is_float && si == RA_OK && ra_npy_read_i32(f, 1, n - 2, iv) != RA_OK) fail("slab read failed");
    }
    if (ra_npy_read_f32(f, n, 1, fv) == RA_OK || ra_npy_read_f32(f, -1, 1, fv) == RA_OK)
        fail("out-of-range read accepted");
    free(fv);
    free(iv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return -1;
    put_input(data, size);
    ra_npy f;
    if (ra_npy_open(&f, mem_path) == RA_OK) {
        check_header(&f, size);
        check_values(&f, data);
        ra_npy_close(&f);
        ra_npy_close(&f); /* closing twice is allowed */
    }
    float *all = NULL;
    ra_npy info;
    if (ra_npy_load_f32(mem_path, &info, &all) == RA_OK) {
        if (!all) fail("load succeeded without a buffer");
        if (info.dtype != RA_DT_F32 && info.dtype != RA_DT_F64) fail("load_f32 accepted an int file");
    } else if (all) {
        fail("a failed load left a buffer");
    }
    free(all);
    return 0;
}
