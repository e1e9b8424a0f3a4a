/* Tokenizer loaders: canonical metadata (GGUF conventions), HF tokenizer.json
 * (+ tokenizer_config.json beside it), tiktoken ranks files (LLaMA-3
 * tokenizer.model), and the writer of the canonical metadata keys. Each
 * loader fills an ob_tok_spec and leaves the tables to ob_tok_build. */
#include "tokenizer/tok_internal.h"

#include "core/json.h"
#include "format/model_file.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* ---- canonical metadata -------------------------------------------------- */

/* Splits a GGUF merge "a b" at its first space after the first byte. */
static bool split_merge(const char *s, size_t n, size_t *cut) {
    for (size_t i = 1; i < n; i++)
        if (s[i] == ' ') { *cut = i; return true; }
    return false;
}

ob_status ob_tokenizer_from_meta(const ob_meta *meta, ob_tokenizer **out) {
    *out = NULL;
    const char *model = ob_meta_str(meta, OB_KEY_TOK_MODEL, NULL);
    ob_tok_spec sp = { .bos = -1, .eos = -1, .eot = -1, .add_bos = -1 };
    if (!model || !strcmp(model, "none")) return ob_fail(OB_ERR_UNSUPPORTED, "the model has no tokenizer (%s missing)", OB_KEY_TOK_MODEL);
    if (!strcmp(model, "gpt2")) sp.kind = OB_TOK_BPE;
    else if (!strcmp(model, "llama")) sp.kind = OB_TOK_SPM;
    else return ob_fail(OB_ERR_UNSUPPORTED, "tokenizer model '%s' is not supported (gpt2 or llama)", model);

    const ob_meta_entry *tokens = ob_meta_find(meta, OB_KEY_TOK_TOKENS);
    if (!tokens || tokens->type != OB_META_STR_ARR || tokens->count == 0 || tokens->count > (1u << 24))
        return ob_fail(OB_ERR_FORMAT, "tokenizer: %s is missing or not a string array", OB_KEY_TOK_TOKENS);
    sp.n_vocab = (int32_t)tokens->count;
    sp.pieces = (const char *const *)tokens->strs;
    sp.piece_lens = tokens->str_lens;
    const ob_meta_entry *e = ob_meta_find(meta, OB_KEY_TOK_SCORES);
    if (e) {
        if (e->type != OB_META_F32_ARR || e->count != tokens->count)
            return ob_fail(OB_ERR_FORMAT, "tokenizer: %s must be %llu floats", OB_KEY_TOK_SCORES, (unsigned long long)tokens->count);
        sp.scores = e->arr;
    } else if (sp.kind == OB_TOK_SPM) {
        return ob_fail(OB_ERR_FORMAT, "tokenizer: a SentencePiece vocabulary needs %s", OB_KEY_TOK_SCORES);
    }
    if ((e = ob_meta_find(meta, OB_KEY_TOK_TYPES))) {
        if (e->type != OB_META_I32_ARR || e->count != tokens->count)
            return ob_fail(OB_ERR_FORMAT, "tokenizer: %s must be %llu ints", OB_KEY_TOK_TYPES, (unsigned long long)tokens->count);
        sp.types = e->arr;
    }
    sp.bos = (int32_t)ob_meta_int(meta, OB_KEY_BOS, -1);
    sp.eos = (int32_t)ob_meta_int(meta, OB_KEY_EOS, -1);
    sp.eot = (int32_t)ob_meta_int(meta, OB_KEY_EOT, -1);
    if (ob_meta_find(meta, OB_KEY_ADD_BOS)) sp.add_bos = ob_meta_bool(meta, OB_KEY_ADD_BOS, false);
    sp.pre = ob_meta_str(meta, OB_KEY_TOK_PRE, NULL);
    if (!sp.pre && sp.kind == OB_TOK_BPE) {
        /* The official BitNet 2B-4T GGUF has no tokenizer.ggml.pre: a LLaMA-3
         * vocabulary (it has <|eot_id|>) gets the LLaMA-3 pre-tokenizer, not GPT-2's. */
        for (uint64_t i = 128000; i < tokens->count && i < 128256; i++)
            if (tokens->str_lens[i] == 10 && !memcmp(tokens->strs[i], "<|eot_id|>", 10)) sp.pre = "llama3";
    }
    sp.chat_template = ob_meta_str(meta, OB_KEY_CHAT_TEMPLATE, NULL);

    const char **ma = NULL, **mb = NULL;
    uint32_t *la = NULL, *lb = NULL;
    e = ob_meta_find(meta, OB_KEY_TOK_MERGES);
    if (sp.kind == OB_TOK_BPE) {
        if (!e || e->type != OB_META_STR_ARR || e->count == 0)
            return ob_fail(OB_ERR_FORMAT, "tokenizer: a byte-level BPE vocabulary needs %s", OB_KEY_TOK_MERGES);
        size_t n = (size_t)e->count;
        ma = malloc(n * sizeof *ma);
        mb = malloc(n * sizeof *mb);
        la = malloc(n * sizeof *la);
        lb = malloc(n * sizeof *lb);
        if (!ma || !mb || !la || !lb) {
            free(ma); free(mb); free(la); free(lb);
            return ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer merges)");
        }
        for (size_t i = 0; i < n; i++) {
            size_t cut;
            if (!split_merge(e->strs[i], e->str_lens[i], &cut)) {
                free(ma); free(mb); free(la); free(lb);
                return ob_fail(OB_ERR_FORMAT, "tokenizer: merge %zu is not \"a b\"", i);
            }
            ma[i] = e->strs[i];
            la[i] = (uint32_t)cut;
            mb[i] = e->strs[i] + cut + 1;
            lb[i] = (uint32_t)(e->str_lens[i] - cut - 1);
        }
        sp.merge_a = ma;
        sp.merge_b = mb;
        sp.merge_a_len = la;
        sp.merge_b_len = lb;
        sp.n_merges = n;
    }
    ob_status st = ob_tok_build(&sp, out);
    free(ma); free(mb); free(la); free(lb);
    return st;
}

