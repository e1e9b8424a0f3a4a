/* CPU kernels: every compiled set that runs here against the scalar twins (and
 * the scalar twins against direct formulas), on odd sizes, unaligned row
 * ranges and fresh random data each run (OB_TEST_SEED replays a run). */
#include "testutil.h"

#include "backend/cpu/kernels.h"
#include "backend/cpu/probe.h"

#include <math.h>

static uint64_t rng;

static int rand_int(int lo, int hi) { return lo + (int)(ob_test_rand(&rng) % (uint64_t)(hi - lo + 1)); }
static float rand_unit(void) { return (float)((ob_test_rand(&rng) >> 40) * (1.0 / (1 << 24))) * 2.0f - 1.0f; }

/* Sets that run on this CPU, scalar excluded (it is the reference). */
static int fast_sets(const ob_cpu_kernels **out) {
    int n = 0;
    for (const ob_cpu_kernels *const *k = ob_cpu_kernels_all(); *k; k++)
        if (*k != &ob_kernels_scalar && (*k)->available()) out[n++] = *k;
    return n;
}

/* ---- selection ---------------------------------------------------------- */

static void test_select(void **state) {
    (void)state;
    assert_ptr_equal(ob_cpu_kernels_select("scalar"), &ob_kernels_scalar);
    assert_null(ob_cpu_kernels_select("no-such-set"));
    const ob_cpu_kernels *best = ob_cpu_kernels_select("auto");
    assert_non_null(best);
    assert_true(best->available());
    assert_ptr_equal(ob_cpu_kernels_select(NULL), best);
    const ob_cpu_kernels *fast[16];
    int n = fast_sets(fast);
    print_message("kernel sets here: scalar");
    for (int i = 0; i < n; i++) print_message(" %s", fast[i]->name);
    print_message(" (auto: %s)\n", best->name);
    if (n) assert_ptr_not_equal(best, &ob_kernels_scalar);
    for (int i = 0; i < n; i++) assert_ptr_equal(ob_cpu_kernels_select(fast[i]->name), fast[i]);
}

/* ---- activation quantizer ---------------------------------------------- */

/* Independent reading of the contract: round half to even by hand, and the
 * clamp written with the fmaxf/fminf NaN rule (a NaN product becomes -128). */
static int8_t quant_ref(float v) {
    float r;
    if (isnan(v)) return -128;
    float f = floorf(v), d = v - f;
    if (d > 0.5f) r = f + 1.0f;
    else if (d < 0.5f) r = f;
    else r = fmodf(f, 2.0f) == 0.0f ? f : f + 1.0f;
    if (r < -128.0f) r = -128.0f;
    if (r > 127.0f) r = 127.0f;
    return (int8_t)r;
}

static void check_quantize(const float *x, int64_t n, int64_t n_pad) {
    int8_t *q = malloc((size_t)n_pad + 1);
    memset(q, 0x55, (size_t)n_pad + 1);
    int32_t qsum = 12345;
    float s = ob_quantize_row_i8(x, n, n_pad, q, &qsum);
    float m = 1e-5f;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) > m) m = fabsf(x[i]);
    float s_ref = 127.0f / m;
    assert_true(s == s_ref || (isnan(s) && isnan(s_ref)));
    int32_t sum = 0;
    for (int64_t i = 0; i < n; i++) {
        int8_t e = quant_ref(x[i] * s_ref);
        if (q[i] != e) fail_msg("q[%lld] = %d, expected %d (x = %.9g, s = %.9g)", (long long)i, q[i], e, x[i], s_ref);
        sum += e;
    }
    for (int64_t i = n; i < n_pad; i++) assert_int_equal(q[i], 0);
    assert_int_equal(q[n_pad], 0x55); /* nothing written past the padding */
    assert_int_equal(qsum, sum);
    free(q);
}

