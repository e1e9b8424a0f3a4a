/* Tokenizer core: building the tables, encoding (byte-level BPE and
 * SentencePiece BPE), decoding and streaming decode.
 *
 * Both encoders work on "symbols": byte ranges of the text that start as
 * single bytes (BPE) or characters (SentencePiece) and grow by merging with
 * their right neighbour. A symbol is named by the byte offset where it starts,
 * so sym_len[i] > 0 marks a live symbol, its right neighbour starts at
 * i + sym_len[i], and sym_prev[] links back. Candidate merges sit in a binary
 * min-heap keyed by (priority, left offset); entries made stale by an earlier
 * merge are recognised by their recorded lengths and dropped when popped
 * (the same lazy scheme as llama.cpp and HF tokenizers). */
#include "tokenizer/tok_internal.h"

#include <stdlib.h>
#include <string.h>

#ifdef OB_HAVE_PCRE2
#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#endif

/* ---- UTF-8 and the GPT-2 byte alphabet ---------------------------------- */

int ob_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp) {
    if (n == 0) return 0;
    uint8_t c = s[0];
    if (c < 0x80) { *cp = c; return 1; }
    int len;
    uint32_t v, min;
    if (c >= 0xC2 && c <= 0xDF) { len = 2; v = c & 0x1F; min = 0x80; }
    else if (c >= 0xE0 && c <= 0xEF) { len = 3; v = c & 0x0F; min = 0x800; }
    else if (c >= 0xF0 && c <= 0xF4) { len = 4; v = c & 0x07; min = 0x10000; }
    else return 0;
    if ((size_t)len > n) return 0;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) return 0;
        v = v << 6 | (s[i] & 0x3F);
    }
    if (v < min || v > 0x10FFFF || (v >= 0xD800 && v <= 0xDFFF)) return 0;
    *cp = v;
    return len;
}