typedef struct { uint32_t rank; int32_t a, b; } merge_rec;
static int cmp_merge(const void *x, const void *y) {
    const merge_rec *p = x, *q = y;
    if (p->rank != q->rank) return p->rank < q->rank ? -1 : 1;
    if (p->a != q->a) return p->a < q->a ? -1 : 1;
    return (p->b > q->b) - (p->b < q->b);
}

ob_status ob_tokenizer_to_meta(const ob_tokenizer *t, ob_meta *meta) {
    size_t n = (size_t)t->n_vocab;
    const char **strs = malloc(n * sizeof *strs);
    uint32_t *lens = malloc(n * sizeof *lens);
    int32_t *types = malloc(n * sizeof *types);
    float *scores = malloc(n * sizeof *scores);
    merge_rec *mr = t->kind == OB_TOK_BPE ? malloc((t->n_pairs ? t->n_pairs : 1) * sizeof *mr) : NULL;
    ob_status st = OB_OK;
    if (!strs || !lens || !types || !scores || (t->kind == OB_TOK_BPE && !mr)) {
        st = ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer metadata)");
        goto done;
    }
    for (size_t i = 0; i < n; i++) {
        strs[i] = t->arena + t->tok[i].piece_off;
        lens[i] = t->tok[i].piece_len;
        types[i] = t->tok[i].type;
        scores[i] = t->tok[i].score;
    }
    if ((st = ob_meta_set_str(meta, OB_KEY_TOK_MODEL, t->kind == OB_TOK_BPE ? "gpt2" : "llama"))) goto done;
    if ((st = ob_meta_set_str_arr(meta, OB_KEY_TOK_TOKENS, strs, lens, n))) goto done;
    if ((st = ob_meta_set_i32_arr(meta, OB_KEY_TOK_TYPES, types, n))) goto done;
    if (t->kind == OB_TOK_SPM && (st = ob_meta_set_f32_arr(meta, OB_KEY_TOK_SCORES, scores, n))) goto done;
    if (t->kind == OB_TOK_BPE) {
        if ((st = ob_meta_set_str(meta, OB_KEY_TOK_PRE, t->pre))) goto done;
        /* Merges "a b" in rank order, rebuilt from the pair table. */
        size_t k = 0;
        for (uint32_t h = 0; h <= t->pair_mask; h++) {
            const ob_tok_pair *p = &t->pairs[h];
            if (p->key != UINT64_MAX) mr[k++] = (merge_rec){ p->rank, (int32_t)(p->key >> 32), (int32_t)(uint32_t)p->key };
        }
        qsort(mr, k, sizeof *mr, cmp_merge);
        char **ms = calloc(k ? k : 1, sizeof *ms);
        uint32_t *ml = malloc((k ? k : 1) * sizeof *ml);
        if (!ms || !ml) { free(ms); free(ml); st = ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer metadata)"); goto done; }
        for (size_t i = 0; i < k; i++) {
            const ob_tok_entry *a = &t->tok[mr[i].a], *b = &t->tok[mr[i].b];
            ml[i] = a->piece_len + 1 + b->piece_len;
            if (!(ms[i] = malloc((size_t)ml[i] + 1))) {
                for (size_t j = 0; j < i; j++) free(ms[j]);
                free(ms); free(ml);
                st = ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer metadata)");
                goto done;
            }
            memcpy(ms[i], t->arena + a->piece_off, a->piece_len);
            ms[i][a->piece_len] = ' ';
            memcpy(ms[i] + a->piece_len + 1, t->arena + b->piece_off, b->piece_len);
            ms[i][ml[i]] = 0;
        }
        if ((st = ob_meta_take_str_arr(meta, OB_KEY_TOK_MERGES, ms, ml, k))) goto done;
    }
    if (t->bos >= 0 && (st = ob_meta_set_int(meta, OB_KEY_BOS, t->bos))) goto done;
    if (t->eos >= 0 && (st = ob_meta_set_int(meta, OB_KEY_EOS, t->eos))) goto done;
    if (t->eot >= 0 && (st = ob_meta_set_int(meta, OB_KEY_EOT, t->eot))) goto done;
    if ((st = ob_meta_set_bool(meta, OB_KEY_ADD_BOS, t->add_bos))) goto done;
    if (t->chat_template && (st = ob_meta_set_str(meta, OB_KEY_CHAT_TEMPLATE, t->chat_template))) goto done;