static void test_quantize(void **state) {
    (void)state;
    /* max |x| = 127 gives s = 1 exactly, so x * s hits k + 0.5 exactly. */
    const float halves[] = { 127.0f, 0.5f, 1.5f, 2.5f, -0.5f, -1.5f, -2.5f, 3.5f, -126.5f, 126.5f, -127.0f, 0.49999997f };
    check_quantize(halves, OB_ARRAY_LEN(halves), 128);
    int8_t q[128];
    ob_quantize_row_i8(halves, OB_ARRAY_LEN(halves), 128, q, NULL);
    const int8_t want[] = { 127, 0, 2, 2, 0, -2, -2, 4, -126, 126, -127, 0 };
    for (size_t i = 0; i < OB_ARRAY_LEN(want); i++) assert_int_equal(q[i], want[i]);
    /* Zero input: m = 1e-5 floor, all q = 0. */
    const float zeros[5] = { 0 };
    check_quantize(zeros, 5, 128);
    /* An infinite input: s = 0, inf * 0 is NaN, which the clamp maps to -128. */
    const float inf[3] = { INFINITY, 1.0f, -2.0f };
    check_quantize(inf, 3, 128);
    ob_quantize_row_i8(inf, 3, 128, q, NULL);
    assert_int_equal(q[0], -128);
    /* Random rows at several scales and lengths. */
    for (int it = 0; it < 50; it++) {
        int64_t n = rand_int(1, 3000);
        float scale = powf(10.0f, (float)rand_int(-6, 6));
        float *x = malloc((size_t)n * sizeof *x);
        for (int64_t i = 0; i < n; i++) x[i] = rand_unit() * scale;
        if (it % 5 == 0) x[rand_int(0, (int)n - 1)] = 127.0f * scale; /* many exact halves */
        check_quantize(x, n, ob_act_pad(n));
        free(x);
    }
}

/* Every set's quantizer against the spec, bit for bit: q (with padding), qsum
 * and s, on lengths around the vector widths and on special values. */
static void test_quantize_sets(void **state) {
    (void)state;
    const ob_cpu_kernels *sets[16];
    int n_sets = fast_sets(sets), tested = 0;
    const float specials[] = { 0.0f, -0.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 1e-40f, -1e-40f, 126.5f, -127.5f,
                               INFINITY, -INFINITY, NAN, 3e38f, -3e38f };
    for (int k = 0; k < n_sets; k++) {
        if (!sets[k]->quantize_i8) continue;
        tested++;
        for (int it = 0; it < 400; it++) {
            int64_t n = it < 100 ? it + 1 : rand_int(1, 7000), pad = ob_act_pad(n) + (it % 3 == 0 ? 128 : 0);
            float *x = malloc(sizeof(float) * (size_t)n);
            int mode = it % 4; /* random; with exact halves; with specials; tiny values */
            float scale = powf(10.0f, (float)rand_int(-8, 8));
            for (int64_t i = 0; i < n; i++) {
                x[i] = rand_unit() * scale;
                if (mode == 1) x[i] = (float)rand_int(-254, 254) * 0.5f;
                if (mode == 2 && rand_int(0, 9) == 0) x[i] = specials[rand_int(0, (int)OB_ARRAY_LEN(specials) - 1)];
                if (mode == 3) x[i] = rand_unit() * 1e-6f;
            }
            if (mode == 1) x[rand_int(0, (int)n - 1)] = 127.0f; /* s = 1: x * s hits k + 0.5 */
            if (mode == 2 && it % 8 == 2) { /* a signalling NaN (fmaxf treats it unlike a quiet one) */
                const uint32_t snan = 0x7fa00000u;
                memcpy(&x[rand_int(0, (int)n - 1)], &snan, sizeof snan);
            }
            int8_t *q0 = malloc((size_t)pad), *q1 = malloc((size_t)pad);
            memset(q0, 0x5a, (size_t)pad);
            memset(q1, 0x3c, (size_t)pad);
            int32_t sum0 = 1, sum1 = 2;
            float s0 = ob_quantize_row_i8(x, n, pad, q0, &sum0);
            float s1 = sets[k]->quantize_i8(x, n, pad, q1, &sum1);
            if (memcmp(&s0, &s1, sizeof s0) != 0) fail_msg("%s quantize n=%lld: s %.9g vs spec %.9g", sets[k]->name, (long long)n, s1, s0);
            assert_int_equal(sum1, sum0);
            for (int64_t i = 0; i < pad; i++)
                if (q0[i] != q1[i])
                    fail_msg("%s quantize n=%lld mode %d: q[%lld] = %d, spec %d (x = %.9g)", sets[k]->name, (long long)n,
                             mode, (long long)i, q1[i], q0[i], i < n ? x[i] : 0.0f);
            free(x);
            free(q0);
            free(q1);
        }
    }
    print_message("quantizers checked against the spec: %d set(s)\n", tested);
}

