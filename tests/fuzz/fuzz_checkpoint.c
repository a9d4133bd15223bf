/* fuzz_checkpoint.c - libFuzzer harness for the checkpoint loader
 * (checkpoint.h: ra_ckpt_peek, ra_ckpt_load).
 *
 * The input is a checkpoint file; it goes into a memfd opened through
 * /proc/self/fd/N. A random mutation almost never keeps the CRC-64 and the
 * total_len field right, so each input is tried twice: as it is (the magic,
 * length and checksum checks), and with total_len set to the input size and
 * the checksum recomputed (everything behind the checksum: the structure
 * checks, the tensor list, the values).
 *
 * When peek accepts a file, load runs with a tensor list of one of a few
 * shapes ("params" alone or params/adam_m/adam_v, 0, 1, 16 or 100 values
 * each; the seeds use the same names and sizes), picked from the file's own
 * tensor count and first count, or deliberately wrong (see pick_list). Properties, each an abort:
 * - a failed peek or load hands out no config text;
 * - a failed load leaves every value of the caller's tensors untouched;
 * - a successful load hands out the same config text and state as peek,
 *   and the values are the file's bytes (checked against the input);
 * - the config text contains no NUL (it is parsed as a config too, as
 *   `ringattn generate` does). */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "ringattn/checkpoint.h"
#include "ringattn/config.h"

#define MAX_INPUT (1 << 20)
#define MAX_VALUES 100
#define SENTINEL 0x7fc0dead /* a NaN pattern no file value is compared with */

static int mem_fd = -1;
static char mem_path[64];

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_checkpoint: %s\n", what);
    abort();
}

static void put_input(const uint8_t *data, size_t size)
{
    if (mem_fd < 0) {
        mem_fd = memfd_create("fuzz.ckpt", MFD_CLOEXEC);
        if (mem_fd < 0) fail("memfd_create failed");
        snprintf(mem_path, sizeof mem_path, "/proc/self/fd/%d", mem_fd);
    }
    if (ftruncate(mem_fd, 0) != 0) fail("ftruncate failed");
    for (size_t done = 0; done < size;) {
        ssize_t w = pwrite(mem_fd, data + done, size - done, (off_t)done);
        if (w <= 0) fail("pwrite failed");
        done += (size_t)w;
    }
}

/* CRC-64/XZ, bytewise (an independent implementation of the file's sum). */
static uint64_t crc64(const uint8_t *p, size_t n)
{
    static uint64_t table[256];
    if (!table[1])
        for (unsigned i = 0; i < 256; i++) {
            uint64_t r = i;
            for (int b = 0; b < 8; b++) r = (r & 1) ? (r >> 1) ^ 0xC96C5795D7870F42ull : r >> 1;
            table[i] = r;
        }
    uint64_t reg = UINT64_MAX;
    while (n--) reg = table[(reg ^ *p++) & 0xFF] ^ (reg >> 8);
    return ~reg;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++) p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--) v = v << 8 | p[i];
    return v;
}

static float store[3][MAX_VALUES];

static void fill_sentinel(void)
{
    uint32_t s = SENTINEL;
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < MAX_VALUES; i++) memcpy(&store[t][i], &s, 4);
}

static bool untouched(void)
{
    uint32_t s = SENTINEL;
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < MAX_VALUES; i++)
            if (memcmp(&store[t][i], &s, 4) != 0) return false;
    return true;
}

/* The values of tensor t in the file, located independently of the loader:
 * entries follow the state, each name_len u16, name, count u64, zero
 * padding to 64, values. Only called on files the loader accepted. */
static const uint8_t *values_in_file(const uint8_t *data, size_t size, int t)
{
    uint64_t off = 28 + (uint64_t)(data[24] | data[25] << 8 | data[26] << 16 | (uint32_t)data[27] << 24) + 56 + 4;
    for (int i = 0;; i++) {
        if (off + 2 > size) fail("accepted file: entry past the end");
        uint64_t nl = data[off] | data[off + 1] << 8;
        if (off + 2 + nl + 8 > size) fail("accepted file: entry header past the end");
        uint64_t count = get_u64(data + off + 2 + nl);
        uint64_t at = (off + 2 + nl + 8 + 63) / 64 * 64;
        if (i == t) return data + at;
        off = at + count * 4;
    }
}

