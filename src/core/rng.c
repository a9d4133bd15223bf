/* rng.c - counter-based generator (splitmix64 finaliser). */
#include "ringattn/rng.h"

uint64_t ra_rand_u64(uint64_t seed, uint64_t i)
{
    uint64_t z = seed * 0x9E3779B97F4A7C15ull + i + 0x632BE59BD9B4E019ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    /* a second round so that nearby (seed, i) pairs decorrelate fully */
    z += 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

float ra_rand_uniform(uint64_t seed, uint64_t i)
{
    int32_t top = (int32_t)(ra_rand_u64(seed, i) >> 40); /* 24 bits */
    return (float)(top - (1 << 23)) * (1.0f / (float)(1 << 23));
}
