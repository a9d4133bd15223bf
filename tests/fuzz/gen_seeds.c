/* gen_seeds.c - writes the checkpoint seeds of the fuzz corpus with the
 * library's own writer (ra_ckpt_save): a few small checkpoints whose tensor
 * names and sizes are the ones fuzz_checkpoint.c loads with.
 *
 *     build-fuzz/tests/fuzz/gen_seeds CONFIG_DIR OUT_DIR
 *
 * Not a test; run by hand when the checkpoint format changes. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ringattn/checkpoint.h"
#include "ringattn/config.h"

static void save(const char *dir, const char *name, const char *text, int n, uint64_t count)
{
    static const char *const names[3] = {"params", "adam_m", "adam_v"};
    static float v[3][100];
    for (int t = 0; t < 3; t++)
        for (int i = 0; i < 100; i++) v[t][i] = (float)(t + 1) * 0.25f * (float)(i - 50);
    ra_ckpt_tensor list[3];
    for (int t = 0; t < n; t++) list[t] = (ra_ckpt_tensor){names[t], v[t], count};
    ra_ckpt_state st = {.step = 7, .seed = 1, .data_pos = 28, .extra = {1, 2, 3, 4}};
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    if (ra_ckpt_save(path, text, &st, list, n) != RA_OK) {
        fprintf(stderr, "gen_seeds: %s\n", ra_last_error());
        exit(1);
    }
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: gen_seeds CONFIG_DIR OUT_DIR\n");
        return 2;
    }
    char ini[4096];
    snprintf(ini, sizeof ini, "%s/tiny.ini", argv[1]);
    ra_config cfg;
    if (ra_config_load(&cfg, ini) != RA_OK || ra_config_finish(&cfg) != RA_OK) {
        fprintf(stderr, "gen_seeds: %s\n", ra_last_error());
        return 1;
    }
    char *tiny = ra_config_text(&cfg);
    if (!tiny) return 1;
    save(argv[2], "empty.ckpt", NULL, 0, 0);
    save(argv[2], "params1.ckpt", "[model]\ndim = 32\n", 1, 1);
    save(argv[2], "params16.ckpt", tiny, 1, 16);
    save(argv[2], "adam16.ckpt", "[train]\nsteps = 7\n", 3, 16);
    save(argv[2], "adam100.ckpt", "[model]\nlayers = 1\n", 3, 100);
    save(argv[2], "adam0.ckpt", "", 3, 0);
    free(tiny);
    return 0;
}