/* ---- ternary GEMM ------------------------------------------------------- */

typedef struct {
    int64_t rows, cols, pad;
    size_t row_bytes;
    uint8_t *w;
    int8_t *t; /* the ternary values, rows x cols, for the direct formula */
} t2_mat;

/* mode 0: random ternary; 1: all +1; 2: all -1; 3: alternating +-1 */
static t2_mat t2_make(int64_t rows, int64_t cols, int mode) {
    t2_mat m = { .rows = rows, .cols = cols, .pad = ob_act_pad(cols) };
    m.row_bytes = ob_type_row_bytes(OB_TYPE_T2, cols);
    assert_int_equal(m.row_bytes * 4, (size_t)m.pad);
    m.w = malloc(m.row_bytes * (size_t)rows);
    m.t = malloc((size_t)(rows * cols));
    for (int64_t r = 0; r < rows; r++) {
        uint8_t *row = m.w + (size_t)r * m.row_bytes;
        ob_t2_zero_row(row, m.row_bytes);
        for (int64_t c = 0; c < cols; c++) {
            int v = mode == 0 ? rand_int(-1, 1) : mode == 1 ? 1 : mode == 2 ? -1 : ((r + c) & 1 ? 1 : -1);
            ob_t2_set(row, c, v);
            m.t[r * cols + c] = (int8_t)v;
        }
    }
    return m;
}

static void t2_free(t2_mat *m) {
    free(m->w);
    free(m->t);
}

/* q: n_tok rows of pad int8 (zero padding); qsum: their sums.
 * mode 0: random; 1: all 127; 2: all -128; 3: random in {-128, 127}. */
static int8_t *acts_make(int n_tok, int64_t n, int64_t pad, int mode, int32_t *qsum) {
    int8_t *q = calloc((size_t)(n_tok * pad), 1);
    for (int t = 0; t < n_tok; t++) {
        int32_t s = 0;
        for (int64_t c = 0; c < n; c++) {
            int v = mode == 0 ? rand_int(-128, 127) : mode == 1 ? 127 : mode == 2 ? -128 : (rand_int(0, 1) ? 127 : -128);
            q[t * pad + c] = (int8_t)v;
            s += v;
        }
        if (qsum) qsum[t] = s;
    }
    return q;
}

#define SENTINEL ((int32_t)0x7eadbeef)

/* Runs k->t2_gemm over [r0, r1) into a strided, sentinel-filled output and
 * checks it against the direct formula sum t * q; untouched cells must stay. */
static void t2_check(const ob_cpu_kernels *k, const t2_mat *m, const int8_t *q, const int32_t *qsum, int n_tok,
                     int64_t r0, int64_t r1) {
    size_t as = (size_t)m->rows + 3;
    int32_t *acc = malloc(sizeof(int32_t) * as * (size_t)n_tok);
    for (size_t i = 0; i < as * (size_t)n_tok; i++) acc[i] = SENTINEL;
    k->t2_gemm(m->w, m->row_bytes, r0, r1, q, (size_t)m->pad, qsum, n_tok, acc, as);
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < (int64_t)as; r++) {
            int32_t got = acc[(size_t)t * as + (size_t)r];
            if (r < r0 || r >= r1) {
                if (got != SENTINEL) fail_msg("%s t2: wrote outside [%lld, %lld) at row %lld", k->name, (long long)r0, (long long)r1, (long long)r);
                continue;
            }
            int32_t want = 0;
            for (int64_t c = 0; c < m->cols; c++) want += m->t[r * m->cols + c] * q[(size_t)t * (size_t)m->pad + (size_t)c];
            if (got != want)
                fail_msg("%s t2 %lldx%lld n_tok %d rows [%lld,%lld): acc[%d][%lld] = %d, expected %d", k->name,
                         (long long)m->rows, (long long)m->cols, n_tok, (long long)r0, (long long)r1, t, (long long)r, got, want);
        }
    free(acc);
}

