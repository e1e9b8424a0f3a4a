/* Machine probes: measured read bandwidth and int8 multiply-add peak. */
#include "backend/cpu/probe.h"

#include <string.h>

#if defined(__x86_64__)
#include <immintrin.h>
#define OB_AVX2 __attribute__((target("avx2")))
#define OB_VNNI __attribute__((target("avx2,avx512f,avx512bw,avx512vl,avx512vnni")))
/* acc += dpbusd(a, b), accumulator tied in place (see kernels_avx512.c: GCC 12
 * wraps the intrinsic in register copies, which would understate the peak). */
#if defined(__GNUC__) && !defined(__clang__)
#define DPBUSD(acc, a, b) __asm__("vpdpbusd %2, %1, %0" : "+v"(acc) : "v"(a), "v"(b))
#else
#define DPBUSD(acc, a, b) ((acc) = _mm256_dpbusd_epi32((acc), (a), (b)))
#endif
#endif
#include "backend/cpu/neon_target.h" /* aarch64: sdot chains where the compiler allows them */

#define UNROLL _Pragma("GCC unroll 16")

enum { STEP = 256 }; /* bytes per read-loop iteration; shares are multiples of it */

/* ---- read bandwidth ------------------------------------------------------ */

typedef struct {
    const uint8_t *buf;
    size_t bytes;
    uint64_t sink[64]; /* one slot per thread up to 64; keeps the loads live */
} read_job;

#if defined(__x86_64__)
static OB_AVX2 uint64_t read_span(const uint8_t *p, size_t n) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    for (size_t i = 0; i < n; i += STEP) {
        const __m256i *v = (const __m256i *)(p + i);
        a = _mm256_xor_si256(a, _mm256_load_si256(v + 0));
        b = _mm256_xor_si256(b, _mm256_load_si256(v + 1));
        c = _mm256_xor_si256(c, _mm256_load_si256(v + 2));
        d = _mm256_xor_si256(d, _mm256_load_si256(v + 3));
        a = _mm256_xor_si256(a, _mm256_load_si256(v + 4));
        b = _mm256_xor_si256(b, _mm256_load_si256(v + 5));
        c = _mm256_xor_si256(c, _mm256_load_si256(v + 6));
        d = _mm256_xor_si256(d, _mm256_load_si256(v + 7));
    }
    __m256i x = _mm256_xor_si256(_mm256_xor_si256(a, b), _mm256_xor_si256(c, d));
    return (uint64_t)_mm256_extract_epi64(x, 0) ^ (uint64_t)_mm256_extract_epi64(x, 3);
}
#endif

static uint64_t read_span_plain(const uint8_t *p, size_t n) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    for (size_t i = 0; i < n; i += 32) {
        uint64_t v[4];
        memcpy(v, p + i, sizeof v);
        a ^= v[0], b ^= v[1], c ^= v[2], d ^= v[3];
    }
    return a ^ b ^ c ^ d;
}

static void read_task(void *arg, int ith, int nth) {
    read_job *j = arg;
    int64_t begin, end;
    ob_split_range((int64_t)j->bytes, ith, nth, 1 << 16, &begin, &end);
    uint64_t s;
#if defined(__x86_64__)
    if (__builtin_cpu_supports("avx2")) s = read_span(j->buf + begin, (size_t)(end - begin));
    else
#endif
        s = read_span_plain(j->buf + begin, (size_t)(end - begin));
    j->sink[ith & 63] ^= s;
}

ob_status ob_probe_read_bw(ob_pool *pool, size_t bytes, int passes, double *gbps) {
    *gbps = 0;
    if (!bytes) bytes = (size_t)512 << 20;
    if (passes <= 0) passes = 5;
    bytes = (bytes + STEP - 1) / STEP * STEP;
    read_job *j = ob_aligned_alloc(sizeof *j);
    uint8_t *buf = ob_aligned_alloc(bytes);
    if (!j || !buf) {
        ob_aligned_free(j);
        ob_aligned_free(buf);
        return ob_fail(OB_ERR_NOMEM, "bandwidth probe: cannot allocate %zu MiB", bytes >> 20);
    }
    memset(j, 0, sizeof *j);
    for (size_t i = 0; i < bytes; i += 4096) buf[i] = (uint8_t)i; /* map every page before timing */
    memset(buf, 1, bytes);
    j->buf = buf;
    j->bytes = bytes;
    ob_pool_run(pool, read_task, j); /* warm-up */
    double best = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = ob_time_s();
        ob_pool_run(pool, read_task, j);
        double dt = ob_time_s() - t0;
        if (dt > 0 && (double)bytes / dt > best) best = (double)bytes / dt;
    }
    *gbps = best / 1e9;
    ob_aligned_free(buf);
    ob_aligned_free(j);
    return OB_OK;
}

