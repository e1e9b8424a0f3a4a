/* Recursive-descent JSON reader into an arena. See json.h. */
#include "core/json.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#define JSON_MAX_DEPTH 256

/* Arena: a list of large blocks; nothing is freed until the document is. */
typedef struct arena_block {
    struct arena_block *prev;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} arena_block;

static void *arena_alloc(void **arena, size_t n) {
    n = (n + 15) & ~(size_t)15;
    arena_block *b = *arena;
    if (!b || b->cap - b->used < n) {
        size_t cap = n > (1u << 20) ? n : (1u << 20);
        arena_block *nb = malloc(sizeof *nb + cap);
        if (!nb) return NULL;
        nb->prev = b;
        nb->used = 0;
        nb->cap = cap;
        *arena = b = nb;
    }
    void *p = b->data + b->used;
    b->used += n;
    return p;
}

typedef struct {
    const char *s, *end, *start;
    void *arena;
    int depth;
    ob_status st;
} parser;

static ob_status perr(parser *p, const char *why) {
    if (p->st) return p->st;
    int line = 1, col = 1;
    for (const char *c = p->start; c < p->s && c < p->end; c++) {
        if (*c == '\n') line++, col = 1;
        else col++;
    }
    p->st = ob_fail(OB_ERR_FORMAT, "JSON line %d col %d: %s", line, col, why);
    return p->st;
}