static void test_t2_gemm(void **state) {
    (void)state;
    const ob_cpu_kernels *sets[17];
    sets[0] = &ob_kernels_scalar;
    int n_sets = 1 + fast_sets(sets + 1);
    const int64_t rows[] = { 1, 3, 6, 17, 255 }; /* every remainder of the 4-row tiles */
    const int64_t cols[] = { 100, 128, 256, 300, 384, 2560 };
    const int toks[] = { 1, 2, 3, 5, 6, 7, 16 }; /* every remainder of the 4-token tiles */
    for (size_t ri = 0; ri < OB_ARRAY_LEN(rows); ri++)
        for (size_t ci = 0; ci < OB_ARRAY_LEN(cols); ci++) {
            t2_mat m = t2_make(rows[ri], cols[ci], 0);
            for (size_t ti = 0; ti < OB_ARRAY_LEN(toks); ti++) {
                int n_tok = toks[ti];
                if (rows[ri] * cols[ci] * n_tok > 4000000) n_tok = 5 + (int)ti % 3; /* keeps the direct formula quick */
                int32_t qsum[16];
                int8_t *q = acts_make(n_tok, m.cols, m.pad, 0, qsum);
                int64_t r0 = rand_int(0, (int)m.rows - 1), r1 = rand_int((int)r0 + 1, (int)m.rows);
                for (int s = 0; s < n_sets; s++) {
                    t2_check(sets[s], &m, q, qsum, n_tok, 0, m.rows);
                    t2_check(sets[s], &m, q, qsum, n_tok, r0, r1);
                    if (s > 0 && ti == 0) t2_check(sets[s], &m, q, NULL, n_tok, r0, r1); /* qsum optional */
                }
                free(q);
            }
            t2_free(&m);
        }
}

/* Extremes: every weight +-1 against every activation at -128 / 127, where
 * int16 partial sums are largest. The exact answers are closed forms. */
static void test_t2_extremes(void **state) {
    (void)state;
    const ob_cpu_kernels *sets[17];
    sets[0] = &ob_kernels_scalar;
    int n_sets = 1 + fast_sets(sets + 1);
    const int64_t cols[] = { 128, 300, 2560, 6912 };
    for (size_t ci = 0; ci < OB_ARRAY_LEN(cols); ci++)
        for (int wm = 1; wm <= 3; wm++)
            for (int am = 1; am <= 3; am++) {
                t2_mat m = t2_make(9, cols[ci], wm);
                int n_tok = 6;
                int32_t qsum[6];
                int8_t *q = acts_make(n_tok, m.cols, m.pad, am, qsum);
                for (int s = 0; s < n_sets; s++) t2_check(sets[s], &m, q, qsum, n_tok, 0, m.rows);
                /* closed form for the uniform cases */
                if (wm != 3 && am != 3) {
                    int32_t acc[6 * 9];
                    for (int s = 0; s < n_sets; s++) {
                        sets[s]->t2_gemm(m.w, m.row_bytes, 0, 9, q, (size_t)m.pad, qsum, n_tok, acc, 9);
                        int32_t want = (int32_t)cols[ci] * (wm == 1 ? 1 : -1) * (am == 1 ? 127 : -128);
                        for (int i = 0; i < 6 * 9; i++) assert_int_equal(acc[i], want);
                    }
                }
                free(q);
                t2_free(&m);
            }
}

/* Rows long enough that the SIMD sets flush their per-lane sums several
 * times (the VNNI tile every 4096 blocks of 128): every byte 0xFF (code 3,
 * the largest lane term) against activations all -128, then random bytes and
 * activations. Each set must return the scalar twin's integers. */