/* ---- int8 multiply-add peak ----------------------------------------------
 * 12 independent chains per thread: enough to cover the latency (4-5 cycles)
 * times the issue rate (2 per cycle) of these instructions on current cores. */

enum { CHAINS = 12 };

typedef enum { PEAK_SCALAR, PEAK_AVX2, PEAK_VNNI, PEAK_SMLAL, PEAK_SDOT } peak_kind;

typedef struct {
    peak_kind kind;
    int64_t iters;
    uint64_t sink[64];
} peak_job;

/* The chains are 12 named variables (an array of them can end up in memory
 * once inline asm touches its elements). */
#define CHAIN_VARS(T) T x0, x1, x2, x3, x4, x5, x6, x7, x8, x9, x10, x11
#define EACH_CHAIN(OP) OP(x0); OP(x1); OP(x2); OP(x3); OP(x4); OP(x5); OP(x6); OP(x7); OP(x8); OP(x9); OP(x10); OP(x11)
/* Distinct starting values, so no two chains are the same computation. */
#define INIT_CHAINS(SET1)                                                                                  \
    (x0 = SET1(1), x1 = SET1(2), x2 = SET1(3), x3 = SET1(4), x4 = SET1(5), x5 = SET1(6), x6 = SET1(7),     \
     x7 = SET1(8), x8 = SET1(9), x9 = SET1(10), x10 = SET1(11), x11 = SET1(12))
#define FOLD_CHAINS(XOR) XOR(XOR(XOR(XOR(x0, x1), XOR(x2, x3)), XOR(XOR(x4, x5), XOR(x6, x7))), XOR(XOR(x8, x9), XOR(x10, x11)))

#if defined(__x86_64__)

/* 32 u8 x s8 products per vpmaddubsw (pairs summed into int16). */
static OB_AVX2 uint64_t peak_avx2(int64_t iters) {
    __m256i b = _mm256_set1_epi8(3);
    CHAIN_VARS(__m256i);
    INIT_CHAINS(_mm256_set1_epi8);
#define STEP_AVX2(x) x = _mm256_maddubs_epi16(x, b)
    for (int64_t i = 0; i < iters; i++) { EACH_CHAIN(STEP_AVX2); }
    __m256i s = FOLD_CHAINS(_mm256_xor_si256);
    return (uint64_t)_mm256_extract_epi64(s, 0);
}

/* 32 u8 x s8 multiply-adds per 256-bit vpdpbusd (into int32). */
static OB_VNNI uint64_t peak_vnni(int64_t iters) {
    __m256i a = _mm256_set1_epi8(1), b = _mm256_set1_epi8(3);
    CHAIN_VARS(__m256i);
    INIT_CHAINS(_mm256_set1_epi32);
#define STEP_VNNI(x) DPBUSD(x, a, b)
    for (int64_t i = 0; i < iters; i++) { EACH_CHAIN(STEP_VNNI); }
    __m256i s = FOLD_CHAINS(_mm256_xor_si256);
    return (uint64_t)_mm256_extract_epi64(s, 0);
}
#endif

#if defined(__aarch64__)
/* The multiplicands come from a volatile: with constant ones GCC turned the
 * smlal chains into a closed form. */
static int8_t peak_seed(void) {
    volatile int8_t seed = 3;
    return seed;
}

/* 8 s8 x s8 multiply-adds per smlal (into int16): the neon set's op. */
static uint64_t peak_smlal(int64_t iters) {
    int8x8_t a = vdup_n_s8((int8_t)(peak_seed() - 2)), b = vdup_n_s8(peak_seed());
    CHAIN_VARS(int16x8_t);
    INIT_CHAINS(vdupq_n_s16);
#define STEP_SMLAL(x) x = vmlal_s8(x, a, b)
    for (int64_t i = 0; i < iters; i++) { EACH_CHAIN(STEP_SMLAL); }
    int16x8_t s = FOLD_CHAINS(veorq_s16);
    return (uint64_t)(uint16_t)vgetq_lane_s16(s, 0);
}

