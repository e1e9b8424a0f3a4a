/* CPU kernel sets against the scalar twins and direct formulas, as a plain C
 * program (no cmocka: it is cross-compiled for AArch64 and run under qemu by
 * `make test-arm`). The checks are those of tests/unit/test_kernels.c and
 * test_attn.c: exact integers for the ternary and int8 GEMMs on odd sizes,
 * unaligned row ranges and fresh random data, a bit-identical activation
 * quantizer (NaN, infinities and signalling NaNs included), a proven error
 * bound for the float GEMMs, the scalar attention within float noise.
 *
 * OB_EXPECT_AUTO=NAME makes the program fail unless "auto" picks set NAME, so
 * a run on a CPU model without dotprod proves the fallback set was tested.
 * It also builds on x86 (`make build-X/tests/test_arm_kernels`), where it
 * checks the x86 sets; there, as of this writing, the AVX2 quantizer differs
 * from the spec on rows holding a signalling NaN (the spec's fmaxf drops the
 * max so far on one; the AVX2 max ignores it), which tests/unit/test_kernels.c
 * does not feed. */
#include "gpu_test.h" /* PASS/FAIL lines, splitmix64, seed (plain C helpers) */

#include "backend/cpu/kernels.h"
#include "backend/cpu/probe.h"

static uint64_t rng;

static int rand_int(int lo, int hi) { return lo + (int)(gt_rand(&rng) % (uint64_t)(hi - lo + 1)); }
static float rand_unit(void) { return gt_uniform(&rng); }

/* The first mismatch of a check, reported on its FAIL line. */
static char first_error[512];
static int n_errors;
static void mismatch(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void mismatch(const char *fmt, ...) {
    if (!n_errors++) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(first_error, sizeof first_error, fmt, ap);
        va_end(ap);
    }
}
static void begin_check(void) { n_errors = 0, first_error[0] = 0; }
static void end_check(const char *what, const char *set) {
    if (n_errors) gt_check(0, "%s [%s]: %d mismatches, first: %s", what, set, n_errors, first_error);
    else gt_check(1, "%s [%s]", what, set);
}

/* Every set that runs here, scalar first. */
static int sets_here(const ob_cpu_kernels **out) {
    int n = 0;
    out[n++] = &ob_kernels_scalar;
    for (const ob_cpu_kernels *const *k = ob_cpu_kernels_all(); *k; k++)
        if (*k != &ob_kernels_scalar && (*k)->available()) out[n++] = *k;
    return n;
}

static void check_select(void) {
    const ob_cpu_kernels *sets[16];
    int n = sets_here(sets);
    const ob_cpu_kernels *best = ob_cpu_kernels_select("auto");
    printf("kernel sets here:");
    for (int i = 0; i < n; i++) printf(" %s", sets[i]->name);
    printf(" (auto: %s)\n", best ? best->name : "none");
    gt_check(best && best == sets[n - 1] && ob_cpu_kernels_select(NULL) == best, "auto picks the last available set");
    gt_check(ob_cpu_kernels_select("scalar") == &ob_kernels_scalar && !ob_cpu_kernels_select("no-such-set"),
             "select by name");
    const char *want = getenv("OB_EXPECT_AUTO");
    if (want) gt_check(best && !strcmp(best->name, want), "auto is %s (OB_EXPECT_AUTO)", want);
    int listed = 0, unavailable = 0;
    for (const ob_cpu_kernels *const *k = ob_cpu_kernels_all(); *k; k++, listed++) unavailable += !(*k)->available();
    printf("%d sets compiled, %d unavailable on this CPU\n", listed, unavailable);
}

/* ---- activation quantizer ---------------------------------------------- */