static void test_t2_long_rows(void **state) {
    (void)state;
    const ob_cpu_kernels *sets[17];
    int n_sets = fast_sets(sets);
    const int64_t cols = 3 * 4096 * OB_T2_BLOCK + 300, rows = 5; /* > 2^31 per lane unflushed */
    size_t rb = ob_type_row_bytes(OB_TYPE_T2, cols);
    int64_t pad = ob_act_pad(cols);
    uint8_t *w = malloc(rb * (size_t)rows);
    int32_t *want = malloc(sizeof(int32_t) * (size_t)rows * 5), *got = malloc(sizeof(int32_t) * (size_t)rows * 5);
    for (int mode = 0; mode < 2; mode++) {
        for (size_t i = 0; i < rb * (size_t)rows; i++) w[i] = mode == 0 ? 0xFF : (uint8_t)rand_int(0, 255);
        for (int n_tok = 1; n_tok <= 5; n_tok += 4) {
            int32_t qsum[5];
            int8_t *q = acts_make(n_tok, pad, pad, mode == 0 ? 2 : 0, qsum);
            ob_kernels_scalar.t2_gemm(w, rb, 0, rows, q, (size_t)pad, qsum, n_tok, want, (size_t)rows);
            if (mode == 0) /* code 3 is 2 after the -1 offset: 2 * -128 per column */
                for (int i = 0; i < rows * n_tok; i++) assert_int_equal(want[i], (int32_t)(-256 * pad));
            for (int k = 0; k < n_sets; k++) {
                sets[k]->t2_gemm(w, rb, 0, rows, q, (size_t)pad, qsum, n_tok, got, (size_t)rows);
                for (int i = 0; i < rows * n_tok; i++)
                    if (got[i] != want[i])
                        fail_msg("%s t2 long rows (mode %d, %d tok): acc[%d] = %d, scalar %d", sets[k]->name, mode,
                                 n_tok, i, got[i], want[i]);
            }
            free(q);
        }
    }
    free(w);
    free(want);
    free(got);
}

/* Raw bytes, so code 3 (never written by a converter, possible in a corrupt
 * file) occurs too: every set must still return the scalar twin's integers. */
static void test_t2_raw_codes(void **state) {
    (void)state;
    const ob_cpu_kernels *sets[16];
    int n_sets = fast_sets(sets);
    const int64_t rows = 13, cols = 6912;
    size_t rb = ob_type_row_bytes(OB_TYPE_T2, cols);
    uint8_t *w = malloc(rb * rows);
    for (int am = 0; am < 4; am++) {
        for (size_t i = 0; i < rb * rows; i++) w[i] = am == 3 ? 0xff : (uint8_t)rand_int(0, 255); /* 0xff: all code 3 */
        int n_tok = 5;
        int32_t qsum[5];
        int8_t *q = acts_make(n_tok, cols, cols, am == 3 ? 2 : am, qsum);
        int32_t *want = malloc(sizeof(int32_t) * rows * (size_t)n_tok), *got = malloc(sizeof(int32_t) * rows * (size_t)n_tok);
        ob_kernels_scalar.t2_gemm(w, rb, 0, rows, q, (size_t)cols, qsum, n_tok, want, (size_t)rows);
        if (am == 3) assert_int_equal(want[0], 2 * -128 * (int32_t)cols); /* t = code - 1 = 2 */
        for (int k = 0; k < n_sets; k++) {
            sets[k]->t2_gemm(w, rb, 0, rows, q, (size_t)cols, qsum, n_tok, got, (size_t)rows);
            for (int i = 0; i < rows * n_tok; i++)
                if (got[i] != want[i]) fail_msg("%s t2 raw codes (mode %d): acc[%d] = %d, scalar %d", sets[k]->name, am, i, got[i], want[i]);
        }
        free(q);
        free(want);
        free(got);
    }
    free(w);
}

/* ---- int8 GEMM ---------------------------------------------------------- */