done:
    free(strs); free(lens); free(types); free(scores); free(mr);
    return st;
}

/* ---- tiktoken ranks (LLaMA-3 tokenizer.model) ---------------------------- */

/* The 256 special tokens LLaMA-3 defines in code after the ranked tokens. */
static void llama3_special_name(int k, char *out, size_t cap) {
    static const char *const named[] = {
        "<|begin_of_text|>", "<|end_of_text|>", NULL, NULL, NULL, NULL,
        "<|start_header_id|>", "<|end_header_id|>", NULL, "<|eot_id|>",
    };
    if (k < (int)OB_ARRAY_LEN(named) && named[k]) { snprintf(out, cap, "%s", named[k]); return; }
    int reserved = k < 6 ? k - 2 : k == 8 ? 4 : k - 5; /* reserved_special_token_0..3, 4, 5..250 */
    snprintf(out, cap, "<|reserved_special_token_%d|>", reserved);
}

static int b64_value(char c) {
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+') return 62;
    if (c == '/') return 63;
    return -1;
}

/* Standard base64 with optional '=' padding; returns the byte count or -1. */
static long b64_decode(const char *s, size_t n, uint8_t *out) {
    while (n && s[n - 1] == '=') n--;
    if (n % 4 == 1) return -1;
    size_t k = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        int v = b64_value(s[i]);
        if (v < 0) return -1;
        acc = acc << 6 | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[k++] = (uint8_t)(acc >> bits);
        }
    }
    return (long)k;
}

static bool looks_tiktoken(const char *data, size_t size) {
    size_t i = 0;
    while (i < size && b64_value(data[i]) >= 0) i++;
    while (i < size && data[i] == '=') i++;
    if (i == 0 || i >= size || data[i] != ' ') return false;
    size_t d = ++i;
    while (i < size && data[i] >= '0' && data[i] <= '9') i++;
    return i > d && (i == size || data[i] == '\n' || data[i] == '\r');
}