int ob_utf8_encode(uint32_t cp, char out[4]) {
    if (cp < 0x80) { out[0] = (char)cp; return 1; }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | cp >> 6);
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | cp >> 12);
        out[1] = (char)(0x80 | (cp >> 6 & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | cp >> 18);
    out[1] = (char)(0x80 | (cp >> 12 & 0x3F));
    out[2] = (char)(0x80 | (cp >> 6 & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* GPT-2 stores byte-level tokens as text: the printable bytes '!'..'~',
 * 0xA1..0xAC and 0xAE..0xFF stand for themselves; the other 68 bytes
 * (0x00..0x20, 0x7F..0xA0, 0xAD) map, in order, to U+0100..U+0143. */
uint32_t ob_tok_byte_to_cp(uint8_t b) {
    if (b <= 0x20) return 256 + b;
    if (b >= 0x7F && b <= 0xA0) return 256 + 33 + (b - 0x7F);
    if (b == 0xAD) return 256 + 67;
    return b;
}

int ob_tok_cp_to_byte(uint32_t cp) {
    if ((cp >= 0x21 && cp <= 0x7E) || (cp >= 0xA1 && cp <= 0xAC) || (cp >= 0xAE && cp <= 0xFF)) return (int)cp;
    if (cp >= 256 && cp <= 256 + 32) return (int)(cp - 256);
    if (cp >= 256 + 33 && cp <= 256 + 66) return (int)(cp - 256 - 33 + 0x7F);
    if (cp == 256 + 67) return 0xAD;
    return -1;
}

/* Piece in the GPT-2 alphabet -> bytes (out has room for n bytes). Returns
 * the byte count, or -1 when the piece is not in the alphabet. */
static long gpt2_piece_to_bytes(const char *piece, size_t n, char *out) {
    size_t k = 0;
    for (size_t i = 0; i < n;) {
        uint32_t cp;
        int l = ob_utf8_decode((const uint8_t *)piece + i, n - i, &cp);
        int b = l ? ob_tok_cp_to_byte(cp) : -1;
        if (b < 0) return -1;
        out[k++] = (char)b;
        i += (size_t)l;
    }
    return (long)k;
}

/* "<0xNN>" -> NN, or -1. */
static int spm_byte_piece(const char *p, size_t n) {
    if (n != 6 || memcmp(p, "<0x", 3) != 0 || p[5] != '>') return -1;
    int v = 0;
    for (int i = 3; i < 5; i++) {
        char c = p[i];
        int d = c >= '0' && c <= '9' ? c - '0' : c >= 'A' && c <= 'F' ? c - 'A' + 10
              : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (d < 0) return -1;
        v = v * 16 + d;
    }
    return v;
}

#define SPM_SPACE "\xe2\x96\x81" /* U+2581 LOWER ONE EIGHTH BLOCK, SentencePiece's space */

/* ---- hash tables ------------------------------------------------------- */

static const char *tok_piece(const ob_tokenizer *t, int32_t id, size_t *n) {
    *n = t->tok[id].piece_len;
    return t->arena + t->tok[id].piece_off;
}
static const char *tok_text(const ob_tokenizer *t, int32_t id, size_t *n) {
    *n = t->tok[id].text_len;
    return t->arena + t->tok[id].text_off;
}
/* The string the encoder matches: bytes (BPE) or the "▁" piece (SentencePiece). */
static const char *tok_key(const ob_tokenizer *t, int32_t id, size_t *n) {
    return t->kind == OB_TOK_BPE ? tok_text(t, id, n) : tok_piece(t, id, n);
}

static uint32_t pow2_at_least(size_t n) {
    uint32_t c = 16;
    while (c < n) c <<= 1;
    return c;
}

static int32_t strmap_find(const ob_tokenizer *t, const char *s, size_t n) {
    const ob_tok_strmap *m = &t->text_map;
    uint64_t hash = ob_hash64(s, n, 0);
    uint32_t check = (uint32_t)(hash >> 32);
    for (uint32_t h = (uint32_t)hash & m->mask;; h = (h + 1) & m->mask) {
        int32_t id = m->slot[h].id;
        if (id < 0) return -1;
        if (m->slot[h].check != check) continue;
        size_t kn;
        const char *k = tok_key(t, id, &kn);
        if (kn == n && memcmp(k, s, n) == 0) return id;
    }
}

/* Inserts id unless its key is already present (the lower id wins). */
static void strmap_insert(ob_tokenizer *t, int32_t id) {
    ob_tok_strmap *m = &t->text_map;
    size_t n;
    const char *s = tok_key(t, id, &n);
    uint64_t hash = ob_hash64(s, n, 0);
    uint32_t check = (uint32_t)(hash >> 32);
    for (uint32_t h = (uint32_t)hash & m->mask;; h = (h + 1) & m->mask) {
        int32_t old = m->slot[h].id;
        if (old < 0) {
            m->slot[h] = (ob_tok_slot){ id, check };
            return;
        }
        size_t kn;
        const char *k = tok_key(t, old, &kn);
        if (m->slot[h].check == check && kn == n && memcmp(k, s, n) == 0) return;
    }
}

static inline uint32_t pair_hash(uint64_t key) {
    key ^= key >> 31;
    key *= 0x9E3779B97F4A7C15ull;
    return (uint32_t)(key >> 32);
}

static const ob_tok_pair *pair_find(const ob_tokenizer *t, int32_t a, int32_t b) {
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    for (uint32_t h = pair_hash(key) & t->pair_mask;; h = (h + 1) & t->pair_mask) {
        const ob_tok_pair *p = &t->pairs[h];
        if (p->key == key) return p;
        if (p->key == UINT64_MAX) return NULL;
    }
}

static ob_status pair_insert(ob_tokenizer *t, int32_t a, int32_t b, uint32_t rank, int32_t result) {
    if ((t->n_pairs + 1) * 2 > (size_t)t->pair_mask + 1) { /* keep the load under 1/2 */
        uint32_t cap = (t->pair_mask + 1) * 2;
        ob_tok_pair *np = malloc((size_t)cap * sizeof *np);
        if (!np) return ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer merges)");
        memset(np, 0xFF, (size_t)cap * sizeof *np);
        for (uint32_t i = 0; i <= t->pair_mask; i++) {
            if (t->pairs[i].key == UINT64_MAX) continue;
            uint32_t h = pair_hash(t->pairs[i].key) & (cap - 1);
            while (np[h].key != UINT64_MAX) h = (h + 1) & (cap - 1);
            np[h] = t->pairs[i];
        }
        free(t->pairs);
        t->pairs = np;
        t->pair_mask = cap - 1;
    }
    uint64_t key = (uint64_t)(uint32_t)a << 32 | (uint32_t)b;
    uint32_t h = pair_hash(key) & t->pair_mask;
    for (; t->pairs[h].key != UINT64_MAX; h = (h + 1) & t->pair_mask)
        if (t->pairs[h].key == key) return OB_OK; /* first (lowest) rank wins */
    t->pairs[h] = (ob_tok_pair){ key, rank, result };
    t->n_pairs++;
    return OB_OK;
}

/* ---- pre-tokenizers (byte-level BPE) ----------------------------------- */

/* One table: pre-tokenizer names (as GGUF tokenizer.ggml.pre and llama.cpp
 * spell them) -> split regex, and whether a pre-token that is itself a token
 * is emitted whole (tiktoken; HF "ignore_merges"). */
#define LLAMA3_REGEX "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"
#define GPT2_REGEX "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+"
static const struct {
    const char *name;
    const char *regex;
    bool ignore_merges;
} pre_table[] = {
    { "llama3",    LLAMA3_REGEX, true },
    { "llama-bpe", LLAMA3_REGEX, true },
    { "llama-v3",  LLAMA3_REGEX, true },
    { "falcon3",   LLAMA3_REGEX, true },
    { "gpt2",      GPT2_REGEX,   false },
    { "default",   GPT2_REGEX,   false },
};

const char *ob_tok_pre_for_regex(const char *regex) {
    for (size_t i = 0; i < OB_ARRAY_LEN(pre_table); i++)
        if (strcmp(pre_table[i].regex, regex) == 0) return pre_table[i].name;
    return NULL;
}

static ob_status compile_pre(ob_tokenizer *t, const char *name) {
    size_t i = 0;
    while (i < OB_ARRAY_LEN(pre_table) && strcmp(pre_table[i].name, name) != 0) i++;
    if (i == OB_ARRAY_LEN(pre_table))
        return ob_fail(OB_ERR_UNSUPPORTED, "tokenizer: pre-tokenizer '%s' is not supported (known: llama3, llama-bpe, gpt2)", name);
    t->ignore_merges = pre_table[i].ignore_merges;
#ifdef OB_HAVE_PCRE2
    int err;
    PCRE2_SIZE erroff;
    /* UTF + UCP: \p{..}, \s and (?i) by Unicode properties. MATCH_INVALID_UTF:
     * invalid bytes match nothing, so they fall between matches (encode_bpe). */
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)pre_table[i].regex, PCRE2_ZERO_TERMINATED,
                                   PCRE2_UTF | PCRE2_UCP | PCRE2_MATCH_INVALID_UTF, &err, &erroff, NULL);
    if (!re) return ob_fail(OB_ERR_INTERNAL, "tokenizer: PCRE2 rejected the %s regex (error %d at %zu)", name, err, (size_t)erroff);
    (void)pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* the interpreter is the fallback */
    t->regex = re;
    return OB_OK;
#else
    /* Loading still works, so ids decode to text; encoding fails (encode_bpe). */
    return OB_OK;
#endif
}

