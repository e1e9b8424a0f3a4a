/* Errors, logging, memory, files, half floats, hashing, time. */
#include "core/core.h"

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

/* ---- errors ---------------------------------------------------------- */

static _Thread_local char last_error[1024];

const char *ob_last_error(void) { return last_error; }
void ob_clear_error(void) { last_error[0] = 0; }

ob_status ob_fail(ob_status st, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
    return st;
}

ob_status ob_fail_prefix(ob_status st, const char *fmt, ...) {
    char prefix[512], old[sizeof last_error];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(prefix, sizeof prefix, fmt, ap);
    va_end(ap);
    memcpy(old, last_error, sizeof old);
    size_t n = strlen(prefix);
    if (n > sizeof last_error - 3) n = sizeof last_error - 3;
    memcpy(last_error, prefix, n);
    memcpy(last_error + n, ": ", 2);
    size_t m = strlen(old);
    if (m > sizeof last_error - n - 3) m = sizeof last_error - n - 3;
    memcpy(last_error + n + 2, old, m);
    last_error[n + 2 + m] = 0;
    return st;
}

const char *ob_status_name(ob_status st) {
    static const char *names[] = {
        [OB_OK] = "ok", [OB_ERR_ARG] = "bad argument", [OB_ERR_IO] = "i/o error",
        [OB_ERR_FORMAT] = "bad format", [OB_ERR_UNSUPPORTED] = "unsupported",
        [OB_ERR_NOMEM] = "out of memory", [OB_ERR_RANGE] = "out of range",
        [OB_ERR_BACKEND] = "backend error", [OB_ERR_CANCELLED] = "cancelled",
        [OB_ERR_INTERNAL] = "internal error",
    };
    return (unsigned)st < OB_ARRAY_LEN(names) && names[st] ? names[st] : "unknown";
}

/* ---- logging ----------------------------------------------------------- */

static ob_log_level log_level = OB_LOG_WARN;
void ob_set_log_level(ob_log_level level) { log_level = level; }
ob_log_level ob_get_log_level(void) { return log_level; }

void ob_log(ob_log_level level, const char *fmt, ...) {
    if (level > log_level) return;
    static const char *tag[] = { "error", "warning", "info", "debug" };
    char msg[2048];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    fprintf(stderr, "1bit: %s: %s\n", tag[level], msg);
}

/* ---- memory ------------------------------------------------------------ */

bool ob_mul_ok(size_t a, size_t b, size_t *out) {
    if (a && b > SIZE_MAX / a) return false;
    *out = a * b;
    return true;
}

void *ob_malloc(size_t size) { return malloc(size ? size : 1); }
void *ob_calloc(size_t n, size_t size) { return calloc(n ? n : 1, size ? size : 1); }
void *ob_realloc(void *p, size_t size) { return realloc(p, size ? size : 1); }

void *ob_aligned_alloc(size_t size) {
    if (size > SIZE_MAX - OB_ALIGN) return NULL;
    size = (size + OB_ALIGN - 1) / OB_ALIGN * OB_ALIGN;
    void *p = NULL;
    if (posix_memalign(&p, OB_ALIGN, size ? size : OB_ALIGN) != 0) return NULL;
    return p;
}
void ob_aligned_free(void *p) { free(p); }

char *ob_strdup(const char *s) { return s ? ob_strndup(s, strlen(s)) : NULL; }
char *ob_strndup(const char *s, size_t n) {
    char *d = malloc(n + 1);
    if (!d) return NULL;
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

ob_status ob_buf_reserve(ob_buf *b, size_t extra) {
    if (b->len + extra + 1 <= b->cap) return OB_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) {
        if (cap > SIZE_MAX / 2) return ob_fail(OB_ERR_NOMEM, "buffer too large");
        cap *= 2;
    }
    char *d = realloc(b->data, cap);
    if (!d) return ob_fail(OB_ERR_NOMEM, "out of memory (%zu bytes)", cap);
    b->data = d;
    b->cap = cap;
    return OB_OK;
}

