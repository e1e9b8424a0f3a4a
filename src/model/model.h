/* A loaded model: hyperparameters and the tensors of each layer, bound by name
 * from an ob_model_file (which the model owns), plus its tokenizer when the
 * file carries one. Architectures: "bitnet" (BitNet b1.58: sub-norms, ReLU^2
 * gate, ternary linears) and "llama" (SiLU gate; float or ternary linears). */
#ifndef OB_MODEL_H
#define OB_MODEL_H

#include "format/model_file.h"
#include "tokenizer/tokenizer.h"

#ifdef __cplusplus
extern "C" {
#endif

typedef enum ob_arch { OB_ARCH_BITNET, OB_ARCH_LLAMA } ob_arch;

typedef struct ob_hparams {
    ob_arch arch;
    int n_vocab, n_ctx_train, n_embd, n_layer, n_ff;
    int n_head, n_head_kv, head_dim, rope_dim;
    float rope_base, norm_eps;
    bool rope_neox;   /* pairs (i, i + rope_dim/2); else (2i, 2i+1) */
    bool act_relu2;   /* relu(gate)^2 * up; else silu(gate) * up */
    bool sub_norms;   /* attn_sub_norm before o_proj, ffn_sub_norm before down_proj */
    bool tied;        /* lm_head = token embedding */
} ob_hparams;

/* A linear layer y = W x. Ternary (T2): y = beta * (T . q(x)) / s with beta =
 * scale[0] or scale[row]; otherwise full-precision float weights. */
typedef struct ob_linear {
    const ob_tensor *w;
    const float *scale;   /* T2 only */
    int64_t n_scale;      /* 1 or rows */
    int64_t in, out;
} ob_linear;

typedef struct ob_layer {
    const float *attn_norm, *attn_sub_norm, *ffn_norm, *ffn_sub_norm;
    ob_linear q, k, v, o, gate, up, down;
} ob_layer;

typedef struct ob_model {
    ob_hparams hp;
    ob_model_file file;        /* owns every tensor */
    const ob_tensor *tok_embd; /* [n_embd, n_vocab] */
    const float *tok_embd_scale; /* per-row scales when the embedding is I8 */
    ob_linear output;          /* lm_head (tok_embd when tied) */
    const float *output_scale; /* per-row scales when the head is I8 */
    const float *output_norm;
    ob_layer *layers;
    ob_tokenizer *tok;         /* NULL when the file has no tokenizer */
    char *chat_template;       /* template name */
} ob_model;

/* Opens path (.h1b, .gguf, HF dir) and binds it. */
ob_status ob_model_load(const char *path, ob_model **out);
/* Binds an already-open file; takes ownership of *mf (cleared) even on failure. */
ob_status ob_model_from_file(ob_model_file *mf, ob_model **out);
void ob_model_free(ob_model *m);

/* Bytes of weights read per decoded token (ternary + norms + lm_head + one embedding row). */
uint64_t ob_model_weight_bytes(const ob_model *m);

/* Reads canonical metadata into hparams, validating every dimension. */
ob_status ob_hparams_from_meta(const ob_meta *meta, ob_hparams *hp);

/* Synthetic models with random weights at real shapes (bench, tests).
 * shape: "2b4t", "tiny" (the bitnet-tiny fixture's dims), "large", "3b", "8b",
 * or "bitnet:EMBD,LAYERS,HEADS,KV,FF,VOCAB". head: OB_TYPE_F16 / BF16 / I8 / Q8_0. */
ob_status ob_model_synthetic(const char *shape, ob_type head_type, uint64_t seed, ob_model **out);

/* Adds "output.weight" as I8 rows with per-row scales ("output.scale") made
 * from the current lm_head (quantized head: w_q = round(w * 127 / max|row|)). */
ob_status ob_model_quantize_head(ob_model *m);

#ifdef __cplusplus
}
#endif
#endif