/* ---- building ---------------------------------------------------------- */

void ob_tokenizer_free(ob_tokenizer *t) {
    if (!t) return;
    free(t->tok);
    free(t->arena);
    free(t->text_map.slot);
    free(t->pairs);
    free(t->special);
    free(t->eog);
    free(t->pre);
    free(t->chat_template);
#ifdef OB_HAVE_PCRE2
    if (t->regex) pcre2_code_free((pcre2_code *)t->regex);
#endif
    free(t);
}

static int32_t find_by_piece(const ob_tokenizer *t, const char *s) {
    size_t n = strlen(s);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        size_t pn;
        const char *p = tok_piece(t, i, &pn);
        if (pn == n && memcmp(p, s, n) == 0) return i;
    }
    return -1;
}

static int32_t guess_token(const ob_tokenizer *t, const char *const *names) {
    for (; *names; names++) {
        int32_t id = find_by_piece(t, *names);
        if (id >= 0) return id;
    }
    return -1;
}

typedef struct { uint32_t len; int32_t id; } len_id;
static int cmp_len_desc(const void *a, const void *b) {
    const len_id *x = a, *y = b;
    if (x->len != y->len) return x->len > y->len ? -1 : 1;
    return x->id < y->id ? -1 : x->id > y->id;
}

static ob_status build_tokens(ob_tokenizer *t, const ob_tok_spec *sp) {
    size_t total = 0;
    for (int32_t i = 0; i < sp->n_vocab; i++) {
        if (!sp->pieces[i]) return ob_fail(OB_ERR_FORMAT, "tokenizer: token %d is missing", i);
        size_t n = sp->piece_lens ? sp->piece_lens[i] : strlen(sp->pieces[i]);
        total += 2 * n;
        if (total > UINT32_MAX) return ob_fail(OB_ERR_FORMAT, "tokenizer: vocabulary text is too large");
    }
    t->tok = calloc((size_t)sp->n_vocab, sizeof *t->tok);
    t->arena = malloc(total ? total : 1);
    if (!t->tok || !t->arena) return ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer vocabulary)");
    size_t off = 0;
    for (int32_t i = 0; i < sp->n_vocab; i++) {
        ob_tok_entry *e = &t->tok[i];
        const char *p = sp->pieces[i];
        size_t n = sp->piece_lens ? sp->piece_lens[i] : strlen(p);
        memcpy(t->arena + off, p, n);
        e->piece_off = (uint32_t)off;
        e->piece_len = (uint32_t)n;
        off += n;
        e->score = sp->scores ? sp->scores[i] : 0.0f;
        int32_t type = sp->types ? sp->types[i] : 0;
        if (type < OB_TOKTYPE_NORMAL || type > OB_TOKTYPE_BYTE) { /* absent or unknown: derive */
            type = OB_TOKTYPE_NORMAL;
            if (sp->kind == OB_TOK_SPM) {
                if (spm_byte_piece(p, n) >= 0) type = OB_TOKTYPE_BYTE;
                else if (n == 5 && memcmp(p, "<unk>", 5) == 0) type = OB_TOKTYPE_UNKNOWN;
                else if ((n == 3 && memcmp(p, "<s>", 3) == 0) || (n == 4 && memcmp(p, "</s>", 4) == 0))
                    type = OB_TOKTYPE_CONTROL;
            }
        }
        e->type = type;
        /* The bytes the token decodes to. */
        char *out = t->arena + off;
        long k = -1;
        if (sp->kind == OB_TOK_BPE && (type == OB_TOKTYPE_NORMAL || type == OB_TOKTYPE_BYTE)) {
            k = gpt2_piece_to_bytes(p, n, out);
        } else if (sp->kind == OB_TOK_SPM && type == OB_TOKTYPE_BYTE) {
            int b = spm_byte_piece(p, n);
            if (b >= 0) { out[0] = (char)b; k = 1; }
        } else if (sp->kind == OB_TOK_SPM && (type == OB_TOKTYPE_NORMAL || type == OB_TOKTYPE_USER)) {
            k = 0;
            for (size_t j = 0; j < n;) {
                if (j + 3 <= n && memcmp(p + j, SPM_SPACE, 3) == 0) { out[k++] = ' '; j += 3; }
                else out[k++] = p[j++];
            }
        }
        if (k < 0) { /* control, unknown, user-defined BPE tokens, or outside the alphabet: as stored */
            memcpy(out, p, n);
            k = (long)n;
        }
        e->text_off = (uint32_t)off;
        e->text_len = (uint32_t)k;
        off += (size_t)k;
    }
    t->arena_len = off;
    return OB_OK;
}