ob_status ob_buf_append(ob_buf *b, const void *data, size_t n) {
    ob_status st = ob_buf_reserve(b, n);
    if (st) return st;
    if (n) memcpy(b->data + b->len, data, n);
    b->len += n;
    b->data[b->len] = 0;
    return OB_OK;
}

ob_status ob_buf_printf(ob_buf *b, const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0) return ob_fail(OB_ERR_INTERNAL, "format error");
    ob_status st = ob_buf_reserve(b, (size_t)n);
    if (st) return st;
    va_start(ap, fmt);
    vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap);
    va_end(ap);
    b->len += (size_t)n;
    return OB_OK;
}

void ob_buf_free(ob_buf *b) {
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

/* ---- files ------------------------------------------------------------- */

ob_status ob_map_file(const char *path, ob_mapped_file *out) {
    memset(out, 0, sizeof *out);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ob_fail(OB_ERR_IO, "%s: %s", path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return ob_fail(OB_ERR_IO, "%s: not a regular file", path);
    }
    size_t size = (size_t)sb.st_size;
    if (size == 0) { /* mmap refuses length 0 */
        close(fd);
        out->data = calloc(1, 1);
        return out->data ? OB_OK : ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    void *p = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (p == MAP_FAILED) return ob_fail(OB_ERR_IO, "%s: mmap: %s", path, strerror(errno));
    out->data = p;
    out->size = size;
    out->is_mmap = 1;
    return OB_OK;
}

void ob_unmap_file(ob_mapped_file *f) {
    if (!f->data) return;
    if (f->is_mmap) munmap((void *)f->data, f->size);
    else free((void *)f->data);
    memset(f, 0, sizeof *f);
}

ob_status ob_read_file(const char *path, char **data, size_t *size) {
    *data = NULL;
    if (size) *size = 0;
    FILE *fp = fopen(path, "rb");
    if (!fp) return ob_fail(OB_ERR_IO, "%s: %s", path, strerror(errno));
    ob_buf b = { 0 };
    char chunk[65536];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, fp)) > 0) {
        if (ob_buf_append(&b, chunk, n)) {
            fclose(fp);
            ob_buf_free(&b);
            return ob_fail(OB_ERR_NOMEM, "%s: out of memory", path);
        }
    }
    int err = ferror(fp);
    fclose(fp);
    if (err) {
        ob_buf_free(&b);
        return ob_fail(OB_ERR_IO, "%s: read error", path);
    }
    if (!b.data && ob_buf_reserve(&b, 0)) return OB_ERR_NOMEM;
    b.data[b.len] = 0;
    *data = b.data;
    if (size) *size = b.len;
    return OB_OK;
}