static ob_status load_tiktoken(const char *path, const char *data, size_t size, ob_tokenizer **out) {
    size_t lines = 0;
    for (size_t i = 0; i < size; i++) lines += data[i] == '\n';
    lines += size && data[size - 1] != '\n';
    if (lines == 0 || lines > (1u << 24) - 256) return ob_fail(OB_ERR_FORMAT, "%s: not a tiktoken ranks file", path);
    size_t n_ranked = lines, n = lines + 256;
    char **pieces = calloc(n, sizeof *pieces);
    int32_t *types = malloc(n * sizeof *types);
    ob_status st = OB_OK;
    if (!pieces || !types) { st = ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer)"); goto done; }
    size_t line = 0, got = 0;
    for (size_t i = 0; i < size; line++) {
        size_t end = i;
        while (end < size && data[end] != '\n') end++;
        size_t e = end;
        if (e > i && data[e - 1] == '\r') e--;
        if (e == i) { i = end + 1; continue; } /* blank line */
        const char *sp = memchr(data + i, ' ', e - i);
        uint8_t bytes[256];
        long nb = sp && (size_t)(sp - (data + i)) <= 340 ? b64_decode(data + i, (size_t)(sp - (data + i)), bytes) : -1;
        long long rank = -1;
        if (sp && sp + 1 < data + e) {
            rank = 0;
            for (const char *p = sp + 1; p < data + e && rank >= 0; p++)
                rank = *p >= '0' && *p <= '9' && rank < (1 << 24) ? rank * 10 + (*p - '0') : -1;
        }
        if (nb <= 0 || rank < 0 || (size_t)rank >= n_ranked || pieces[rank]) {
            st = ob_fail(OB_ERR_FORMAT, "%s:%zu: expected \"base64 rank\" with a new rank below %zu", path, line + 1, n_ranked);
            goto done;
        }
        char *p = malloc((size_t)nb * 2 + 1), *q = p;
        if (!p) { st = ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer)"); goto done; }
        for (long j = 0; j < nb; j++) q += ob_utf8_encode(ob_tok_byte_to_cp(bytes[j]), q);
        *q = 0;
        pieces[rank] = p;
        types[rank] = OB_TOKTYPE_NORMAL;
        got++;
        i = end + 1;
    }
    if (got != n_ranked) { /* blank lines counted: ranks must still be 0..got-1 */
        for (size_t r = 0; r < got; r++)
            if (!pieces[r]) { st = ob_fail(OB_ERR_FORMAT, "%s: rank %zu is missing", path, r); goto done; }
        for (size_t r = got; r < n_ranked; r++) free(pieces[r]);
        n_ranked = got;
        n = got + 256;
    }
    for (int k = 0; k < 256; k++) {
        char name[64];
        llama3_special_name(k, name, sizeof name);
        if (!(pieces[n_ranked + (size_t)k] = ob_strdup(name))) { st = ob_fail(OB_ERR_NOMEM, "out of memory"); goto done; }
        types[n_ranked + (size_t)k] = OB_TOKTYPE_CONTROL;
    }
    ob_tok_spec spec = {
        .kind = OB_TOK_BPE, .n_vocab = (int32_t)n, .pieces = (const char *const *)pieces, .types = types,
        .pre = "llama3", .bos = (int32_t)n_ranked, .eos = (int32_t)n_ranked + 1, .eot = (int32_t)n_ranked + 9,
        .add_bos = 1,
    };
    st = ob_tok_build(&spec, out);
done:
    if (pieces)
        for (size_t i = 0; i < lines + 256; i++) free(pieces[i]);
    free(pieces);
    free(types);
    return st;
}

/* ---- HF tokenizer.json ----------------------------------------------------- */