static ob_status build_pairs(ob_tokenizer *t, const ob_tok_spec *sp) {
    /* Room for the merges at load 1/2; tiktoken's rule gives about 2-3 per token. */
    t->pair_mask = pow2_at_least(sp->n_merges ? sp->n_merges * 2 : (size_t)t->n_vocab * 6) - 1;
    t->pairs = malloc(((size_t)t->pair_mask + 1) * sizeof *t->pairs);
    if (!t->pairs) return ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer merges)");
    memset(t->pairs, 0xFF, ((size_t)t->pair_mask + 1) * sizeof *t->pairs);
    if (sp->n_merges == 0) {
        /* tiktoken: every split of a token into two tokens, at the token's rank. */
        for (int32_t id = 0; id < t->n_vocab; id++) {
            if (t->tok[id].type != OB_TOKTYPE_NORMAL) continue;
            size_t n;
            const char *s = tok_text(t, id, &n);
            for (size_t k = 1; k < n; k++) {
                int32_t a = strmap_find(t, s, k), b = a < 0 ? -1 : strmap_find(t, s + k, n - k);
                if (b < 0) continue;
                ob_status st = pair_insert(t, a, b, (uint32_t)id, id);
                if (st) return st;
            }
        }
        return OB_OK;
    }
    size_t max = 0;
    for (size_t i = 0; i < sp->n_merges; i++) {
        size_t la = sp->merge_a_len ? sp->merge_a_len[i] : strlen(sp->merge_a[i]);
        size_t lb = sp->merge_b_len ? sp->merge_b_len[i] : strlen(sp->merge_b[i]);
        max = OB_MAX(max, la + lb);
    }
    char *buf = malloc(max + 1);
    if (!buf) return ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer merges)");
    size_t skipped = 0;
    for (size_t i = 0; i < sp->n_merges; i++) {
        size_t la = sp->merge_a_len ? sp->merge_a_len[i] : strlen(sp->merge_a[i]);
        size_t lb = sp->merge_b_len ? sp->merge_b_len[i] : strlen(sp->merge_b[i]);
        long ba = gpt2_piece_to_bytes(sp->merge_a[i], la, buf);
        long bb = ba < 0 ? -1 : gpt2_piece_to_bytes(sp->merge_b[i], lb, buf + ba);
        int32_t a = ba < 0 || bb < 0 ? -1 : strmap_find(t, buf, (size_t)ba);
        int32_t b = a < 0 ? -1 : strmap_find(t, buf + ba, (size_t)bb);
        int32_t r = b < 0 ? -1 : strmap_find(t, buf, (size_t)(ba + bb));
        if (r < 0) { skipped++; continue; }
        ob_status st = pair_insert(t, a, b, (uint32_t)i, r);
        if (st) { free(buf); return st; }
    }
    free(buf);
    if (skipped) ob_log(OB_LOG_WARN, "tokenizer: %zu of %zu merges name pieces that are not tokens; ignored", skipped, sp->n_merges);
    return OB_OK;
}