static void i8_check(const ob_cpu_kernels *k, const int8_t *w, int64_t rows, int64_t n_in, const int8_t *q,
                     size_t qs, int n_tok, int64_t r0, int64_t r1) {
    size_t as = (size_t)rows + 1;
    int32_t *acc = malloc(sizeof(int32_t) * as * (size_t)n_tok);
    for (size_t i = 0; i < as * (size_t)n_tok; i++) acc[i] = SENTINEL;
    k->i8_gemm(w, n_in, r0, r1, q, qs, n_tok, acc, as);
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < (int64_t)as; r++) {
            int32_t got = acc[(size_t)t * as + (size_t)r];
            if (r < r0 || r >= r1) {
                assert_int_equal(got, SENTINEL);
                continue;
            }
            int32_t want = 0;
            for (int64_t c = 0; c < n_in; c++) want += w[r * n_in + c] * q[(size_t)t * qs + (size_t)c];
            if (got != want)
                fail_msg("%s i8 %lldx%lld n_tok %d: acc[%d][%lld] = %d, expected %d", k->name, (long long)rows,
                         (long long)n_in, n_tok, t, (long long)r, got, want);
        }
    free(acc);
}

static void test_i8_gemm(void **state) {
    (void)state;
    const ob_cpu_kernels *sets[17];
    sets[0] = &ob_kernels_scalar;
    int n_sets = 1 + fast_sets(sets + 1);
    const int64_t rows[] = { 1, 3, 6, 17, 255 };
    const int64_t cols[] = { 1, 15, 16, 17, 100, 300, 2560 };
    const int toks[] = { 1, 2, 3, 7, 16, 6, 5 };
    for (size_t ri = 0; ri < OB_ARRAY_LEN(rows); ri++)
        for (size_t ci = 0; ci < OB_ARRAY_LEN(cols); ci++)
            for (size_t ti = 0; ti < OB_ARRAY_LEN(toks); ti++)
                for (int mode = 0; mode < 3; mode++) { /* random, all -128, random in {-128, 127} */
                    int64_t n_in = cols[ci];
                    int n_tok = toks[ti];
                    if (mode && ti > 2) continue;
                    size_t qs = (size_t)n_in + (size_t)rand_int(0, 40); /* any stride */
                    int8_t *w = malloc((size_t)(rows[ri] * n_in));
                    int8_t *q = malloc(qs * (size_t)n_tok);
                    for (int64_t i = 0; i < rows[ri] * n_in; i++)
                        w[i] = (int8_t)(mode == 0 ? rand_int(-128, 127) : mode == 1 ? -128 : (rand_int(0, 1) ? 127 : -128));
                    for (size_t i = 0; i < qs * (size_t)n_tok; i++)
                        q[i] = (int8_t)(mode == 0 ? rand_int(-128, 127) : mode == 1 ? -128 : (rand_int(0, 1) ? 127 : -128));
                    int64_t r0 = rand_int(0, (int)rows[ri] - 1), r1 = rand_int((int)r0 + 1, (int)rows[ri]);
                    for (int s = 0; s < n_sets; s++) {
                        i8_check(sets[s], w, rows[ri], n_in, q, qs, n_tok, 0, rows[ri]);
                        i8_check(sets[s], w, rows[ri], n_in, q, qs, n_tok, r0, r1);
                    }
                    free(w);
                    free(q);
                }
}

/* ---- float GEMM --------------------------------------------------------
 * Tolerance: any summation order of n float32 products obeys
 * |fl(sum) - sum| <= gamma_n * sum |w x|, gamma_n = n u / (1 - n u), u = 2^-24
 * (Higham, Accuracy and Stability, 3.1; FMA only tightens it). Every set is
 * checked against a double-precision sum with that bound (plus the bound on
 * float rounding of the result itself), so a set passes whatever order it
 * uses and any wrong product or lost term (error ~ |w x|) fails. */

static uint16_t to_wtype(ob_type wt, float v) { return wt == OB_TYPE_F16 ? ob_f32_to_f16(v) : ob_f32_to_bf16(v); }

