/* A small strict JSON reader (RFC 8259) for the files models ship with:
 * config.json, tokenizer.json, safetensors headers.
 *
 * Why not jansson: the engine must build on machines with only libc (the GPU
 * hosts install nothing), so the loader cannot depend on it; the server, which
 * writes JSON to clients, does use jansson.
 *
 * The whole tree lives in one allocation arena owned by ob_json_doc; strings are
 * unescaped, NUL-terminated UTF-8 (invalid UTF-8 and lone surrogates rejected).
 * Depth is limited so hostile input cannot exhaust the stack. */
#ifndef OB_JSON_H
#define OB_JSON_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ob_json_type {
    OB_JSON_NULL, OB_JSON_BOOL, OB_JSON_NUMBER, OB_JSON_STRING, OB_JSON_ARRAY, OB_JSON_OBJECT
} ob_json_type;

typedef struct ob_json ob_json;
struct ob_json {
    ob_json_type type;
    bool boolean;
    double number;
    const char *str;   /* STRING: value; for members of an OBJECT, key is set too */
    size_t str_len;
    const char *key;   /* set on object members */
    size_t key_len;
    ob_json *child;    /* ARRAY/OBJECT: first element */
    ob_json *next;     /* next sibling */
    size_t count;      /* ARRAY/OBJECT: number of children */
};

typedef struct ob_json_doc {
    ob_json *root;
    void *arena; /* internal */
} ob_json_doc;

/* Parses text[0..len). On error returns OB_ERR_FORMAT with "line L col C: why". */
ob_status ob_json_parse(const char *text, size_t len, ob_json_doc *doc);
void ob_json_free(ob_json_doc *doc);

/* Lookups; each returns NULL when absent or of another type. */
const ob_json *ob_json_get(const ob_json *obj, const char *key);
const ob_json *ob_json_at(const ob_json *arr, size_t i); /* O(i): iterate with ->next */
const char *ob_json_get_str(const ob_json *obj, const char *key);
/* Number member, or def when absent or not a number. */
double ob_json_get_num(const ob_json *obj, const char *key, double def);
bool ob_json_is_int(const ob_json *v); /* a NUMBER with an exact integer value */

#ifdef __cplusplus
}
#endif
#endif