ob_status ob_tok_build(const ob_tok_spec *sp, ob_tokenizer **out) {
    *out = NULL;
    if (sp->n_vocab <= 0 || sp->n_vocab > (1 << 24))
        return ob_fail(OB_ERR_FORMAT, "tokenizer: vocabulary size %d is out of range", (int)sp->n_vocab);
    ob_tokenizer *t = calloc(1, sizeof *t);
    if (!t) return ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer)");
    t->kind = sp->kind;
    t->n_vocab = sp->n_vocab;
    t->unk = -1;
    ob_status st = build_tokens(t, sp);
    if (st) goto fail;

    /* Text -> id for the tokens encoding builds from text. */
    t->text_map.mask = pow2_at_least((size_t)t->n_vocab * 4) - 1; /* load <= 1/4 */
    t->text_map.slot = malloc(((size_t)t->text_map.mask + 1) * sizeof *t->text_map.slot);
    if (!t->text_map.slot) { st = ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer)"); goto fail; }
    memset(t->text_map.slot, 0xFF, ((size_t)t->text_map.mask + 1) * sizeof *t->text_map.slot);
    for (int32_t i = 0; i < t->n_vocab; i++) {
        int32_t type = t->tok[i].type;
        if (type == OB_TOKTYPE_NORMAL || (t->kind == OB_TOK_SPM && type == OB_TOKTYPE_USER)) strmap_insert(t, i);
        if (type == OB_TOKTYPE_UNKNOWN && t->unk < 0) t->unk = i;
    }
    for (int b = 0; b < 256; b++) t->byte_tok[b] = -1;
    if (t->kind == OB_TOK_BPE) {
        for (int b = 0; b < 256; b++) {
            char c = (char)b;
            if ((t->byte_tok[b] = strmap_find(t, &c, 1)) < 0) {
                st = ob_fail(OB_ERR_FORMAT, "tokenizer: byte-level vocabulary has no token for byte 0x%02X", b);
                goto fail;
            }
        }
        if ((st = build_pairs(t, sp))) goto fail;
        if ((st = compile_pre(t, sp->pre ? sp->pre : "default"))) goto fail;
        if (!(t->pre = ob_strdup(sp->pre ? sp->pre : "default"))) { st = ob_fail(OB_ERR_NOMEM, "out of memory"); goto fail; }
    } else {
        for (int32_t i = 0; i < t->n_vocab; i++) {
            size_t n;
            const char *p = tok_piece(t, i, &n);
            int b = t->tok[i].type == OB_TOKTYPE_BYTE ? spm_byte_piece(p, n) : -1;
            if (b >= 0 && t->byte_tok[b] < 0) t->byte_tok[b] = i;
        }
        t->add_space_prefix = true;
    }

    /* Whole-string tokens matched before splitting. */
    size_t ns = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->tok[i].type == OB_TOKTYPE_CONTROL || t->tok[i].type == OB_TOKTYPE_USER) && t->tok[i].text_len) ns++;
    len_id *li = malloc((ns ? ns : 1) * sizeof *li);
    t->special = malloc((ns ? ns : 1) * sizeof *t->special);
    if (!li || !t->special) { free(li); st = ob_fail(OB_ERR_NOMEM, "out of memory"); goto fail; }
    ns = 0;
    for (int32_t i = 0; i < t->n_vocab; i++)
        if ((t->tok[i].type == OB_TOKTYPE_CONTROL || t->tok[i].type == OB_TOKTYPE_USER) && t->tok[i].text_len)
            li[ns++] = (len_id){ t->tok[i].text_len, i };
    qsort(li, ns, sizeof *li, cmp_len_desc);
    for (size_t i = 0; i < ns; i++) {
        t->special[i] = li[i].id;
        t->special_first[(uint8_t)t->arena[t->tok[li[i].id].text_off]] = 1;
        t->n_user += t->tok[li[i].id].type == OB_TOKTYPE_USER;
    }
    t->n_special = ns;
    free(li);

    static const char *const bos_names[] = { "<|begin_of_text|>", "<s>", NULL };
    static const char *const eos_names[] = { "<|end_of_text|>", "</s>", "<|endoftext|>", NULL };
    static const char *const eot_names[] = { "<|eot_id|>", "<|im_end|>", "<end_of_turn>", NULL };
    t->bos = sp->bos >= 0 ? sp->bos : guess_token(t, bos_names);
    t->eos = sp->eos >= 0 ? sp->eos : guess_token(t, eos_names);
    t->eot = sp->eot >= 0 ? sp->eot : guess_token(t, eot_names);
    if (t->bos >= t->n_vocab || t->eos >= t->n_vocab || t->eot >= t->n_vocab) {
        st = ob_fail(OB_ERR_FORMAT, "tokenizer: BOS/EOS/EOT id outside the vocabulary of %d", t->n_vocab);
        goto fail;
    }
    t->add_bos = sp->add_bos >= 0 ? sp->add_bos != 0 : t->bos >= 0;
    if (t->add_bos && t->bos < 0) t->add_bos = false;
    /* End of generation: EOS, EOT, and every control token with one of
     * these names (a LLaMA-3 model whose EOS is <|eot_id|> still stops at
     * <|end_of_text|>). */
    static const char *const eog_names[] = { "<|end_of_text|>", "<|eot_id|>", "<|eom_id|>", "</s>",
                                              "<|endoftext|>", "<|im_end|>", "<end_of_turn>" };
    t->eog = malloc((2 + OB_ARRAY_LEN(eog_names)) * sizeof *t->eog);
    if (!t->eog) { st = ob_fail(OB_ERR_NOMEM, "out of memory"); goto fail; }
    if (t->eos >= 0) t->eog[t->n_eog++] = t->eos;
    if (t->eot >= 0 && t->eot != t->eos) t->eog[t->n_eog++] = t->eot;
    for (size_t i = 0; i < OB_ARRAY_LEN(eog_names); i++) {
        const char *names[] = { eog_names[i], NULL };
        int32_t id = guess_token(t, names);
        if (id >= 0 && t->tok[id].type == OB_TOKTYPE_CONTROL && !ob_tokenizer_is_eog(t, id)) t->eog[t->n_eog++] = id;
    }
    if (sp->chat_template && !(t->chat_template = ob_strdup(sp->chat_template))) {
        st = ob_fail(OB_ERR_NOMEM, "out of memory");
        goto fail;
    }
    *out = t;
    return OB_OK;
fail:
    ob_tokenizer_free(t);
    return st;
}

/* ---- small accessors ----------------------------------------------------- */

int32_t ob_tokenizer_n_vocab(const ob_tokenizer *t) { return t->n_vocab; }
int32_t ob_tokenizer_bos(const ob_tokenizer *t) { return t->bos; }
int32_t ob_tokenizer_eos(const ob_tokenizer *t) { return t->eos; }
int32_t ob_tokenizer_eot(const ob_tokenizer *t) { return t->eot; }
bool ob_tokenizer_add_bos(const ob_tokenizer *t) { return t->add_bos; }
bool ob_tokenizer_is_eog(const ob_tokenizer *t, int32_t id) {
    for (size_t i = 0; i < t->n_eog; i++)
        if (t->eog[i] == id) return true;
    return false;
}

size_t ob_token_bytes(const ob_tokenizer *t, int32_t id, const char **bytes) {
    if (id < 0 || id >= t->n_vocab) { *bytes = ""; return 0; }
    size_t n;
    *bytes = tok_text(t, id, &n);
    return n;
}

/* ---- encoding ------------------------------------------------------------ */

/* A candidate merge of the symbols at byte offsets l and r = l + len(l). */
typedef struct heap_item {
    uint64_t key;  /* priority << 32 | l: smaller first */
    uint32_t l, r;
    uint32_t len;  /* len(l) + len(r) when pushed; stale when that changed */
    int32_t result;
} heap_item;

/* Per-call scratch space, grown as needed. */
typedef struct enc_state {
    const ob_tokenizer *t;
    int32_t *ids;
    size_t n_ids, cap_ids;
    int32_t *sym_id;
    uint32_t *sym_len, *sym_prev;
    uint8_t *sym_fixed; /* SentencePiece byte-fallback symbols never merge */
    size_t cap_sym;
    heap_item *heap;
    size_t n_heap, cap_heap;
    char *buf;          /* SentencePiece: the "▁"-escaped text */
    size_t cap_buf;
} enc_state;