bool ob_is_dir(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

bool ob_file_exists(const char *path) {
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISREG(sb.st_mode);
}

char *ob_path_join(const char *dir, const char *name) {
    size_t a = strlen(dir), b = strlen(name);
    char *p = malloc(a + b + 2);
    if (!p) return NULL;
    memcpy(p, dir, a);
    size_t k = a;
    if (a && dir[a - 1] != '/') p[k++] = '/';
    memcpy(p + k, name, b + 1);
    return p;
}

bool ob_str_ends_with(const char *s, const char *suffix) {
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* ---- half floats ------------------------------------------------------- */

static inline uint32_t f32_bits(float f) { union { float f; uint32_t u; } v = { f }; return v.u; }
static inline float bits_f32(uint32_t u) { union { uint32_t u; float f; } v = { u }; return v.f; }

float ob_f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, man = h & 0x3ff;
    if (exp == 0) { /* zero or subnormal: man * 2^-24, exact in float */
        float v = (float)man * 5.9604644775390625e-8f;
        return sign ? -v : v;
    }
    if (exp == 31) return bits_f32(sign | 0x7f800000u | (man << 13));
    return bits_f32(sign | ((exp + 112) << 23) | (man << 13));
}

uint16_t ob_f32_to_f16(float f) {
    uint32_t x = f32_bits(f);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    uint32_t ax = x & 0x7fffffffu;
    if (ax >= 0x7f800000u) /* inf or nan */
        return (uint16_t)(sign | 0x7c00 | (ax > 0x7f800000u ? 0x200 : 0));
    if (ax >= 0x477ff000u) return (uint16_t)(sign | 0x7c00); /* rounds to >= 65520: inf */
    if (ax < 0x38800000u) { /* below 2^-14: subnormal half, round to nearest even */
        float a = bits_f32(ax) * 16777216.0f; /* exact: scale by 2^24 */
        return (uint16_t)(sign | (uint16_t)nearbyintf(a));
    }
    uint32_t mant = ax & 0x7fffff;
    uint32_t exp = (ax >> 23) - 112;
    uint32_t h = (exp << 10) | (mant >> 13);
    uint32_t rest = mant & 0x1fff;
    if (rest > 0x1000 || (rest == 0x1000 && (h & 1))) h++; /* carries into exp correctly */
    return (uint16_t)(sign | h);
}

float ob_bf16_to_f32(uint16_t h) { return bits_f32((uint32_t)h << 16); }

uint16_t ob_f32_to_bf16(float f) {
    uint32_t x = f32_bits(f);
    if ((x & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((x >> 16) | 0x40); /* quiet nan */
    x += 0x7fff + ((x >> 16) & 1);
    return (uint16_t)(x >> 16);
}

/* ---- hashing ------------------------------------------------------------
 * Four 64-bit lanes of multiply-rotate over 32-byte stripes, then a tail and a
 * final avalanche (the structure of xxHash64, written here for our needs). */

#define H_P1 0x9E3779B185EBCA87ull
#define H_P2 0xC2B2AE3D27D4EB4Full
#define H_P3 0x165667B19E3779F9ull
static inline uint64_t rotl64(uint64_t x, int r) { return (x << r) | (x >> (64 - r)); }
static inline uint64_t h_round(uint64_t acc, uint64_t in) {
    acc += in * H_P2;
    return rotl64(acc, 31) * H_P1;
}

uint64_t ob_hash64(const void *data, size_t n, uint64_t seed) {
    const uint8_t *p = data, *end = p + n;
    uint64_t h;
    if (n >= 32) {
        uint64_t v1 = seed + H_P1 + H_P2, v2 = seed + H_P2, v3 = seed, v4 = seed - H_P1;
        const uint8_t *limit = end - 32;
        do {
            v1 = h_round(v1, ob_rd_u64(p));
            v2 = h_round(v2, ob_rd_u64(p + 8));
            v3 = h_round(v3, ob_rd_u64(p + 16));
            v4 = h_round(v4, ob_rd_u64(p + 24));
            p += 32;
        } while (p <= limit);
        h = rotl64(v1, 1) + rotl64(v2, 7) + rotl64(v3, 12) + rotl64(v4, 18);
        h = (h ^ h_round(0, v1)) * H_P1 + H_P3;
        h = (h ^ h_round(0, v2)) * H_P1 + H_P3;
        h = (h ^ h_round(0, v3)) * H_P1 + H_P3;
        h = (h ^ h_round(0, v4)) * H_P1 + H_P3;
    } else {
        h = seed + H_P3;
    }
    h += (uint64_t)n;
    for (; p + 8 <= end; p += 8) h = rotl64(h ^ h_round(0, ob_rd_u64(p)), 27) * H_P1 + H_P3;
    for (; p < end; p++) h = rotl64(h ^ (*p * H_P3), 11) * H_P1;
    h ^= h >> 33;
    h *= H_P2;
    h ^= h >> 29;
    h *= H_P3;
    h ^= h >> 32;
    return h;
}

/* ---- time ---------------------------------------------------------------- */

double ob_time_s(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}