static void f_check(const ob_cpu_kernels *k, ob_type wt, const void *w, const float *wf, int64_t rows, int64_t n_in,
                    const float *x, size_t xs, int n_tok, int64_t r0, int64_t r1) {
    size_t os = (size_t)rows + 2;
    float *out = malloc(sizeof(float) * os * (size_t)n_tok);
    for (size_t i = 0; i < os * (size_t)n_tok; i++) out[i] = -12345.0f;
    k->f_gemm(wt, w, n_in, r0, r1, x, xs, n_tok, out, os);
    const double u = 1.0 / (1 << 24), gamma = (double)n_in * u / (1.0 - (double)n_in * u);
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < (int64_t)os; r++) {
            float got = out[(size_t)t * os + (size_t)r];
            if (r < r0 || r >= r1) {
                assert_true(got == -12345.0f);
                continue;
            }
            double want = 0, mag = 0;
            for (int64_t c = 0; c < n_in; c++) {
                double p = (double)wf[r * n_in + c] * x[(size_t)t * xs + (size_t)c];
                want += p;
                mag += fabs(p);
            }
            double tol = gamma * mag + u * fabs(want) + 1e-30;
            if (!(fabs(got - want) <= tol))
                fail_msg("%s f_gemm %s %lldx%lld n_tok %d: out[%d][%lld] = %.9g, expected %.9g (tol %.3g)", k->name,
                         ob_type_name(wt), (long long)rows, (long long)n_in, n_tok, t, (long long)r, got, want, tol);
        }
    free(out);
}

static void test_f_gemm(void **state) {
    (void)state;
    const ob_cpu_kernels *sets[17];
    sets[0] = &ob_kernels_scalar;
    int n_sets = 1 + fast_sets(sets + 1);
    const ob_type wtypes[] = { OB_TYPE_F32, OB_TYPE_F16, OB_TYPE_BF16 };
    const int64_t rows[] = { 1, 3, 17, 130 };
    const int64_t cols[] = { 1, 7, 8, 9, 31, 61, 100, 300, 2560 }; /* tails of 0-31 after 8, 16, 32-wide steps */
    const int toks[] = { 1, 2, 3, 5, 6, 7, 16 };
    for (size_t wi = 0; wi < OB_ARRAY_LEN(wtypes); wi++)
        for (size_t ri = 0; ri < OB_ARRAY_LEN(rows); ri++)
            for (size_t ci = 0; ci < OB_ARRAY_LEN(cols); ci++) {
                ob_type wt = wtypes[wi];
                int64_t n_in = cols[ci], nw = rows[ri] * n_in;
                float *wf = malloc(sizeof(float) * (size_t)nw);
                uint16_t *wh = malloc(sizeof(uint16_t) * (size_t)nw);
                for (int64_t i = 0; i < nw; i++) {
                    float v = rand_unit() * (i % 7 == 0 ? 30.0f : 1.0f);
                    if (wt == OB_TYPE_F32) wf[i] = v;
                    else wf[i] = wt == OB_TYPE_F16 ? ob_f16_to_f32(wh[i] = to_wtype(wt, v)) : ob_bf16_to_f32(wh[i] = to_wtype(wt, v));
                }
                const void *w = wt == OB_TYPE_F32 ? (const void *)wf : (const void *)wh;
                for (size_t ti = 0; ti < OB_ARRAY_LEN(toks); ti++) {
                    int n_tok = toks[ti];
                    size_t xs = (size_t)n_in + (size_t)rand_int(0, 9);
                    float *x = malloc(sizeof(float) * xs * (size_t)n_tok);
                    for (size_t i = 0; i < xs * (size_t)n_tok; i++) x[i] = rand_unit() * 4.0f;
                    int64_t r0 = rand_int(0, (int)rows[ri] - 1), r1 = rand_int((int)r0 + 1, (int)rows[ri]);
                    for (int s = 0; s < n_sets; s++) {
                        f_check(sets[s], wt, w, wf, rows[ri], n_in, x, xs, n_tok, 0, rows[ri]);
                        f_check(sets[s], wt, w, wf, rows[ri], n_in, x, xs, n_tok, r0, r1);
                    }
                    free(x);
                }
                free(wf);
                free(wh);
            }
}