static ob_status grow(void **p, size_t *cap, size_t need, size_t elem) {
    if (need <= *cap) return OB_OK;
    size_t c = OB_MAX(need, *cap * 2);
    size_t bytes;
    if (!ob_mul_ok(c, elem, &bytes)) return ob_fail(OB_ERR_NOMEM, "tokenizer: input too large");
    void *q = realloc(*p, bytes);
    if (!q) return ob_fail(OB_ERR_NOMEM, "out of memory (tokenizing)");
    *p = q;
    *cap = c;
    return OB_OK;
}

static ob_status emit(enc_state *es, int32_t id) {
    if (es->n_ids == es->cap_ids) {
        ob_status st = grow((void **)&es->ids, &es->cap_ids, es->n_ids + 1, sizeof *es->ids);
        if (st) return st;
    }
    es->ids[es->n_ids++] = id;
    return OB_OK;
}

static ob_status sym_reserve(enc_state *es, size_t n) {
    if (n <= es->cap_sym) return OB_OK;
    size_t c = OB_MAX(n, es->cap_sym * 2), dummy;
    if (!ob_mul_ok(c, sizeof(uint32_t) * 4, &dummy)) return ob_fail(OB_ERR_NOMEM, "tokenizer: input too large");
    int32_t *a = realloc(es->sym_id, c * sizeof *a);
    if (a) es->sym_id = a;
    uint32_t *b = realloc(es->sym_len, c * sizeof *b);
    if (b) es->sym_len = b;
    uint32_t *d = realloc(es->sym_prev, c * sizeof *d);
    if (d) es->sym_prev = d;
    uint8_t *f = realloc(es->sym_fixed, c);
    if (f) es->sym_fixed = f;
    if (!a || !b || !d || !f) return ob_fail(OB_ERR_NOMEM, "out of memory (tokenizing)");
    es->cap_sym = c;
    return OB_OK;
}

static ob_status heap_push(enc_state *es, heap_item it) {
    if (es->n_heap == es->cap_heap) {
        ob_status st = grow((void **)&es->heap, &es->cap_heap, es->n_heap + 1, sizeof *es->heap);
        if (st) return st;
    }
    size_t i = es->n_heap++;
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (es->heap[parent].key <= it.key) break;
        es->heap[i] = es->heap[parent];
        i = parent;
    }
    es->heap[i] = it;
    return OB_OK;
}

static heap_item heap_pop(enc_state *es) {
    heap_item top = es->heap[0], last = es->heap[--es->n_heap];
    size_t i = 0, n = es->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && es->heap[c + 1].key < es->heap[c].key) c++;
        if (last.key <= es->heap[c].key) break;
        es->heap[i] = es->heap[c];
        i = c;
    }
    if (n) es->heap[i] = last;
    return top;
}

/* Higher SentencePiece score = merged earlier: map the float to an unsigned
 * key whose order is the reverse of the score's. */
static uint32_t score_key(float f) {
    uint32_t u;
    memcpy(&u, &f, 4);
    u = (u & 0x80000000u) ? ~u : u | 0x80000000u; /* monotone: larger float, larger u */
    return ~u;
}

/* Pushes the merge of symbol l with its right neighbour, if there is one. */
static ob_status push_pair(enc_state *es, const char *text, size_t n, uint32_t l) {
    const ob_tokenizer *t = es->t;
    uint32_t r = l + es->sym_len[l];
    if (r >= n) return OB_OK;
    uint32_t len = es->sym_len[l] + es->sym_len[r];
    if (t->kind == OB_TOK_BPE) {
        const ob_tok_pair *p = pair_find(t, es->sym_id[l], es->sym_id[r]);
        if (!p) return OB_OK;
        return heap_push(es, (heap_item){ (uint64_t)p->rank << 32 | l, l, r, len, p->result });
    }
    if (es->sym_fixed[l] || es->sym_fixed[r]) return OB_OK;
    int32_t id = strmap_find(t, text + l, len);
    if (id < 0) return OB_OK;
    return heap_push(es, (heap_item){ (uint64_t)score_key(t->tok[id].score) << 32 | l, l, r, len, id });
}

/* Merges symbols over text[0..n) until no candidate is left, then emits them.
 * sym_id/sym_len/sym_fixed must be set for the initial symbols. */
static ob_status merge_and_emit(enc_state *es, const char *text, size_t n) {
    ob_status st;
    es->n_heap = 0;
    for (uint32_t i = 0; i < n; i += es->sym_len[i]) {
        uint32_t next = i + es->sym_len[i];
        if (next < n) es->sym_prev[next] = i;
        if ((st = push_pair(es, text, n, i))) return st;
    }
    while (es->n_heap) {
        heap_item it = heap_pop(es);
        uint32_t l = it.l, r = it.r;
        if (es->sym_len[l] == 0 || l + es->sym_len[l] != r || es->sym_len[l] + es->sym_len[r] != it.len) continue;
        es->sym_id[l] = it.result;
        es->sym_len[l] = it.len;
        es->sym_len[r] = 0;
        uint32_t next = l + it.len;
        if (next < n) es->sym_prev[next] = l;
        if (l > 0 && (st = push_pair(es, text, n, es->sym_prev[l]))) return st;
        if ((st = push_pair(es, text, n, l))) return st;
    }
    for (uint32_t i = 0; i < n; i += es->sym_len[i])
        if ((st = emit(es, es->sym_id[i]))) return st;
    return OB_OK;
}