static float from_bits(uint32_t u) {
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Independent reading of the contract for finite products: round half to even
 * by hand, clamp; a NaN product becomes -128 (fmaxf's rule). */
static int8_t quant_ref(float v) {
    if (isnan(v)) return -128;
    float f = floorf(v), d = v - f, r;
    if (d > 0.5f) r = f + 1.0f;
    else if (d < 0.5f) r = f;
    else r = fmodf(f, 2.0f) == 0.0f ? f : f + 1.0f;
    return (int8_t)(r < -128.0f ? -128.0f : r > 127.0f ? 127.0f : r);
}

static void check_quantizers(void) {
    const ob_cpu_kernels *sets[16];
    int n_sets = sets_here(sets);
    /* The spec itself against the hand-written rounding (no NaN in x). */
    begin_check();
    for (int it = 0; it < 60; it++) {
        int64_t n = rand_int(1, 3000);
        float *x = malloc(sizeof(float) * (size_t)n), scale = powf(10.0f, (float)rand_int(-6, 6));
        for (int64_t i = 0; i < n; i++) x[i] = it % 2 ? (float)rand_int(-254, 254) * 0.5f : rand_unit() * scale;
        if (it % 2) x[rand_int(0, (int)n - 1)] = 127.0f; /* s = 1: exact halves */
        int8_t *q = malloc((size_t)ob_act_pad(n));
        int32_t qsum = 0, sum = 0;
        float s = ob_quantize_row_i8(x, n, ob_act_pad(n), q, &qsum), m = 1e-5f;
        for (int64_t i = 0; i < n; i++) m = fabsf(x[i]) > m ? fabsf(x[i]) : m;
        if (s != 127.0f / m) mismatch("n=%lld: s = %.9g, expected %.9g", (long long)n, s, 127.0f / m);
        for (int64_t i = 0; i < n; i++) {
            int8_t e = quant_ref(x[i] * (127.0f / m));
            sum += e;
            if (q[i] != e) mismatch("n=%lld: q[%lld] = %d, expected %d", (long long)n, (long long)i, q[i], e);
        }
        if (qsum != sum) mismatch("n=%lld: qsum %d, expected %d", (long long)n, qsum, sum);
        free(x), free(q);
    }
    end_check("quantizer spec vs round-half-even by hand", "scalar");

    const float specials[] = { 0.0f, -0.0f, 0.5f, -0.5f, 1.5f, 2.5f, -2.5f, 1e-40f, -1e-40f, 126.5f, -127.5f,
                               INFINITY, -INFINITY, NAN, -NAN, 3e38f, -3e38f,
                               from_bits(0x7f800001u), from_bits(0xffa00000u), /* signalling NaNs */
                               from_bits(0x7fc12345u) };                       /* quiet NaN with payload */
    for (int k = 1; k < n_sets; k++) {
        if (!sets[k]->quantize_i8) continue;
        begin_check();
        for (int it = 0; it < 500; it++) {
            int64_t n = it < 100 ? it + 1 : rand_int(1, 7000), pad = ob_act_pad(n) + (it % 3 == 0 ? 128 : 0);
            float *x = malloc(sizeof(float) * (size_t)n), scale = powf(10.0f, (float)rand_int(-8, 8));
            int mode = it % 5; /* random; exact halves; sprinkled specials; tiny; one special */
            for (int64_t i = 0; i < n; i++) {
                x[i] = rand_unit() * scale;
                if (mode == 1) x[i] = (float)rand_int(-254, 254) * 0.5f;
                if (mode == 2 && rand_int(0, 9) == 0) x[i] = specials[rand_int(0, (int)OB_ARRAY_LEN(specials) - 1)];
                if (mode == 3) x[i] = rand_unit() * 1e-6f;
            }
            if (mode == 1) x[rand_int(0, (int)n - 1)] = 127.0f;
            if (mode == 4) x[rand_int(0, (int)n - 1)] = specials[rand_int(11, (int)OB_ARRAY_LEN(specials) - 1)];
            int8_t *q0 = malloc((size_t)pad), *q1 = malloc((size_t)pad);
            memset(q0, 0x5a, (size_t)pad), memset(q1, 0x3c, (size_t)pad);
            int32_t sum0 = 1, sum1 = 2;
            float s0 = ob_quantize_row_i8(x, n, pad, q0, &sum0), s1 = sets[k]->quantize_i8(x, n, pad, q1, &sum1);
            if (memcmp(&s0, &s1, sizeof s0)) mismatch("n=%lld mode %d: s %.9g, spec %.9g", (long long)n, mode, s1, s0);
            if (sum0 != sum1) mismatch("n=%lld mode %d: qsum %d, spec %d", (long long)n, mode, sum1, sum0);
            for (int64_t i = 0; i < pad; i++)
                if (q0[i] != q1[i])
                    mismatch("n=%lld mode %d: q[%lld] = %d, spec %d (x = %.9g)", (long long)n, mode, (long long)i, q1[i],
                             q0[i], i < n ? x[i] : 0.0f);
            free(x), free(q0), free(q1);
        }
        end_check("quantizer bit-identical to the spec", sets[k]->name);
    }
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

/* n_tok rows of pad int8 (zero padding) and their sums.
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
        qsum[t] = s;
    }
    return q;
}

#define SENTINEL ((int32_t)0x7eadbeef)

/* k->t2_gemm over [r0, r1) into a strided, sentinel-filled output against
 * the direct formula sum t * q; cells outside the range must stay. */
static void t2_check(const ob_cpu_kernels *k, const t2_mat *m, const int8_t *q, const int32_t *qsum, int n_tok,
                     int64_t r0, int64_t r1) {
    size_t as = (size_t)m->rows + 3;
    int32_t *acc = malloc(sizeof(int32_t) * as * (size_t)n_tok);
    for (size_t i = 0; i < as * (size_t)n_tok; i++) acc[i] = SENTINEL;
    k->t2_gemm(m->w, m->row_bytes, r0, r1, q, (size_t)m->pad, qsum, n_tok, acc, as);
    for (int t = 0; t < n_tok; t++)
        for (int64_t r = 0; r < (int64_t)as; r++) {
            int32_t got = acc[(size_t)t * as + (size_t)r], want = SENTINEL;
            if (r >= r0 && r < r1) {
                want = 0;
                for (int64_t c = 0; c < m->cols; c++) want += m->t[r * m->cols + c] * q[(size_t)t * (size_t)m->pad + (size_t)c];
            }
            if (got != want)
                mismatch("%lldx%lld n_tok %d rows [%lld,%lld)%s: acc[%d][%lld] = %d, expected %d", (long long)m->rows,
                         (long long)m->cols, n_tok, (long long)r0, (long long)r1, qsum ? "" : " no qsum", t,
                         (long long)r, got, want);
        }
    free(acc);
}

static void check_t2(void) {
    const ob_cpu_kernels *sets[16];
    int n_sets = sets_here(sets);
    /* 67 and 130 rows cross the 64-row prefill tiles; 2560 and 6912 columns cross the
     * 8-block int16 chunks with a remainder. */
    const int64_t rows[] = { 1, 3, 5, 67, 130 }, cols[] = { 100, 128, 300, 1000, 2560 };
    const int toks[] = { 1, 2, 3, 4, 5, 6, 7, 9 };
    for (int s = 0; s < n_sets; s++) {
        begin_check();
        for (size_t ri = 0; ri < OB_ARRAY_LEN(rows); ri++)
            for (size_t ci = 0; ci < OB_ARRAY_LEN(cols); ci++) {
                t2_mat m = t2_make(rows[ri], cols[ci], 0);
                for (size_t ti = 0; ti < OB_ARRAY_LEN(toks); ti++) {
                    int32_t qsum[16];
                    int8_t *q = acts_make(toks[ti], m.cols, m.pad, 0, qsum);
                    int64_t r0 = rand_int(0, (int)m.rows - 1), r1 = rand_int((int)r0 + 1, (int)m.rows);
                    t2_check(sets[s], &m, q, qsum, toks[ti], 0, m.rows);
                    t2_check(sets[s], &m, q, qsum, toks[ti], r0, r1);
                    if (ti < 2) t2_check(sets[s], &m, q, NULL, toks[ti], r0, r1); /* qsum is optional */
                    free(q);
                }
                free(m.w), free(m.t);
            }
        end_check("t2 gemm = direct formula, random", sets[s]->name);

        /* Extremes: every weight +-1 against activations at -128 / 127, where
         * the int16 sums of the smull kernel are largest; closed forms. */
        begin_check();
        const int64_t ecols[] = { 128, 1000, 6912 };
        for (size_t ci = 0; ci < OB_ARRAY_LEN(ecols); ci++)
            for (int wm = 1; wm <= 3; wm++)
                for (int am = 1; am <= 3; am++) {
                    t2_mat m = t2_make(6, ecols[ci], wm);
                    int32_t qsum[5], acc[5 * 6];
                    int8_t *q = acts_make(5, m.cols, m.pad, am, qsum);
                    t2_check(sets[s], &m, q, qsum, 5, 0, m.rows);
                    if (wm != 3 && am != 3) {
                        sets[s]->t2_gemm(m.w, m.row_bytes, 0, 6, q, (size_t)m.pad, qsum, 5, acc, 6);
                        int32_t want = (int32_t)ecols[ci] * (wm == 1 ? 1 : -1) * (am == 1 ? 127 : -128);
                        for (int i = 0; i < 5 * 6; i++)
                            if (acc[i] != want) mismatch("closed form %lld cols: %d, expected %d", (long long)ecols[ci], acc[i], want);
                    }
                    free(q), free(m.w), free(m.t);
                }
        end_check("t2 gemm extremes (+-1 x -128/127)", sets[s]->name);

        /* Raw bytes, so code 3 (possible only in a corrupt file) occurs too:
         * the scalar twin's integers (t = 2) are still the answer. */
        if (s == 0) continue;
        begin_check();
        const int64_t rr = 13, cc = 6912;
        size_t rb = ob_type_row_bytes(OB_TYPE_T2, cc);
        uint8_t *w = malloc(rb * rr);
        for (int am = 0; am < 4; am++) {
            for (size_t i = 0; i < rb * rr; i++) w[i] = am == 3 ? 0xff : (uint8_t)rand_int(0, 255);
            int32_t qsum[5], want[13 * 5], got[13 * 5];
            int8_t *q = acts_make(5, cc, cc, am == 3 ? 2 : am, qsum);
            ob_kernels_scalar.t2_gemm(w, rb, 0, rr, q, (size_t)cc, qsum, 5, want, (size_t)rr);
            sets[s]->t2_gemm(w, rb, 0, rr, q, (size_t)cc, qsum, 5, got, (size_t)rr);
            if (am == 3 && want[0] != 2 * -128 * (int32_t)cc) mismatch("scalar twin on code 3: %d", want[0]);
            for (int i = 0; i < 13 * 5; i++)
                if (got[i] != want[i]) mismatch("raw codes mode %d: acc[%d] = %d, scalar %d", am, i, got[i], want[i]);
            free(q);
        }
        free(w);
        end_check("t2 gemm = scalar twin on raw bytes (code 3)", sets[s]->name);
    }
}

/* ---- int8 GEMM ---------------------------------------------------------- */

static void check_i8(void) {
    const ob_cpu_kernels *sets[16];
    int n_sets = sets_here(sets);
    const int64_t rows[] = { 1, 3, 6, 17 }, cols[] = { 1, 15, 16, 17, 100, 300, 2560 };
    const int toks[] = { 1, 2, 3, 4, 6, 7 };
    for (int s = 0; s < n_sets; s++) {
        begin_check();
        for (size_t ri = 0; ri < OB_ARRAY_LEN(rows); ri++)
            for (size_t ci = 0; ci < OB_ARRAY_LEN(cols); ci++)
                for (size_t ti = 0; ti < OB_ARRAY_LEN(toks); ti++)
                    for (int mode = 0; mode < 3; mode++) { /* random; all -128; random in {-128, 127} */
                        int64_t n_in = cols[ci], nr = rows[ri];
                        int n_tok = toks[ti];
                        size_t qs = (size_t)n_in + (size_t)rand_int(0, 40), as = (size_t)nr + 1;
                        int8_t *w = malloc((size_t)(nr * n_in)), *q = malloc(qs * (size_t)n_tok);
                        for (int64_t i = 0; i < nr * n_in; i++)
                            w[i] = (int8_t)(mode == 0 ? rand_int(-128, 127) : mode == 1 ? -128 : (rand_int(0, 1) ? 127 : -128));
                        for (size_t i = 0; i < qs * (size_t)n_tok; i++)
                            q[i] = (int8_t)(mode == 0 ? rand_int(-128, 127) : mode == 1 ? -128 : (rand_int(0, 1) ? 127 : -128));
                        int64_t r0 = rand_int(0, (int)nr - 1), r1 = rand_int((int)r0 + 1, (int)nr);
                        int32_t *acc = malloc(sizeof(int32_t) * as * (size_t)n_tok);
                        for (size_t i = 0; i < as * (size_t)n_tok; i++) acc[i] = SENTINEL;
                        sets[s]->i8_gemm(w, n_in, r0, r1, q, qs, n_tok, acc, as);
                        for (int t = 0; t < n_tok; t++)
                            for (int64_t r = 0; r < (int64_t)as; r++) {
                                int32_t want = SENTINEL, got = acc[(size_t)t * as + (size_t)r];
                                if (r >= r0 && r < r1) {
                                    want = 0;
                                    for (int64_t c = 0; c < n_in; c++) want += w[r * n_in + c] * q[(size_t)t * qs + (size_t)c];
                                }
                                if (got != want)
                                    mismatch("%lldx%lld n_tok %d mode %d rows [%lld,%lld): acc[%d][%lld] = %d, expected %d",
                                             (long long)nr, (long long)n_in, n_tok, mode, (long long)r0, (long long)r1, t,
                                             (long long)r, got, want);
                            }
                        free(w), free(q), free(acc);
                    }
        end_check("i8 gemm = direct formula", sets[s]->name);
    }
}

/* ---- float GEMM ----------------------------------------------------------
 * Any summation order of n float32 products obeys |fl(sum) - sum| <= gamma_n
 * sum |w x|, gamma_n = n u / (1 - n u), u = 2^-24 (Higham 3.1; FMA only
 * tightens it), so each set is checked against a double sum with that bound. */

static void check_f(void) {
    const ob_cpu_kernels *sets[16];
    int n_sets = sets_here(sets);
    const ob_type wtypes[] = { OB_TYPE_F32, OB_TYPE_F16, OB_TYPE_BF16 };
    const int64_t rows[] = { 1, 3, 6, 17 }, cols[] = { 1, 7, 8, 9, 100, 300, 2560 };
    const int toks[] = { 1, 2, 3, 4, 6, 7 };
    for (int s = 0; s < n_sets; s++)
        for (size_t wi = 0; wi < OB_ARRAY_LEN(wtypes); wi++) {
            ob_type wt = wtypes[wi];
            begin_check();
            for (size_t ri = 0; ri < OB_ARRAY_LEN(rows); ri++)
                for (size_t ci = 0; ci < OB_ARRAY_LEN(cols); ci++) {
                    int64_t n_in = cols[ci], nr = rows[ri], nw = nr * n_in;
                    float *wf = malloc(sizeof(float) * (size_t)nw);
                    uint16_t *wh = malloc(sizeof(uint16_t) * (size_t)nw);
                    for (int64_t i = 0; i < nw; i++) {
                        float v = rand_unit() * (i % 7 == 0 ? 30.0f : 1.0f);
                        if (wt == OB_TYPE_F16) wf[i] = ob_f16_to_f32(wh[i] = ob_f32_to_f16(v));
                        else if (wt == OB_TYPE_BF16) wf[i] = ob_bf16_to_f32(wh[i] = ob_f32_to_bf16(v));
                        else wf[i] = v;
                    }
                    const void *w = wt == OB_TYPE_F32 ? (const void *)wf : (const void *)wh;
                    const double u = 1.0 / (1 << 24), gamma = (double)n_in * u / (1.0 - (double)n_in * u);
                    for (size_t ti = 0; ti < OB_ARRAY_LEN(toks); ti++) {
                        int n_tok = toks[ti];
                        size_t xs = (size_t)n_in + (size_t)rand_int(0, 9), os = (size_t)nr + 2;
                        float *x = malloc(sizeof(float) * xs * (size_t)n_tok), *out = malloc(sizeof(float) * os * (size_t)n_tok);
                        for (size_t i = 0; i < xs * (size_t)n_tok; i++) x[i] = rand_unit() * 4.0f;
                        for (size_t i = 0; i < os * (size_t)n_tok; i++) out[i] = -12345.0f;
                        int64_t r0 = rand_int(0, (int)nr - 1), r1 = rand_int((int)r0 + 1, (int)nr);
                        sets[s]->f_gemm(wt, w, n_in, r0, r1, x, xs, n_tok, out, os);
                        for (int t = 0; t < n_tok; t++)
                            for (int64_t r = 0; r < (int64_t)os; r++) {
                                float got = out[(size_t)t * os + (size_t)r];
                                if (r < r0 || r >= r1) {
                                    if (got != -12345.0f) mismatch("wrote outside the row range at row %lld", (long long)r);
                                    continue;
                                }
                                double want = 0, mag = 0;
                                for (int64_t c = 0; c < n_in; c++) {
                                    double p = (double)wf[r * n_in + c] * x[(size_t)t * xs + (size_t)c];
                                    want += p, mag += fabs(p);
                                }
                                double tol = gamma * mag + u * fabs(want) + 1e-30;
                                if (!(fabs(got - want) <= tol))
                                    mismatch("%lldx%lld n_tok %d: out[%d][%lld] = %.9g, expected %.9g (tol %.3g)",
                                             (long long)nr, (long long)n_in, n_tok, t, (long long)r, got, want, tol);
                            }
                        free(x), free(out);
                    }
                    free(wf), free(wh);
                }
            char what[64];
            snprintf(what, sizeof what, "f gemm %s within the error bound", ob_type_name(wt));
            end_check(what, sets[s]->name);
        }
}

/* ---- attention (tolerances of tests/unit/test_attn.c) --------------------- */

static void check_attn(void) {
    const ob_cpu_kernels *sets[16];
    int n_sets = sets_here(sets);
    const int Ds[] = { 8, 64, 100, 128 }, Gs[] = { 1, 3, 4, 5, 9 }, Ps[] = { 1, 2, 17, 70 };
    for (int s = 1; s < n_sets; s++) {
        if (!sets[s]->attn_scores || !sets[s]->attn_values) continue;
        begin_check();
        for (size_t di = 0; di < 4; di++)
            for (size_t gi = 0; gi < 5; gi++)
                for (size_t pi = 0; pi < 4; pi++)
                    for (int f16 = 0; f16 < 2; f16++) {
                        int D = Ds[di], G = Gs[gi], P = Ps[pi];
                        size_t stride = (size_t)D + 24; /* other heads between rows */
                        ob_type t = f16 ? OB_TYPE_F16 : OB_TYPE_F32;
                        float *q = malloc(sizeof(float) * (size_t)(G * D));
                        void *kc = malloc(stride * (size_t)P * 4), *vc = malloc(stride * (size_t)P * 4);
                        for (int i = 0; i < G * D; i++) q[i] = rand_unit();
                        for (size_t i = 0; i < stride * (size_t)P; i++) {
                            float a = rand_unit(), b = rand_unit();
                            if (f16) ((uint16_t *)kc)[i] = ob_f32_to_f16(a), ((uint16_t *)vc)[i] = ob_f32_to_f16(b);
                            else ((float *)kc)[i] = a, ((float *)vc)[i] = b;
                        }
                        float *s0 = malloc(sizeof(float) * (size_t)(G * P)), *s1 = malloc(sizeof(float) * (size_t)(G * P));
                        float *o0 = malloc(sizeof(float) * (size_t)(G * D)), *o1 = malloc(sizeof(float) * (size_t)(G * D));
                        for (int i = 0; i < G * D; i++) o1[i] = NAN; /* every output must be written */
                        ob_kernels_scalar.attn_scores(q, G, kc, t, stride, P, D, 0.125f, s0);
                        sets[s]->attn_scores(q, G, kc, t, stride, P, D, 0.125f, s1);
                        for (int i = 0; i < G * P; i++)
                            if (!(fabsf(s0[i] - s1[i]) <= 1e-5f * (float)D))
                                mismatch("scores D=%d G=%d P=%d %s: %g vs %g", D, G, P, ob_type_name(t), s1[i], s0[i]);
                        ob_kernels_scalar.attn_values(o0, s0, G, vc, t, stride, P, D);
                        sets[s]->attn_values(o1, s0, G, vc, t, stride, P, D);
                        for (int i = 0; i < G * D; i++)
                            if (!(fabsf(o0[i] - o1[i]) <= 1e-5f * (float)P))
                                mismatch("values D=%d G=%d P=%d %s: %g vs %g", D, G, P, ob_type_name(t), o1[i], o0[i]);
                        free(q), free(kc), free(vc), free(s0), free(s1), free(o0), free(o1);
                    }
        end_check("attention = scalar twin", sets[s]->name);
    }
}

/* ---- int8 peak probe: runs for every set and names its instruction -------- */

static void check_probe(void) {
    const ob_cpu_kernels *sets[16];
    int n_sets = sets_here(sets);
    for (int s = 0; s < n_sets; s++) {
        double gops = 0;
        const char *how = NULL;
        ob_status st = ob_probe_int8_peak(NULL, sets[s]->name, 0.01, 1, &gops, &how);
        /* the instruction of the set's kernels: sdot, smlal, or a scalar loop */
        const char *want = !strcmp(sets[s]->name, "neon-dotprod") ? "sdot" : !strcmp(sets[s]->name, "neon") ? "smlal" : NULL;
        gt_check(st == OB_OK && how && gops > 0.01 && gops < 1e5 && (!want || strstr(how, want)),
                 "int8 peak probe [%s]: %.1f GOPS (%s)", sets[s]->name, gops, how ? how : "?");
    }
}

int main(void) {
    rng = gt_seed();
    check_select();
    check_quantizers();
    check_t2();
    check_i8();
    check_f();
    check_attn();
    check_probe();
    return gt_summary("test_arm_kernels");
}
