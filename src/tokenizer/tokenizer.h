/* Tokenizers: byte-level BPE (LLaMA-3, GPT-2 style) and SentencePiece BPE
 * (llama2 vocabularies with scores and byte fallback), plus chat templates.
 *
 * A tokenizer is built from canonical model metadata (format/meta.h keys
 * tokenizer.*), or from a file: tokenizer.json, a tiktoken ranks file
 * (tokenizer.model of LLaMA-3), a .gguf, or an HF directory. */
#ifndef OB_TOKENIZER_H
#define OB_TOKENIZER_H

#include "format/meta.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef struct ob_tokenizer ob_tokenizer;

ob_status ob_tokenizer_from_meta(const ob_meta *meta, ob_tokenizer **out);
/* path: tokenizer.json, tokenizer.model (tiktoken ranks), a .gguf/.h1b, or a directory. */
ob_status ob_tokenizer_from_file(const char *path, ob_tokenizer **out);
/* Adds the tokenizer.* keys that describe tok to meta (importers use this to
 * store a tokenizer read from tokenizer.json into a .h1b). */
ob_status ob_tokenizer_to_meta(const ob_tokenizer *tok, ob_meta *meta);
void ob_tokenizer_free(ob_tokenizer *tok);

int32_t ob_tokenizer_n_vocab(const ob_tokenizer *tok);
int32_t ob_tokenizer_bos(const ob_tokenizer *tok);  /* -1 when none */
int32_t ob_tokenizer_eos(const ob_tokenizer *tok);
int32_t ob_tokenizer_eot(const ob_tokenizer *tok);  /* end of turn (<|eot_id|>) or -1 */
bool ob_tokenizer_add_bos(const ob_tokenizer *tok);
bool ob_tokenizer_is_eog(const ob_tokenizer *tok, int32_t id); /* eos, eot or other end-of-generation */

/* Encodes text[0..len). parse_special: match special-token strings such as
 * <|eot_id|> in the text (never by default). add_bos: prepend BOS.
 * *ids is malloc'd (caller frees). Invalid UTF-8 is encoded as its bytes
 * (byte-level BPE) or byte-fallback tokens (SentencePiece), never an error. */
ob_status ob_tokenize(const ob_tokenizer *tok, const char *text, size_t len, bool add_bos,
                      bool parse_special, int32_t **ids, size_t *n_ids);

/* The exact bytes of one token (special tokens give their text). Returns the
 * length and sets *bytes to tokenizer-owned memory; 0 for an invalid id. */
size_t ob_token_bytes(const ob_tokenizer *tok, int32_t id, const char **bytes);
/* Appends the bytes of ids to out; an id outside the vocabulary is
 * OB_ERR_RANGE. Byte-level BPE: every token gives its bytes (special tokens
 * their text). SentencePiece: control tokens (BOS/EOS) give no text, and the
 * first piece that gives text loses its leading space (the dummy prefix that
 * encoding added, which llama2.c drops after BOS when printing), so
 * decode(encode(x)) == x. */
ob_status ob_detokenize(const ob_tokenizer *tok, const int32_t *ids, size_t n, ob_buf *out);

/* Streaming decode: feed ids one at a time; emits only complete UTF-8
 * sequences, holding back an incomplete tail until it completes (or flush).
 * The bytes of a whole stream equal ob_detokenize of its ids. */
typedef struct ob_detok_stream {
    const ob_tokenizer *tok;
    char pending[8];
    size_t n_pending;
    /* SentencePiece: false until a piece gave text; the first one loses its
     * leading space as in ob_detokenize. Set it to true after init when the
     * stream continues text already shown (generation after a prompt), so
     * " a time" after "Once upon" keeps its space. */
    bool started;
} ob_detok_stream;
void ob_detok_stream_init(ob_detok_stream *s, const ob_tokenizer *tok);
/* Tells a fresh stream which ids came before it (the prompt): when they
 * already gave text, its first piece keeps its leading space. */
void ob_detok_stream_after(ob_detok_stream *s, const int32_t *prev_ids, size_t n);
ob_status ob_detok_stream_push(ob_detok_stream *s, int32_t id, ob_buf *out);
ob_status ob_detok_stream_flush(ob_detok_stream *s, ob_buf *out); /* pending bytes as they are */

/* ---- chat templates ----------------------------------------------------
 * One table (chat.c) of named templates: "bitnet" (BitNet 2B-4T: BOS, then
 * "Role: content<|eot_id|>", generation prompt "Assistant: "), "llama3"
 * (header tokens), "plain" (contents joined, for completion models). */
typedef struct ob_chat_msg {
    const char *role;    /* "system" | "user" | "assistant" */
    const char *content;
} ob_chat_msg;

/* Name of the template for a model: from metadata (a known name, or guessed
 * from the source's Jinja text), else by architecture. */
const char *ob_chat_template_for(const ob_meta *meta);
bool ob_chat_template_known(const char *name);
/* Renders messages to text that must be tokenized with parse_special = true.
 * BOS is NOT included in the text: callers add it with add_bos. add_generation:
 * end with the assistant prompt. */
ob_status ob_chat_render(const char *tmpl, const ob_chat_msg *msgs, size_t n, bool add_generation,
                         ob_buf *out);

#ifdef __cplusplus
}
#endif
#endif