/* Searches a pre_tokenizer tree for a ByteLevel step and a Split regex. */
static void scan_pre(const ob_json *node, bool *byte_level, bool *bl_regex, const char **regex) {
    if (!node || node->type != OB_JSON_OBJECT) return;
    const char *type = ob_json_get_str(node, "type");
    if (type && !strcmp(type, "ByteLevel")) {
        *byte_level = true;
        const ob_json *ur = ob_json_get(node, "use_regex");
        if (!ur || (ur->type == OB_JSON_BOOL && ur->boolean)) *bl_regex = true;
    }
    if (type && !strcmp(type, "Split")) {
        const ob_json *pat = ob_json_get(node, "pattern");
        const char *re = pat ? ob_json_get_str(pat, "Regex") : NULL;
        if (re && !*regex) *regex = re;
    }
    const ob_json *list = ob_json_get(node, "pretokenizers");
    if (list && list->type == OB_JSON_ARRAY)
        for (const ob_json *c = list->child; c; c = c->next) scan_pre(c, byte_level, bl_regex, regex);
}

/* A token named in tokenizer_config.json: a string or {"content": ...}. */
static const char *config_token(const ob_json *cfg, const char *key) {
    const ob_json *v = ob_json_get(cfg, key);
    if (!v) return NULL;
    if (v->type == OB_JSON_STRING) return v->str;
    return v->type == OB_JSON_OBJECT ? ob_json_get_str(v, "content") : NULL;
}

static int32_t piece_id(const char *const *pieces, int32_t n, const char *s) {
    if (!s) return -1;
    for (int32_t i = n - 1; i >= 0; i--) /* added tokens sit at the end */
        if (pieces[i] && !strcmp(pieces[i], s)) return i;
    return -1;
}

