/* Typed key/value metadata: what a model file says about itself.
 *
 * Every importer fills one ob_meta with the canonical keys below (whatever the
 * source called them), .h1b stores it as is, and the model and tokenizer read
 * only these keys. Values are owned copies. */
#ifndef OB_META_H
#define OB_META_H

#include "core/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Canonical keys. "?" marks optional ones. */
#define OB_KEY_ARCH          "general.architecture"   /* str: "bitnet" | "llama" */
#define OB_KEY_NAME          "general.name"           /* str? */
#define OB_KEY_SOURCE        "general.source"         /* str?: provenance ("hf:DIR", "gguf:FILE (I2_S)") */
#define OB_KEY_VOCAB         "model.vocab_size"       /* int */
#define OB_KEY_CTX           "model.context_length"   /* int: trained context */
#define OB_KEY_EMBD          "model.embedding_length" /* int */
#define OB_KEY_LAYERS        "model.block_count"      /* int */
#define OB_KEY_FF            "model.feed_forward_length" /* int */
#define OB_KEY_HEADS         "model.head_count"       /* int */
#define OB_KEY_HEADS_KV      "model.head_count_kv"    /* int */
#define OB_KEY_HEAD_DIM      "model.head_dim"         /* int */
#define OB_KEY_ROPE_DIM      "model.rope_dim"         /* int?: rotated dims per head (default head_dim) */
#define OB_KEY_ROPE_BASE     "model.rope_freq_base"   /* float */
#define OB_KEY_ROPE_TYPE     "model.rope_type"        /* str: "neox" (i, i+d/2) | "norm" (2i, 2i+1) */
#define OB_KEY_NORM_EPS      "model.rms_norm_eps"     /* float */
#define OB_KEY_ACT           "model.activation"       /* str: "relu2" | "silu" */
#define OB_KEY_SUBNORM       "model.sub_norms"        /* bool: attn_sub_norm / ffn_sub_norm present */
#define OB_KEY_TIED          "model.tied_embeddings"  /* bool: lm_head = token_embd */
#define OB_KEY_TOK_MODEL     "tokenizer.model"        /* str: "gpt2" (byte BPE) | "llama" (SentencePiece) | "none" */
#define OB_KEY_TOK_PRE       "tokenizer.pre"          /* str?: pre-tokenizer ("llama3", "gpt2", ...) */
#define OB_KEY_TOK_TOKENS    "tokenizer.tokens"       /* str[]: as in GGUF (GPT-2 byte alphabet for gpt2) */
#define OB_KEY_TOK_SCORES    "tokenizer.scores"       /* f32[]? */
#define OB_KEY_TOK_TYPES     "tokenizer.token_type"   /* i32[]? (GGUF token types) */
#define OB_KEY_TOK_MERGES    "tokenizer.merges"       /* str[]? "a b" */
#define OB_KEY_BOS           "tokenizer.bos_id"       /* int? */
#define OB_KEY_EOS           "tokenizer.eos_id"       /* int? */
#define OB_KEY_EOT           "tokenizer.eot_id"       /* int? end of turn */
#define OB_KEY_ADD_BOS       "tokenizer.add_bos"      /* bool? */
#define OB_KEY_CHAT_TEMPLATE "tokenizer.chat_template" /* str?: a template name or the source's Jinja text */

typedef enum ob_meta_type {
    OB_META_INT,       /* int64 */
    OB_META_FLOAT,     /* double */
    OB_META_BOOL,
    OB_META_STR,
    OB_META_STR_ARR,
    OB_META_I32_ARR,
    OB_META_F32_ARR,
} ob_meta_type;

typedef struct ob_meta_entry {
    char *key;
    ob_meta_type type;
    uint64_t count;   /* array length (1 for scalars) */
    int64_t i;        /* INT, BOOL */
    double f;         /* FLOAT */
    char *str;        /* STR (NUL-terminated; str_len excludes the NUL) */
    size_t str_len;
    char **strs;      /* STR_ARR: count strings, each NUL-terminated */
    uint32_t *str_lens;
    void *arr;        /* I32_ARR / F32_ARR */
} ob_meta_entry;

typedef struct ob_meta {
    ob_meta_entry *e;
    size_t n, cap;
} ob_meta;

void ob_meta_free(ob_meta *m);
const ob_meta_entry *ob_meta_find(const ob_meta *m, const char *key);
/* Setters replace an existing key. Arrays are copied. */
ob_status ob_meta_set_int(ob_meta *m, const char *key, int64_t v);
ob_status ob_meta_set_float(ob_meta *m, const char *key, double v);
ob_status ob_meta_set_bool(ob_meta *m, const char *key, bool v);
ob_status ob_meta_set_str(ob_meta *m, const char *key, const char *s);
ob_status ob_meta_set_strn(ob_meta *m, const char *key, const char *s, size_t n);
/* lens may be NULL (then strlen). */
ob_status ob_meta_set_str_arr(ob_meta *m, const char *key, const char *const *strs,
                              const uint32_t *lens, uint64_t count);
ob_status ob_meta_set_i32_arr(ob_meta *m, const char *key, const int32_t *v, uint64_t count);
ob_status ob_meta_set_f32_arr(ob_meta *m, const char *key, const float *v, uint64_t count);
/* Moves a STR_ARR built by the caller (strs[i] and strs malloc'd) into m without copying. */
ob_status ob_meta_take_str_arr(ob_meta *m, const char *key, char **strs, uint32_t *lens, uint64_t count);

/* Removes key if present (returns whether it was). */
bool ob_meta_remove(ob_meta *m, const char *key);

/* Getters with defaults. INT and FLOAT convert to each other; BOOL reads INT too. */
int64_t ob_meta_int(const ob_meta *m, const char *key, int64_t def);
double ob_meta_float(const ob_meta *m, const char *key, double def);
bool ob_meta_bool(const ob_meta *m, const char *key, bool def);
const char *ob_meta_str(const ob_meta *m, const char *key, const char *def);

#ifdef __cplusplus
}
#endif
#endif