/* One pre-token of byte-level BPE. */
static ob_status bpe_piece(enc_state *es, const char *s, size_t n) {
    const ob_tokenizer *t = es->t;
    if (n == 0) return OB_OK;
    if (n > UINT32_MAX / 2) return ob_fail(OB_ERR_RANGE, "tokenizer: text too long");
    if (t->ignore_merges || n == 1) {
        int32_t id = strmap_find(t, s, n);
        if (id >= 0) return emit(es, id);
    }
    ob_status st = sym_reserve(es, n);
    if (st) return st;
    for (size_t i = 0; i < n; i++) {
        es->sym_id[i] = t->byte_tok[(uint8_t)s[i]];
        es->sym_len[i] = 1;
    }
    return merge_and_emit(es, s, n);
}

static ob_status encode_bpe(enc_state *es, const char *s, size_t n) {
#ifdef OB_HAVE_PCRE2
    const pcre2_code *re = es->t->regex;
    pcre2_match_data *md = pcre2_match_data_create_from_pattern(re, NULL);
    if (!md) return ob_fail(OB_ERR_NOMEM, "out of memory (regex)");
    ob_status st = OB_OK;
    size_t off = 0;
    while (off < n && !st) {
        int rc = pcre2_match(re, (PCRE2_SPTR)s, n, off, 0, md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) { /* only invalid UTF-8 is left */
            st = bpe_piece(es, s + off, n - off);
            break;
        }
        if (rc < 0) {
            PCRE2_UCHAR msg[128];
            pcre2_get_error_message(rc, msg, sizeof msg);
            st = ob_fail(OB_ERR_INTERNAL, "tokenizer: regex match failed: %s", (const char *)msg);
            break;
        }
        const PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
        size_t ms = ov[0], me = ov[1];
        if (ms > off) st = bpe_piece(es, s + off, ms - off); /* invalid UTF-8 bytes between matches */
        if (!st && me == ms) { /* no alternative matches empty; guard against a loop anyway */
            st = bpe_piece(es, s + ms, 1);
            me = ms + 1;
        } else if (!st) {
            st = bpe_piece(es, s + ms, me - ms);
        }
        off = me;
    }
    pcre2_match_data_free(md);
    return st;
#else
    (void)es; (void)s; (void)n; (void)bpe_piece;
    return ob_fail(OB_ERR_UNSUPPORTED, "tokenizer: encoding byte-level BPE text needs PCRE2, and 1bit was built "
                   "without PCRE2 (decoding works; give token ids instead of text)");
#endif
}

/* SentencePiece (llama2.c's algorithm): spaces become "▁", a "▁" is put in
 * front when prefix is set, every character that is a token starts as that
 * token and every other byte as its <0xNN> token; then the adjacent pair whose
 * concatenation is the best-scoring token merges, leftmost first, until none
 * does. */
static ob_status encode_spm(enc_state *es, const char *s, size_t n, bool prefix) {
    const ob_tokenizer *t = es->t;
    if (n == 0) return OB_OK;
    size_t cap, m = 0;
    if (!ob_mul_ok(n + 1, 3, &cap) || cap > UINT32_MAX / 2) return ob_fail(OB_ERR_RANGE, "tokenizer: text too long");
    ob_status st = grow((void **)&es->buf, &es->cap_buf, cap, 1);
    if (st || (st = sym_reserve(es, cap))) return st;
    char *b = es->buf;
    if (prefix) { memcpy(b, SPM_SPACE, 3); m = 3; }
    for (size_t i = 0; i < n; i++) {
        if (s[i] == ' ') { memcpy(b + m, SPM_SPACE, 3); m += 3; }
        else b[m++] = s[i];
    }
    for (size_t i = 0; i < m;) {
        uint32_t cp;
        int l = ob_utf8_decode((const uint8_t *)b + i, m - i, &cp);
        int32_t id = l ? strmap_find(t, b + i, (size_t)l) : -1;
        if (id >= 0) {
            es->sym_id[i] = id;
            es->sym_len[i] = (uint32_t)l;
            es->sym_fixed[i] = 0;
            i += (size_t)l;
            continue;
        }
        for (int k = 0; k < (l ? l : 1); k++, i++) { /* byte fallback */
            int32_t bt = t->byte_tok[(uint8_t)b[i]];
            es->sym_id[i] = bt >= 0 ? bt : t->unk;
            es->sym_len[i] = 1;
            es->sym_fixed[i] = 1;
            if (es->sym_id[i] < 0) return ob_fail(OB_ERR_FORMAT, "tokenizer: no byte or <unk> token for byte 0x%02X", (uint8_t)b[i]);
        }
    }
    return merge_and_emit(es, b, m);
}

/* Finds the first special token in s[0..n) allowed here; returns its offset
 * (n when none) and sets *id. */
static size_t find_special(const ob_tokenizer *t, const char *s, size_t n, bool parse_special, int32_t *id) {
    for (size_t i = 0; i < n; i++) {
        if (!t->special_first[(uint8_t)s[i]]) continue;
        for (size_t k = 0; k < t->n_special; k++) {
            const ob_tok_entry *e = &t->tok[t->special[k]];
            if (e->text_len > n - i) continue;
            if (e->type == OB_TOKTYPE_CONTROL && !parse_special) continue;
            if (memcmp(s + i, t->arena + e->text_off, e->text_len) == 0) {
                *id = t->special[k];
                return i;
            }
        }
    }
    return n;
}