static ob_status load_json(const char *path, const char *data, size_t size, ob_tokenizer **out) {
    ob_json_doc doc = { 0 }, cfg = { 0 };
    ob_status st = ob_json_parse(data, size, &doc);
    if (st) return ob_fail_prefix(st, "%s", path);
    const char **pieces = NULL, **ma = NULL, **mb = NULL;
    uint32_t *plen = NULL, *la = NULL, *lb = NULL;
    int32_t *types = NULL;
    const ob_json *root = doc.root, *model = ob_json_get(root, "model");
    const ob_json *vocab = model ? ob_json_get(model, "vocab") : NULL;
    const ob_json *merges = model ? ob_json_get(model, "merges") : NULL;
    const ob_json *added = ob_json_get(root, "added_tokens");
    const char *mtype = model ? ob_json_get_str(model, "type") : NULL;
    if (!vocab || vocab->type != OB_JSON_OBJECT || (mtype && strcmp(mtype, "BPE"))) {
        st = ob_fail(OB_ERR_UNSUPPORTED, "%s: only BPE models (model.vocab) are supported", path);
        goto done;
    }
    bool byte_level = false, bl_regex = false;
    const char *regex = NULL;
    scan_pre(ob_json_get(root, "pre_tokenizer"), &byte_level, &bl_regex, &regex);
    if (!byte_level) {
        st = ob_fail(OB_ERR_UNSUPPORTED, "%s: only byte-level BPE is supported from tokenizer.json (SentencePiece vocabularies load from GGUF)", path);
        goto done;
    }
    const char *pre = regex ? ob_tok_pre_for_regex(regex) : bl_regex ? "gpt2" : NULL;
    if (!pre) {
        st = ob_fail(OB_ERR_UNSUPPORTED, "%s: pre-tokenizer regex not recognised: %.120s", path, regex ? regex : "(none)");
        goto done;
    }
    /* Ids: model.vocab, then added_tokens (which may extend it). */
    int64_t max_id = -1;
    for (const ob_json *m = vocab->child; m; m = m->next) {
        if (!ob_json_is_int(m) || m->number < 0 || m->number >= (1 << 24)) {
            st = ob_fail(OB_ERR_FORMAT, "%s: vocab id of \"%.40s\" is not a valid id", path, m->key);
            goto done;
        }
        max_id = OB_MAX(max_id, (int64_t)m->number);
    }
    if (added && added->type == OB_JSON_ARRAY)
        for (const ob_json *a = added->child; a; a = a->next) {
            const ob_json *id = ob_json_get(a, "id");
            if (!id || !ob_json_is_int(id) || id->number < 0 || id->number >= (1 << 24) || !ob_json_get_str(a, "content")) {
                st = ob_fail(OB_ERR_FORMAT, "%s: added_tokens entry without a valid id and content", path);
                goto done;
            }
            max_id = OB_MAX(max_id, (int64_t)id->number);
        }
    int32_t n = (int32_t)(max_id + 1);
    pieces = calloc((size_t)n + 1, sizeof *pieces);
    plen = calloc((size_t)n + 1, sizeof *plen);
    types = calloc((size_t)n + 1, sizeof *types);
    if (!pieces || !plen || !types) { st = ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer)"); goto done; }
    for (const ob_json *m = vocab->child; m; m = m->next) {
        int32_t id = (int32_t)m->number;
        if (pieces[id]) { st = ob_fail(OB_ERR_FORMAT, "%s: id %d is used twice in model.vocab", path, id); goto done; }
        pieces[id] = m->key;
        plen[id] = (uint32_t)m->key_len;
        types[id] = OB_TOKTYPE_NORMAL;
    }
    if (added && added->type == OB_JSON_ARRAY)
        for (const ob_json *a = added->child; a; a = a->next) {
            int32_t id = (int32_t)ob_json_get(a, "id")->number;
            const ob_json *c = ob_json_get(a, "content"), *special = ob_json_get(a, "special");
            pieces[id] = c->str;
            plen[id] = (uint32_t)c->str_len;
            types[id] = special && special->type == OB_JSON_BOOL && special->boolean ? OB_TOKTYPE_CONTROL : OB_TOKTYPE_USER;
        }
    for (int32_t i = 0; i < n; i++)
        if (!pieces[i]) { st = ob_fail(OB_ERR_FORMAT, "%s: token id %d is missing (ids must be 0..%d)", path, i, n - 1); goto done; }

    size_t nm = merges && merges->type == OB_JSON_ARRAY ? merges->count : 0;
    ma = malloc((nm + 1) * sizeof *ma);
    mb = malloc((nm + 1) * sizeof *mb);
    la = malloc((nm + 1) * sizeof *la);
    lb = malloc((nm + 1) * sizeof *lb);
    if (!ma || !mb || !la || !lb) { st = ob_fail(OB_ERR_NOMEM, "out of memory (tokenizer merges)"); goto done; }
    size_t k = 0;
    for (const ob_json *m = nm ? merges->child : NULL; m; m = m->next, k++) {
        size_t cut;
        if (m->type == OB_JSON_STRING && split_merge(m->str, m->str_len, &cut)) {
            ma[k] = m->str; la[k] = (uint32_t)cut;
            mb[k] = m->str + cut + 1; lb[k] = (uint32_t)(m->str_len - cut - 1);
        } else if (m->type == OB_JSON_ARRAY && m->count == 2 && m->child->type == OB_JSON_STRING &&
                   m->child->next->type == OB_JSON_STRING) {
            ma[k] = m->child->str; la[k] = (uint32_t)m->child->str_len;
            mb[k] = m->child->next->str; lb[k] = (uint32_t)m->child->next->str_len;
        } else {
            st = ob_fail(OB_ERR_FORMAT, "%s: merge %zu is neither \"a b\" nor [\"a\", \"b\"]", path, k);
            goto done;
        }
    }
    if (k == 0) { st = ob_fail(OB_ERR_FORMAT, "%s: model.merges is empty", path); goto done; }

    /* tokenizer_config.json beside it: BOS/EOS names, add_bos, chat template. */
    ob_tok_spec spec = {
        .kind = OB_TOK_BPE, .n_vocab = n, .pieces = pieces, .piece_lens = plen, .types = types,
        .merge_a = ma, .merge_b = mb, .merge_a_len = la, .merge_b_len = lb, .n_merges = k,
        .pre = pre, .bos = -1, .eos = -1, .eot = -1, .add_bos = -1,
    };
    const char *slash = strrchr(path, '/');
    {
        char *dir = slash ? ob_strndup(path, (size_t)(slash - path)) : ob_strdup(".");
        char *cp = dir ? ob_path_join(dir, "tokenizer_config.json") : NULL;
        char *text = NULL;
        size_t tlen = 0;
        free(dir);
        if (cp && ob_file_exists(cp) && ob_read_file(cp, &text, &tlen) == OB_OK && ob_json_parse(text, tlen, &cfg) == OB_OK) {
            const ob_json *c = cfg.root;
            spec.bos = piece_id(pieces, n, config_token(c, "bos_token"));
            spec.eos = piece_id(pieces, n, config_token(c, "eos_token"));
            const ob_json *ab = ob_json_get(c, "add_bos_token");
            if (ab && ab->type == OB_JSON_BOOL) spec.add_bos = ab->boolean;
            const ob_json *ct = ob_json_get(c, "chat_template");
            if (ct && ct->type == OB_JSON_STRING) spec.chat_template = ct->str;
            else if (ct && ct->type == OB_JSON_ARRAY) /* [{"name": "default", "template": ...}, ...] */
                for (const ob_json *x = ct->child; x; x = x->next) {
                    const char *name = ob_json_get_str(x, "name");
                    if (name && !strcmp(name, "default")) spec.chat_template = ob_json_get_str(x, "template");
                }
        } else if (cp && ob_file_exists(cp)) {
            ob_log(OB_LOG_WARN, "%s: unreadable, ignored: %s", cp, ob_last_error());
        }
        free(cp);
        free(text);
    }
    st = ob_tok_build(&spec, out);
done:
    free(pieces); free(plen); free(types);
    free(ma); free(mb); free(la); free(lb);
    ob_json_free(&cfg);
    ob_json_free(&doc);
    return st;
}