static void skip_ws(parser *p) {
    while (p->s < p->end && (*p->s == ' ' || *p->s == '\t' || *p->s == '\n' || *p->s == '\r')) p->s++;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(parser *p, uint32_t *out) {
    if (p->end - p->s < 4) return -1;
    uint32_t v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexval(p->s[i]);
        if (h < 0) return -1;
        v = v << 4 | (uint32_t)h;
    }
    p->s += 4;
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, uint32_t cp) {
    if (cp < 0x80) { o[0] = (char)cp; return 1; }
    if (cp < 0x800) { o[0] = (char)(0xC0 | cp >> 6); o[1] = (char)(0x80 | (cp & 0x3F)); return 2; }
    if (cp < 0x10000) {
        o[0] = (char)(0xE0 | cp >> 12); o[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        o[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    o[0] = (char)(0xF0 | cp >> 18); o[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3F)); o[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* Length of a valid UTF-8 sequence at s (strict: no overlongs, no surrogates), or 0. */
static size_t utf8_seq(const unsigned char *s, const unsigned char *end) {
    unsigned c = s[0];
    size_t n;
    uint32_t cp, min;
    if (c < 0x80) return 1;
    if ((c & 0xE0) == 0xC0) n = 2, cp = c & 0x1F, min = 0x80;
    else if ((c & 0xF0) == 0xE0) n = 3, cp = c & 0x0F, min = 0x800;
    else if ((c & 0xF8) == 0xF0) n = 4, cp = c & 0x07, min = 0x10000;
    else return 0;
    if ((size_t)(end - s) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        cp = cp << 6 | (s[i] & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return 0;
    return n;
}

/* Parses a string at p->s (just past the opening quote). */
static int parse_string(parser *p, const char **out, size_t *out_len) {
    /* First pass: find the end to size the output (escapes only shrink). */
    const char *q = p->s;
    while (q < p->end && *q != '"') q += (*q == '\\' && q + 1 < p->end) ? 2 : 1;
    if (q >= p->end) return perr(p, "unterminated string");
    char *o = arena_alloc(&p->arena, (size_t)(q - p->s) + 1);
    if (!o) return perr(p, "out of memory");
    size_t n = 0;
    while (*p->s != '"') {
        unsigned char c = (unsigned char)*p->s;
        if (c < 0x20) return perr(p, "control character in string");
        if (c == '\\') {
            p->s++;
            char e = *p->s++;
            switch (e) {
            case '"': o[n++] = '"'; break;
            case '\\': o[n++] = '\\'; break;
            case '/': o[n++] = '/'; break;
            case 'b': o[n++] = '\b'; break;
            case 'f': o[n++] = '\f'; break;
            case 'n': o[n++] = '\n'; break;
            case 'r': o[n++] = '\r'; break;
            case 't': o[n++] = '\t'; break;
            case 'u': {
                uint32_t cp, lo;
                if (read_hex4(p, &cp)) return perr(p, "bad \\u escape");
                if (cp >= 0xD800 && cp <= 0xDBFF) {
                    if (p->end - p->s < 6 || p->s[0] != '\\' || p->s[1] != 'u')
                        return perr(p, "lone surrogate");
                    p->s += 2;
                    if (read_hex4(p, &lo) || lo < 0xDC00 || lo > 0xDFFF) return perr(p, "bad surrogate pair");
                    cp = 0x10000 + ((cp - 0xD800) << 10) + (lo - 0xDC00);
                } else if (cp >= 0xDC00 && cp <= 0xDFFF) {
                    return perr(p, "lone surrogate");
                }
                n += put_utf8(o + n, cp); /* never longer than the 6+ escape bytes */
                break;
            }
            default: return perr(p, "bad escape");
            }
        } else {
            size_t k = utf8_seq((const unsigned char *)p->s, (const unsigned char *)q);
            if (!k) return perr(p, "invalid UTF-8 in string");
            memcpy(o + n, p->s, k);
            n += k;
            p->s += k;
        }
    }
    p->s++; /* closing quote */
    o[n] = 0;
    *out = o;
    *out_len = n;
    return 0;
}

static ob_json *parse_value(parser *p);

static ob_json *new_node(parser *p, ob_json_type t) {
    ob_json *v = arena_alloc(&p->arena, sizeof *v);
    if (!v) { perr(p, "out of memory"); return NULL; }
    memset(v, 0, sizeof *v);
    v->type = t;
    return v;
}

static ob_json *parse_number(parser *p) {
    const char *s = p->s;
    if (s < p->end && *s == '-') s++;
    if (s >= p->end) { perr(p, "bad number"); return NULL; }
    if (*s == '0') s++;
    else if (*s >= '1' && *s <= '9') while (s < p->end && *s >= '0' && *s <= '9') s++;
    else { perr(p, "bad number"); return NULL; }
    if (s < p->end && *s == '.') {
        s++;
        if (s >= p->end || *s < '0' || *s > '9') { perr(p, "bad number"); return NULL; }
        while (s < p->end && *s >= '0' && *s <= '9') s++;
    }
    if (s < p->end && (*s == 'e' || *s == 'E')) {
        s++;
        if (s < p->end && (*s == '+' || *s == '-')) s++;
        if (s >= p->end || *s < '0' || *s > '9') { perr(p, "bad number"); return NULL; }
        while (s < p->end && *s >= '0' && *s <= '9') s++;
    }
    char tmp[64];
    size_t n = (size_t)(s - p->s);
    ob_json *v = new_node(p, OB_JSON_NUMBER);
    if (!v) return NULL;
    if (n < sizeof tmp) {
        memcpy(tmp, p->s, n);
        tmp[n] = 0;
        v->number = strtod(tmp, NULL);
    } else { /* absurdly long literal: parse a copy */
        char *big = ob_strndup(p->s, n);
        if (!big) { perr(p, "out of memory"); return NULL; }
        v->number = strtod(big, NULL);
        free(big);
    }
    p->s = s;
    return v;
}

static int match_lit(parser *p, const char *lit) {
    size_t n = strlen(lit);
    if ((size_t)(p->end - p->s) < n || memcmp(p->s, lit, n) != 0) return -1;
    p->s += n;
    return 0;
}

static ob_json *parse_container(parser *p, bool is_obj) {
    if (++p->depth > JSON_MAX_DEPTH) { perr(p, "nesting too deep"); return NULL; }
    ob_json *v = new_node(p, is_obj ? OB_JSON_OBJECT : OB_JSON_ARRAY);
    if (!v) return NULL;
    ob_json **tail = &v->child;
    p->s++; /* [ or { */
    skip_ws(p);
    char close = is_obj ? '}' : ']';
    if (p->s < p->end && *p->s == close) {
        p->s++;
        p->depth--;
        return v;
    }
    for (;;) {
        const char *key = NULL;
        size_t key_len = 0;
        skip_ws(p);
        if (is_obj) {
            if (p->s >= p->end || *p->s != '"') { perr(p, "expected a string key"); return NULL; }
            p->s++;
            if (parse_string(p, &key, &key_len)) return NULL;
            skip_ws(p);
            if (p->s >= p->end || *p->s != ':') { perr(p, "expected ':'"); return NULL; }
            p->s++;
        }
        ob_json *c = parse_value(p);
        if (!c) return NULL;
        c->key = key;
        c->key_len = key_len;
        *tail = c;
        tail = &c->next;
        v->count++;
        skip_ws(p);
        if (p->s < p->end && *p->s == ',') { p->s++; continue; }
        if (p->s < p->end && *p->s == close) { p->s++; break; }
        perr(p, is_obj ? "expected ',' or '}'" : "expected ',' or ']'");
        return NULL;
    }
    p->depth--;
    return v;
}

static ob_json *parse_value(parser *p) {
    skip_ws(p);
    if (p->s >= p->end) { perr(p, "unexpected end of input"); return NULL; }
    ob_json *v;
    switch (*p->s) {
    case '{': return parse_container(p, true);
    case '[': return parse_container(p, false);
    case '"':
        if (!(v = new_node(p, OB_JSON_STRING))) return NULL;
        p->s++;
        if (parse_string(p, &v->str, &v->str_len)) return NULL;
        return v;
    case 't':
        if (match_lit(p, "true")) break;
        if ((v = new_node(p, OB_JSON_BOOL))) v->boolean = true;
        return v;
    case 'f':
        if (match_lit(p, "false")) break;
        return new_node(p, OB_JSON_BOOL);
    case 'n':
        if (match_lit(p, "null")) break;
        return new_node(p, OB_JSON_NULL);
    default:
        if (*p->s == '-' || (*p->s >= '0' && *p->s <= '9')) return parse_number(p);
        break;
    }
    perr(p, "unexpected character");
    return NULL;
}

ob_status ob_json_parse(const char *text, size_t len, ob_json_doc *doc) {
    parser p = { .s = text, .end = text + len, .start = text };
    doc->root = NULL;
    doc->arena = NULL;
    ob_json *root = parse_value(&p);
    if (root) {
        skip_ws(&p);
        if (p.s != p.end) { perr(&p, "trailing characters"); root = NULL; }
    }
    doc->arena = p.arena;
    if (!root) {
        ob_json_free(doc);
        return p.st ? p.st : ob_fail(OB_ERR_FORMAT, "JSON: parse error");
    }
    doc->root = root;
    return OB_OK;
}

void ob_json_free(ob_json_doc *doc) {
    arena_block *b = doc->arena;
    while (b) {
        arena_block *prev = b->prev;
        free(b);
        b = prev;
    }
    doc->arena = NULL;
    doc->root = NULL;
}

const ob_json *ob_json_get(const ob_json *obj, const char *key) {
    if (!obj || obj->type != OB_JSON_OBJECT) return NULL;
    size_t n = strlen(key);
    const ob_json *found = NULL;
    for (const ob_json *c = obj->child; c; c = c->next) /* last duplicate wins, as in JS */
        if (c->key_len == n && memcmp(c->key, key, n) == 0) found = c;
    return found;
}

const ob_json *ob_json_at(const ob_json *arr, size_t i) {
    if (!arr || (arr->type != OB_JSON_ARRAY && arr->type != OB_JSON_OBJECT)) return NULL;
    const ob_json *c = arr->child;
    while (c && i--) c = c->next;
    return c;
}

const char *ob_json_get_str(const ob_json *obj, const char *key) {
    const ob_json *v = ob_json_get(obj, key);
    return v && v->type == OB_JSON_STRING ? v->str : NULL;
}

double ob_json_get_num(const ob_json *obj, const char *key, double def) {
    const ob_json *v = ob_json_get(obj, key);
    return v && v->type == OB_JSON_NUMBER ? v->number : def;
}

bool ob_json_is_int(const ob_json *v) {
    return v && v->type == OB_JSON_NUMBER && isfinite(v->number) && v->number == floor(v->number) &&
           fabs(v->number) <= 9007199254740992.0;
}
