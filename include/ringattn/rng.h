/* rng.h - counter-based random numbers: value i of stream seed is a pure
 * function of (seed, i), so any rank can generate any slab of a generated
 * tensor without holding (or communicating) the rest. */
#ifndef RINGATTN_RNG_H
#define RINGATTN_RNG_H

#include <stdint.h>

/* splitmix64 finaliser of seed and index: 64 well-mixed bits. */
uint64_t ra_rand_u64(uint64_t seed, uint64_t i);
/* Uniform in [-1, 1), 24 random bits, exact in float32. */
float ra_rand_uniform(uint64_t seed, uint64_t i);

#endif