#if HAVE_DOTPROD
/* 16 s8 x s8 multiply-adds per sdot (into int32): the neon-dotprod set's op. */
static OB_DOTPROD uint64_t peak_sdot(int64_t iters) {
    int8x16_t a = vdupq_n_s8((int8_t)(peak_seed() - 2)), b = vdupq_n_s8(peak_seed());
    CHAIN_VARS(int32x4_t);
    INIT_CHAINS(vdupq_n_s32);
#define STEP_SDOT(x) x = vdotq_s32(x, a, b)
    for (int64_t i = 0; i < iters; i++) { EACH_CHAIN(STEP_SDOT); }
    int32x4_t s = FOLD_CHAINS(veorq_s32);
    return (uint64_t)(uint32_t)vgetq_lane_s32(s, 0);
}
#else
#define peak_sdot peak_smlal /* never chosen: HAVE_DOTPROD gates PEAK_SDOT below */
#endif
#endif

/* Scalar: CHAINS int32 multiply-add chains, 1 product per step each. */
static uint64_t peak_scalar(int64_t iters) {
    volatile int32_t seed = 3;
    uint32_t b = (uint32_t)seed, x[CHAINS]; /* unsigned: wraps, no overflow UB */
    for (int c = 0; c < CHAINS; c++) x[c] = (uint32_t)c;
    for (int64_t i = 0; i < iters; i++)
        UNROLL for (int c = 0; c < CHAINS; c++) x[c] = x[c] * b + (uint32_t)i;
    uint32_t s = 0;
    for (int c = 0; c < CHAINS; c++) s ^= x[c];
    return s;
}

static void peak_task(void *arg, int ith, int nth) {
    (void)nth;
    peak_job *j = arg;
    uint64_t s;
    switch (j->kind) {
#if defined(__x86_64__)
    case PEAK_AVX2: s = peak_avx2(j->iters); break;
    case PEAK_VNNI: s = peak_vnni(j->iters); break;
#endif
#if defined(__aarch64__)
    case PEAK_SMLAL: s = peak_smlal(j->iters); break;
    case PEAK_SDOT: s = peak_sdot(j->iters); break;
#endif
    default: s = peak_scalar(j->iters); break;
    }
    j->sink[ith & 63] ^= s;
}

ob_status ob_probe_int8_peak(ob_pool *pool, const char *kernels, double seconds, int passes, double *gops,
                             const char **how) {
    *gops = 0;
    if (seconds <= 0) seconds = 0.1;
    if (passes <= 0) passes = 3;
    peak_job j = { .kind = PEAK_SCALAR };
    double macs_per_iter = CHAINS; /* per thread */
    const char *name = "scalar int32 multiply-add";
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (kernels && !strcmp(kernels, "avx512vnni") && __builtin_cpu_supports("avx512vnni") &&
        __builtin_cpu_supports("avx512vl")) {
        j.kind = PEAK_VNNI, macs_per_iter = CHAINS * 32.0, name = "vpdpbusd ymm (avx512vnni)";
    } else if (kernels && (!strcmp(kernels, "avx2") || !strcmp(kernels, "avx512vnni")) &&
               __builtin_cpu_supports("avx2")) {
        j.kind = PEAK_AVX2, macs_per_iter = CHAINS * 32.0, name = "vpmaddubsw ymm (avx2)";
    }
#endif
#if defined(__aarch64__)
    if (kernels && !strcmp(kernels, "neon-dotprod") && HAVE_DOTPROD && (getauxval(AT_HWCAP) & HWCAP_ASIMDDP))
        j.kind = PEAK_SDOT, macs_per_iter = CHAINS * 16.0, name = "sdot (neon-dotprod)";
    else if (kernels && (!strcmp(kernels, "neon") || !strcmp(kernels, "neon-dotprod")))
        j.kind = PEAK_SMLAL, macs_per_iter = CHAINS * 8.0, name = "smlal (neon)";
#endif
    if (how) *how = name;
    /* Calibrate the iteration count on one thread, then time all of them. */
    j.iters = 1 << 14;
    for (;;) {
        double t0 = ob_time_s();
        peak_task(&j, 0, 1);
        double dt = ob_time_s() - t0;
        if (dt > seconds / 8 || j.iters > ((int64_t)1 << 40)) {
            j.iters = (int64_t)((double)j.iters * seconds / (dt > 0 ? dt : 1e-9)) + 1;
            break;
        }
        j.iters *= 4;
    }
    int nth = ob_pool_size(pool);
    double best = 0;
    for (int p = 0; p < passes; p++) {
        double t0 = ob_time_s();
        ob_pool_run(pool, peak_task, &j);
        double dt = ob_time_s() - t0;
        double rate = 2.0 * macs_per_iter * (double)j.iters * nth / dt;
        if (dt > 0 && rate > best) best = rate;
    }
    *gops = best / 1e9;
    return OB_OK;
}
