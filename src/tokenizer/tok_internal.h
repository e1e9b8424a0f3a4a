/* Tokenizer internals shared by tokenizer.c (encode/decode) and tok_load.c
 * (tokenizer.json, tiktoken ranks, canonical metadata). Not a public header. */
#ifndef OB_TOK_INTERNAL_H
#define OB_TOK_INTERNAL_H

#include "tokenizer/tokenizer.h"

/* GGUF token types (tokenizer.ggml.token_type). */
enum {
    OB_TOKTYPE_NORMAL = 1,
    OB_TOKTYPE_UNKNOWN = 2,
    OB_TOKTYPE_CONTROL = 3,
    OB_TOKTYPE_USER = 4,
    OB_TOKTYPE_UNUSED = 5,
    OB_TOKTYPE_BYTE = 6,
};

typedef enum ob_tok_kind {
    OB_TOK_BPE, /* byte-level BPE ("gpt2": LLaMA-3, GPT-2) */
    OB_TOK_SPM, /* SentencePiece BPE with scores ("llama": llama2 vocabularies) */
} ob_tok_kind;

typedef struct ob_tok_entry {
    uint32_t piece_off, piece_len; /* as stored (GPT-2 byte alphabet, or "▁" pieces) */
    uint32_t text_off, text_len;   /* the bytes it decodes to */
    float score;                   /* SentencePiece merge priority (higher merges first) */
    int32_t type;                  /* OB_TOKTYPE_* */
} ob_tok_entry;

/* Open-addressing hash: byte string -> token id. Keys point into the arena. */
typedef struct ob_tok_slot {
    int32_t id;     /* -1 empty */
    uint32_t check; /* high hash bits: most mismatches are rejected without touching the key */
} ob_tok_slot;
typedef struct ob_tok_strmap {
    ob_tok_slot *slot;
    uint32_t mask;
} ob_tok_strmap;

/* Open-addressing hash: (left id, right id) -> merge rank and result id. */
typedef struct ob_tok_pair {
    uint64_t key; /* left << 32 | right; UINT64_MAX = empty */
    uint32_t rank;
    int32_t result;
} ob_tok_pair;

struct ob_tokenizer {
    ob_tok_kind kind;
    int32_t n_vocab;
    ob_tok_entry *tok;
    char *arena;            /* pieces and texts of all tokens */
    size_t arena_len;

    ob_tok_strmap text_map; /* text -> id of the tokens encoding may produce from text */
    ob_tok_pair *pairs;     /* BPE merges */
    uint32_t pair_mask;
    size_t n_pairs;
    int32_t byte_tok[256];  /* token of each single byte (BPE) or <0xNN> (SPM); -1 none */

    /* Tokens matched as whole strings before splitting text: control tokens
     * (only with parse_special) and user-defined ones (always). Sorted by
     * length, longest first, so the longest match at a position wins. */
    int32_t *special;
    size_t n_special;
    size_t n_user;              /* how many of them are user-defined (matched always) */
    uint8_t special_first[256]; /* 1 when some special text starts with this byte */

    int32_t bos, eos, eot, unk;
    int32_t *eog;           /* end-of-generation ids */
    size_t n_eog;
    bool add_bos;
    bool add_space_prefix;  /* SPM: text starts with a "▁" */
    bool ignore_merges;     /* BPE: a pre-token that is a token is emitted whole */
    char *pre;              /* pre-tokenizer name (BPE) */
    char *chat_template;    /* source's template (a name or Jinja), or NULL */
    void *regex;            /* pcre2_code_8 * (BPE), NULL without PCRE2 */
};

/* What a loader hands to ob_tok_build. Arrays are borrowed. */
typedef struct ob_tok_spec {
    ob_tok_kind kind;
    int32_t n_vocab;
    const char *const *pieces;      /* [n_vocab] as stored (GGUF convention) */
    const uint32_t *piece_lens;     /* [n_vocab] or NULL for strlen */
    const float *scores;            /* [n_vocab] or NULL */
    const int32_t *types;           /* [n_vocab] or NULL (derived) */
    /* BPE merges in rank order, as pairs of pieces (merge_a[i], merge_b[i]).
     * Without merges (n_merges 0) tiktoken's rule applies: any split of a
     * token into two tokens merges at the rank of the token, its id. */
    const char *const *merge_a, *const *merge_b;
    const uint32_t *merge_a_len, *merge_b_len;
    size_t n_merges;
    const char *pre;                /* BPE pre-tokenizer name, NULL = "default" */
    int32_t bos, eos, eot;          /* -1 = none / guess from token names */
    int add_bos;                    /* -1 = default for the kind */
    const char *chat_template;
} ob_tok_spec;

ob_status ob_tok_build(const ob_tok_spec *spec, ob_tokenizer **out);
/* The pre-tokenizer name whose regex is exactly this one, or NULL. */
const char *ob_tok_pre_for_regex(const char *regex);

/* The GPT-2 byte <-> unicode alphabet used to store byte-level tokens. */
uint32_t ob_tok_byte_to_cp(uint8_t b);
int ob_tok_cp_to_byte(uint32_t cp); /* -1 when cp is not in the alphabet */

/* Decodes one UTF-8 sequence at s[0..n): its length (1..4) and code point,
 * or 0 when the bytes there are not valid UTF-8. */
int ob_utf8_decode(const uint8_t *s, size_t n, uint32_t *cp);
int ob_utf8_encode(uint32_t cp, char out[4]);

#endif
