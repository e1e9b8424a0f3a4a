/* OpenAI request bodies: parsing and validation (jansson), and the error
 * shape every failure is reported in. Nothing here touches the model: the
 * result is text (chat messages or a prompt) plus generation settings, checked
 * for type and range so that everything a client can get wrong is answered
 * with a 4xx before any response header goes out. */
#ifndef OB_SERVER_REQUEST_H
#define OB_SERVER_REQUEST_H

#include "core/core.h"
#include "runtime/sampler.h"
#include "tokenizer/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

#define OB_REQ_MAX_STOPS 16
#define OB_REQ_MAX_STOP_LEN 256
#define OB_REQ_MAX_N 16

/* An error as OpenAI clients expect it:
 * {"error": {"message", "type", "param", "code"}} with HTTP status. */
typedef struct ob_api_error {
    int status;         /* HTTP status */
    const char *type;   /* "invalid_request_error", "authentication_error", ... */
    const char *code;   /* short machine code or NULL */
    char param[64];     /* offending field ("" when none) */
    char message[320];
} ob_api_error;

/* Fills e and returns OB_ERR_ARG (so a validator can `return api_fail(...)`). */
ob_status ob_api_fail(ob_api_error *e, int status, const char *type, const char *code, const char *param,
                      const char *fmt, ...) OB_PRINTF(6, 7);

typedef enum ob_req_kind { OB_REQ_CHAT, OB_REQ_COMPLETION } ob_req_kind;

/* A parsed /v1/chat/completions or /v1/completions body. Owns all its strings. */
typedef struct ob_gen_request {
    ob_req_kind kind;
    char *model;            /* as sent, NULL when absent */
    ob_chat_msg *msgs;      /* CHAT: n_msgs messages (role, content owned here) */
    size_t n_msgs;
    char *prompt;           /* COMPLETION: prompt text, or NULL when given as ids */
    int32_t *prompt_ids;    /* COMPLETION: prompt as token ids */
    size_t n_prompt_ids;
    bool stream, include_usage, echo;
    bool ignore_eos;        /* llama.cpp extension: keep going past end-of-generation tokens */
    int n;                  /* choices, 1..OB_REQ_MAX_N */
    int max_tokens;         /* -1: until end of generation or context */
    bool seed_given;
    ob_sampler_params sp;
    char *stops[OB_REQ_MAX_STOPS];
    size_t n_stops;
} ob_gen_request;

/* Parses body[0..len). defaults supplies the sampling settings of absent keys.
 * On failure returns OB_ERR_ARG with err filled (status 400) and *out cleared. */
ob_status ob_request_parse(const char *body, size_t len, ob_req_kind kind, const ob_sampler_params *defaults,
                           ob_gen_request *out, ob_api_error *err);
void ob_request_free(ob_gen_request *r);

/* /tokenize {"content", "add_special", "parse_special", "with_pieces"}. */
typedef struct ob_tokenize_request {
    char *content;
    size_t content_len;
    bool add_special, parse_special, with_pieces;
} ob_tokenize_request;
ob_status ob_tokenize_request_parse(const char *body, size_t len, ob_tokenize_request *out, ob_api_error *err);

/* /detokenize {"tokens": [ids]}; ids are checked against n_vocab. */
ob_status ob_detokenize_request_parse(const char *body, size_t len, int n_vocab, int32_t **ids, size_t *n_ids,
                                      ob_api_error *err);

#ifdef __cplusplus
}
#endif
#endif