ob_status ob_tokenize(const ob_tokenizer *t, const char *text, size_t len, bool add_bos, bool parse_special,
                      int32_t **ids, size_t *n_ids) {
    *ids = NULL;
    *n_ids = 0;
    if (!text && len) return ob_fail(OB_ERR_ARG, "tokenize: NULL text");
    enc_state es = { .t = t };
    ob_status st = OB_OK;
    if (add_bos && t->bos >= 0) st = emit(&es, t->bos);
    bool after_special = true; /* SentencePiece: a text fragment at the start or after a special gets "▁" */
    size_t off = 0;
    while (!st && off < len) {
        int32_t sid = -1;
        bool scan = parse_special ? t->n_special > 0 : t->n_user > 0;
        size_t at = scan ? find_special(t, text + off, len - off, parse_special, &sid) : len - off;
        if (at > 0) {
            st = t->kind == OB_TOK_BPE ? encode_bpe(&es, text + off, at)
                                       : encode_spm(&es, text + off, at, after_special && t->add_space_prefix);
            after_special = false;
        }
        off += at;
        if (!st && sid >= 0) {
            st = emit(&es, sid);
            off += t->tok[sid].text_len;
            after_special = true;
        }
    }
    free(es.sym_id);
    free(es.sym_len);
    free(es.sym_prev);
    free(es.sym_fixed);
    free(es.heap);
    free(es.buf);
    if (st) {
        free(es.ids);
        return st;
    }
    if (!es.ids) es.ids = malloc(sizeof *es.ids); /* a valid pointer even for no ids */
    if (!es.ids) return ob_fail(OB_ERR_NOMEM, "out of memory");
    *ids = es.ids;
    *n_ids = es.n_ids;
    return OB_OK;
}

/* ---- decoding ------------------------------------------------------------ */

/* The text of id as decoding shows it: SentencePiece control tokens show
 * nothing, and the dummy-prefix space of the first piece is dropped when
 * strip_space is set. */
static ob_status piece_for_decode(const ob_tokenizer *t, int32_t id, bool *strip_space, const char **s, size_t *n) {
    if (id < 0 || id >= t->n_vocab) return ob_fail(OB_ERR_RANGE, "detokenize: token id %d is outside the vocabulary (0..%d)", (int)id, (int)t->n_vocab - 1);
    *s = tok_text(t, id, n);
    if (t->kind != OB_TOK_SPM) return OB_OK;
    if (t->tok[id].type == OB_TOKTYPE_CONTROL) { *n = 0; return OB_OK; }
    if (*strip_space && *n) {
        if (**s == ' ' && t->add_space_prefix) { (*s)++; (*n)--; }
        *strip_space = false;
    }
    return OB_OK;
}

ob_status ob_detokenize(const ob_tokenizer *t, const int32_t *ids, size_t n, ob_buf *out) {
    bool strip = true;
    for (size_t i = 0; i < n; i++) {
        const char *s = NULL;
        size_t len = 0;
        ob_status st = piece_for_decode(t, ids[i], &strip, &s, &len);
        if (!st && len) st = ob_buf_append(out, s, len);
        if (st) return st;
    }
    return OB_OK;
}

void ob_detok_stream_init(ob_detok_stream *s, const ob_tokenizer *tok) {
    memset(s, 0, sizeof *s);
    s->tok = tok;
}

void ob_detok_stream_after(ob_detok_stream *s, const int32_t *prev_ids, size_t n) {
    const ob_tokenizer *t = s->tok;
    for (size_t i = 0; i < n && !s->started; i++)
        if (prev_ids[i] >= 0 && prev_ids[i] < t->n_vocab && t->tok[prev_ids[i]].type != OB_TOKTYPE_CONTROL &&
            t->tok[prev_ids[i]].text_len)
            s->started = true;
}

/* Bytes at the end of p[0..n) that start a UTF-8 sequence not yet complete. */
static size_t incomplete_tail(const uint8_t *p, size_t n) {
    for (size_t k = 1; k <= 3 && k <= n; k++) {
        uint8_t c = p[n - k];
        if ((c & 0xC0) == 0x80) continue; /* continuation: look further back */
        size_t need = c >= 0xF0 && c <= 0xF4 ? 4 : c >= 0xE0 && c <= 0xEF ? 3 : c >= 0xC2 && c <= 0xDF ? 2 : 1;
        return need > k ? k : 0;
    }
    return 0;
}

ob_status ob_detok_stream_push(ob_detok_stream *s, int32_t id, ob_buf *out) {
    const char *p = NULL;
    size_t n = 0;
    bool strip = !s->started;
    ob_status st = piece_for_decode(s->tok, id, &strip, &p, &n);
    if (st) return st;
    if (!strip) s->started = true;
    if (!n) return OB_OK;
    size_t start = out->len;
    if ((st = ob_buf_reserve(out, s->n_pending + n))) return st;
    ob_buf_append(out, s->pending, s->n_pending);
    ob_buf_append(out, p, n);
    size_t hold = incomplete_tail((const uint8_t *)out->data + start, out->len - start);
    memcpy(s->pending, out->data + out->len - hold, hold);
    s->n_pending = hold;
    out->len -= hold;
    return OB_OK;
}

ob_status ob_detok_stream_flush(ob_detok_stream *s, ob_buf *out) {
    ob_status st = ob_buf_append(out, s->pending, s->n_pending);
    s->n_pending = 0;
    return st;
}
