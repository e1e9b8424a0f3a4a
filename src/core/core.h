/* Core services every layer uses: errors, logging, memory, files, half floats,
 * hashing, time. Depends on libc only. */
#ifndef OB_CORE_H
#define OB_CORE_H

#include "1bit.h"

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define OB_ALIGN 64 /* cache line; also the minimum .h1b data alignment */

#if defined(__GNUC__)
#define OB_PRINTF(a, b) __attribute__((format(printf, a, b)))
#define OB_LIKELY(x) __builtin_expect(!!(x), 1)
#define OB_UNLIKELY(x) __builtin_expect(!!(x), 0)
#else
#define OB_PRINTF(a, b)
#define OB_LIKELY(x) (x)
#define OB_UNLIKELY(x) (x)
#endif

#define OB_MIN(a, b) ((a) < (b) ? (a) : (b))
#define OB_MAX(a, b) ((a) > (b) ? (a) : (b))
#define OB_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* ---- errors ------------------------------------------------------------
 * ob_fail records a message for this thread and returns st, so a failing
 * function reads:   return ob_fail(OB_ERR_FORMAT, "%s: bad magic", path);
 * ob_fail_prefix prepends context to the message already recorded. */
ob_status ob_fail(ob_status st, const char *fmt, ...) OB_PRINTF(2, 3);
ob_status ob_fail_prefix(ob_status st, const char *fmt, ...) OB_PRINTF(2, 3);
void ob_clear_error(void);

/* ---- logging (stderr) -------------------------------------------------- */
void ob_log(ob_log_level level, const char *fmt, ...) OB_PRINTF(2, 3);
ob_log_level ob_get_log_level(void);

/* ---- memory ------------------------------------------------------------
 * All return NULL on failure (or on a size that overflows); none exit.
 * ob_aligned_alloc rounds size up to OB_ALIGN; free with ob_aligned_free. */
void *ob_malloc(size_t size);
void *ob_calloc(size_t n, size_t size);
void *ob_realloc(void *p, size_t size);
void *ob_aligned_alloc(size_t size);
void ob_aligned_free(void *p);
char *ob_strdup(const char *s);
char *ob_strndup(const char *s, size_t n);
/* a*b without overflow: false when it would overflow. */
bool ob_mul_ok(size_t a, size_t b, size_t *out);

/* A growable byte buffer (strings, serialisation). */
typedef struct ob_buf {
    char *data;
    size_t len, cap;
} ob_buf;
ob_status ob_buf_reserve(ob_buf *b, size_t extra);
ob_status ob_buf_append(ob_buf *b, const void *data, size_t n);
ob_status ob_buf_printf(ob_buf *b, const char *fmt, ...) OB_PRINTF(2, 3);
void ob_buf_free(ob_buf *b);

/* ---- files -------------------------------------------------------------
 * A read-only mapping of a whole file. Owns the mapping until ob_unmap_file. */
typedef struct ob_mapped_file {
    const uint8_t *data;
    size_t size;
    int is_mmap; /* 0: heap copy (empty files, or mmap unavailable) */
} ob_mapped_file;
ob_status ob_map_file(const char *path, ob_mapped_file *out);
void ob_unmap_file(ob_mapped_file *f);
/* Reads a whole file into a NUL-terminated heap buffer (caller frees). */
ob_status ob_read_file(const char *path, char **data, size_t *size);
bool ob_is_dir(const char *path);
bool ob_file_exists(const char *path);
/* Joins dir and name with '/' into a new heap string. */
char *ob_path_join(const char *dir, const char *name);
bool ob_str_ends_with(const char *s, const char *suffix);

/* ---- half floats -------------------------------------------------------
 * Exact conversions (round-to-nearest-even toward half; subnormals kept). */
float ob_f16_to_f32(uint16_t h);
uint16_t ob_f32_to_f16(float f);
float ob_bf16_to_f32(uint16_t h);
uint16_t ob_f32_to_bf16(float f);

/* ---- hashing: a fast 64-bit non-cryptographic hash (checksums, tables) - */
uint64_t ob_hash64(const void *data, size_t n, uint64_t seed);

/* ---- time ---------------------------------------------------------------- */
double ob_time_s(void); /* monotonic seconds */

/* Little-endian reads/writes that need no alignment. */
static inline uint16_t ob_rd_u16(const uint8_t *p) { return (uint16_t)(p[0] | p[1] << 8); }
static inline uint32_t ob_rd_u32(const uint8_t *p) {
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}
static inline uint64_t ob_rd_u64(const uint8_t *p) {
    return (uint64_t)ob_rd_u32(p) | (uint64_t)ob_rd_u32(p + 4) << 32;
}
static inline float ob_rd_f32(const uint8_t *p) {
    union { uint32_t u; float f; } v = { ob_rd_u32(p) };
    return v.f;
}
static inline double ob_rd_f64(const uint8_t *p) {
    union { uint64_t u; double f; } v = { ob_rd_u64(p) };
    return v.f;
}

#ifdef __cplusplus
}
#endif
#endif