/* ---- by path ------------------------------------------------------------------ */

static ob_status from_model_file(const char *path, ob_tokenizer **out) {
    ob_model_file mf;
    ob_status st = ob_model_file_open(path, &mf);
    if (st) return st;
    st = ob_tokenizer_from_meta(&mf.meta, out);
    ob_model_file_close(&mf);
    if (st) return ob_fail_prefix(st, "%s", path);
    return OB_OK;
}

static ob_status from_text_file(const char *path, ob_tokenizer **out) {
    char *data;
    size_t size;
    ob_status st = ob_read_file(path, &data, &size);
    if (st) return st;
    size_t i = 0;
    while (i < size && (data[i] == ' ' || data[i] == '\n' || data[i] == '\r' || data[i] == '\t')) i++;
    if (ob_str_ends_with(path, ".json") || (i < size && data[i] == '{')) st = load_json(path, data, size, out);
    else if (looks_tiktoken(data, size)) st = load_tiktoken(path, data, size, out);
    else st = ob_fail(OB_ERR_FORMAT, "%s: not a tokenizer.json, tiktoken ranks file, .gguf or .h1b", path);
    free(data);
    return st;
}

static bool is_tiktoken_file(const char *path) {
    ob_mapped_file f;
    if (ob_map_file(path, &f)) return false;
    bool yes = looks_tiktoken((const char *)f.data, f.size);
    ob_unmap_file(&f);
    return yes;
}

ob_status ob_tokenizer_from_file(const char *path, ob_tokenizer **out) {
    *out = NULL;
    if (ob_is_dir(path)) {
        /* A Hugging Face directory: its tokenizer files, without converting weights. */
        char *json = ob_path_join(path, "tokenizer.json"), *ranks = ob_path_join(path, "tokenizer.model");
        ob_status st = OB_ERR_IO;
        if (!json || !ranks) st = ob_fail(OB_ERR_NOMEM, "out of memory");
        else if (ob_file_exists(json)) st = from_text_file(json, out);
        else if (ob_file_exists(ranks) && is_tiktoken_file(ranks)) st = from_text_file(ranks, out);
        free(json);
        free(ranks);
        if (st != OB_ERR_IO) return st;
        return from_model_file(path, out);
    }
    if (!ob_file_exists(path)) return ob_fail(OB_ERR_IO, "%s: no such file", path);
    if (ob_str_ends_with(path, ".gguf") || ob_str_ends_with(path, ".h1b")) return from_model_file(path, out);
    ob_mapped_file f;
    ob_status st = ob_map_file(path, &f);
    if (st) return st;
    bool model = (f.size >= 4 && memcmp(f.data, "GGUF", 4) == 0) || (f.size >= 7 && memcmp(f.data, "1bitH1B", 7) == 0);
    ob_unmap_file(&f);
    return model ? from_model_file(path, out) : from_text_file(path, out);
}
