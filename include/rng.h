/* rng.h: counter-based random numbers (Philox4x32-10 from Random123).
 *
 * A random value is a pure function of (seed, stream, a, b, index): no generator state, so the
 * noise of image i at step s is the same whichever thread or rank draws it, and resume is exact. */
#ifndef DDPM_RNG_H
#define DDPM_RNG_H

#include <stddef.h>
#include <stdint.h>

/* What the numbers are for; keeps streams of different purposes independent. */
typedef enum {
    RNG_INIT = 1,     /* parameter init: a = tensor index */
    RNG_TIMESTEP = 2, /* training timesteps: a = step, b = global image index */
    RNG_NOISE = 3,    /* training noise eps: a = step, b = global image index */
    RNG_SHUFFLE = 4,  /* data order: a = epoch */
    RNG_SAMPLE = 5,   /* sampling noise: a = sampler step, b = image index */
    RNG_CLASSIFIER = 6, /* evaluation classifier: data order, a = epoch, b = position */
    RNG_EVAL = 7,     /* evaluation: noise added to real images, b = image index */
    RNG_LABEL_DROP = 8, /* conditional training: label -> null, a = step, b = global image index */
    RNG_DROPOUT = 9,  /* dropout masks: a = step, b = global image index x 1024 + dropout op */
    RNG_TEST = 99     /* tests and benchmarks */
} RngStream;

/* Four independent uniform 32-bit words for counter (a, b, block). */
void rng_words(uint64_t seed, RngStream stream, uint32_t a, uint32_t b, uint32_t block,
               uint32_t out[4]);

/* Fill out[0..n) with U[lo, hi) floats / N(0, 1) floats for the key (seed, stream, a, b). */
void rng_uniform(float *out, size_t n, float lo, float hi, uint64_t seed, RngStream stream,
                 uint32_t a, uint32_t b);
void rng_normal(float *out, size_t n, uint64_t seed, RngStream stream, uint32_t a, uint32_t b);

/* Uniform integer in [0, n) for (seed, stream, a, b). */
uint32_t rng_below(uint32_t n, uint64_t seed, RngStream stream, uint32_t a, uint32_t b);

#endif
