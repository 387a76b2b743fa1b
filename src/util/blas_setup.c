/* blas_setup.c: make BLIS use real kernels on CPUs newer than the BLIS release.
 *
 * Debian 12's BLIS 0.9 picks its kernels from the CPU model, and it does not know AMD's family
 * 0x1A (Zen 5): it falls back to the portable "generic" kernels, 3-5x slower (measured on this
 * project's 2-core EPYC VM: 33 GFLOP/s instead of 190 on a square sgemm). When the user has not
 * chosen (BLIS_ARCH_TYPE unset) and the CPU is such a newer AMD part, this picks the known
 * configuration its instruction set supports: skx with AVX-512 (F, DQ, BW, VL), zen3 with AVX2
 * and FMA. It runs as a constructor, before anything calls BLIS, in every program of the project.
 * Intel CPUs are detected by BLIS from their features and are left alone. */
#include <cpuid.h>
#include <stdio.h>
#include <stdlib.h>

#include "blis.h"

static unsigned amd_family(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(0, &a, &b, &c, &d)) return 0;
    /* vendor string "AuthenticAMD" in ebx, edx, ecx */
    if (b != 0x68747541u || d != 0x69746e65u || c != 0x444d4163u) return 0;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return 0;
    unsigned family = (a >> 8) & 0xf;
    if (family == 0xf) family += (a >> 20) & 0xff;
    return family;
}

__attribute__((constructor)) static void blas_setup(void) {
    if (getenv("BLIS_ARCH_TYPE")) return; /* the user's choice wins */
    if (amd_family() < 0x1a) return;     /* BLIS 0.9 knows every AMD family before Zen 5 */
    __builtin_cpu_init();
    int id = -1;
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq") &&
        __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512vl"))
        id = BLIS_ARCH_SKX;
    else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma"))
        id = BLIS_ARCH_ZEN3;
    if (id < 0) return;
    char value[16];
    snprintf(value, sizeof value, "%d", id);
    setenv("BLIS_ARCH_TYPE", value, 0);
}