/* The tensor list to load with: as many tensors as the file has (0, 1 or
 * 3) and its first tensor's count when that is one of ours, so that most
 * accepted files load and the rest take the mismatch paths. One load per
 * file: every load allocates the loader's 1 MiB buffer, which dominates the
 * cost under ASan. */
static int pick_list(const uint8_t *data, size_t size, uint64_t *count)
{
    static const uint64_t counts[] = {0, 1, 16, MAX_VALUES};
    uint64_t clen = data[24] | data[25] << 8 | data[26] << 16 | (uint64_t)data[27] << 24;
    uint64_t at = 28 + clen + 56;
    uint32_t nt = data[at] | data[at + 1] << 8 | data[at + 2] << 16 | (uint32_t)data[at + 3] << 24;
    size_t ci = 2; /* 16 */
    if (nt > 0) {
        uint64_t nl = data[at + 4] | data[at + 5] << 8;
        uint64_t c = get_u64(data + at + 6 + nl);
        for (size_t i = 0; i < sizeof counts / sizeof counts[0]; i++)
            if (c == counts[i]) ci = i;
    }
    int n = nt == 0 ? 0 : nt == 1 ? 1 : 3;
    /* a quarter of the files with a wrong count, a quarter with a wrong
     * number of tensors (chosen by the checksum: fixed for a given input) */
    unsigned mode = data[size - 8] & 3;
    if (mode == 0) ci = (ci + 1) % (sizeof counts / sizeof counts[0]);
    if (mode == 1) n = n == 0 ? 1 : n == 1 ? 3 : 1;
    *count = counts[ci];
    return n;
}

static void check_file(const uint8_t *data, size_t size)
{
    static const char *const names[3] = {"params", "adam_m", "adam_v"};
    char *text = (char *)data; /* any non-NULL value: must be reset */
    ra_ckpt_state st, st2;
    if (ra_ckpt_peek(mem_path, &text, &st) != RA_OK) {
        if (text) fail("failed peek handed out a config text");
        return;
    }
    if (!text) fail("peek succeeded without a config text");
    ra_config *cfg = malloc(sizeof *cfg);
    if (!cfg) abort();
    ra_config_defaults(cfg);
    if (ra_config_parse(cfg, text, "checkpoint") == RA_OK) (void)ra_config_finish(cfg);
    free(cfg);

    uint64_t count;
    int n = pick_list(data, size, &count);
    ra_ckpt_tensor list[3];
    for (int t = 0; t < n; t++) list[t] = (ra_ckpt_tensor){names[t], store[t], count};
    fill_sentinel();
    char *text2 = (char *)data;
    memset(&st2, 0, sizeof st2);
    if (ra_ckpt_load(mem_path, &text2, &st2, list, n) != RA_OK) {
        if (text2) fail("failed load handed out a config text");
        if (!untouched()) fail("failed load wrote into the caller's tensors");
    } else {
        if (!text2 || strcmp(text, text2) != 0) fail("load and peek disagree on the config text");
        if (memcmp(&st, &st2, sizeof st) != 0) fail("load and peek disagree on the state");
        free(text2);
        uint32_t s = SENTINEL;
        for (int t = 0; t < n; t++) {
            if (count && memcmp(values_in_file(data, size, t), store[t], count * 4) != 0)
                fail("loaded values differ from the file");
            for (int i = (int)count; i < MAX_VALUES; i++)
                if (memcmp(&store[t][i], &s, 4) != 0) fail("load wrote past a tensor");
        }
    }
    free(text);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > MAX_INPUT) return -1;
    put_input(data, size);
    check_file(data, size);
    if (size < 36 || memcmp(data, "RACKPT\r\n", 8) != 0) return 0;
    /* the same bytes with a consistent length and checksum */
    uint8_t *fixed = malloc(size);
    if (!fixed) abort();
    memcpy(fixed, data, size);
    put_u64(fixed + 16, size);
    put_u64(fixed + size - 8, crc64(fixed, size - 8));
    if (memcmp(fixed, data, size) != 0) {
        put_input(fixed, size);
        check_file(fixed, size);
    }
    free(fixed);
    return 0;
}