/* A token's float GEMM output does not depend on the batch it comes in: each
 * set's n-token result equals, bit for bit, the same token run alone (the
 * server relies on it: a sequence decoded in a batch gives its single-stream
 * logits). The integer kernels are exact, so only the float one can differ. */
static void test_f_gemm_batch_invariant(void **state) {
    (void)state;
    const ob_cpu_kernels *sets[17];
    sets[0] = &ob_kernels_scalar;
    int n_sets = 1 + fast_sets(sets + 1);
    const int64_t rows = 37, n_in = 317; /* 9 steps of 32 columns, then 16 + 13 */
    uint16_t *w = malloc(sizeof(uint16_t) * (size_t)(rows * n_in));
    for (int64_t i = 0; i < rows * n_in; i++) w[i] = ob_f32_to_f16(rand_unit());
    for (int n_tok = 2; n_tok <= 17; n_tok++) {
        float *x = malloc(sizeof(float) * (size_t)(n_tok * n_in));
        float *all = malloc(sizeof(float) * (size_t)(n_tok * rows)), *one = malloc(sizeof(float) * (size_t)rows);
        for (int64_t i = 0; i < n_tok * n_in; i++) x[i] = rand_unit() * 3.0f;
        for (int s = 0; s < n_sets; s++) {
            sets[s]->f_gemm(OB_TYPE_F16, w, n_in, 0, rows, x, (size_t)n_in, n_tok, all, (size_t)rows);
            for (int t = 0; t < n_tok; t++) {
                sets[s]->f_gemm(OB_TYPE_F16, w, n_in, 0, rows, x + (size_t)t * (size_t)n_in, (size_t)n_in, 1, one, (size_t)rows);
                if (memcmp(one, all + (size_t)t * (size_t)rows, sizeof(float) * (size_t)rows) != 0)
                    fail_msg("%s f_gemm: token %d of %d differs from the same token alone", sets[s]->name, t, n_tok);
            }
        }
        free(x), free(all), free(one);
    }
    free(w);
}

/* ---- machine probes: they run and give plausible, finite numbers ---------- */

static void test_probes(void **state) {
    (void)state;
    ob_pool *pool;
    assert_int_equal(ob_pool_create(2, &pool), OB_OK);
    double bw1 = 0, bw2 = 0, peak1 = 0;
    assert_int_equal(ob_probe_read_bw(NULL, 16 << 20, 2, &bw1), OB_OK);
    assert_int_equal(ob_probe_read_bw(pool, 16 << 20, 2, &bw2), OB_OK);
    print_message("read bandwidth over 16 MiB: %.1f GB/s (1 thread), %.1f GB/s (2 threads)\n", bw1, bw2);
    assert_true(bw1 > 0.1 && bw1 < 10000 && bw2 > 0.1 && bw2 < 10000);
    const ob_cpu_kernels *fast[16];
    int n = fast_sets(fast);
    for (int i = -1; i < n; i++) {
        const char *name = i < 0 ? "scalar" : fast[i]->name, *how = NULL;
        assert_int_equal(ob_probe_int8_peak(NULL, name, 0.01, 1, &peak1, &how), OB_OK);
        print_message("int8 peak (%s): %.1f GOPS per thread, %s\n", name, peak1, how);
        assert_non_null(how);
        assert_true(peak1 > 0.05 && peak1 < 100000);
    }
    ob_pool_destroy(pool);
}

int main(void) {
    rng = ob_test_seed();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_select),
        cmocka_unit_test(test_quantize),
        cmocka_unit_test(test_quantize_sets),
        cmocka_unit_test(test_t2_gemm),
        cmocka_unit_test(test_t2_extremes),
        cmocka_unit_test(test_t2_raw_codes),
        cmocka_unit_test(test_t2_long_rows),
        cmocka_unit_test(test_i8_gemm),
        cmocka_unit_test(test_f_gemm),
        cmocka_unit_test(test_f_gemm_batch_invariant),
        cmocka_unit_test(test_probes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
