/* Hugging Face directory importer: config.json + model.safetensors (or a
 * sharded model.safetensors.index.json) + optional tokenizer.json and
 * tokenizer_config.json.
 *
 * Linears arrive in one of three forms:
 *   packed BitNet   uint8 [ceil(out/4), in]: bits 2i..2i+1 (LSB first) of packed
 *                   row r hold weight row i*R + r (R = packed rows), code = t + 1;
 *                   plus "<...>.weight_scale" (1 value). linear_class
 *                   "autobitlinear" multiplies by it (beta = weight_scale);
 *                   "bitlinear" or none divides (beta = 1/weight_scale).
 *   float, BitNet   bf16/f16/f32 master weights of a BitNet (quant_method
 *                   "bitnet", or a Bitnet architecture): ternarized here as the
 *                   reference quantizer does: beta = max(mean|W|, 1e-5),
 *                   t = clamp(round_half_even(W * (1/beta)), -1, 1).
 *   float, llama    kept in their dtype.
 * Ternary results are OB_TYPE_T2 + "<name>.scale" F32 [1]. HF shapes are
 * [out, in] row-major, which is ggml's ne = {in, out}: the bytes do not move. */
#include "format/import.h"
#include "format/safetensors.h"
#include "tokenizer/tokenizer.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* ---- config.json -------------------------------------------------------- */

typedef struct hf_config {
    bool bitnet;           /* architecture "bitnet" (else "llama") */
    bool ternary;          /* linears are (or become) ternary */
    bool scale_multiplies; /* linear_class autobitlinear */
    int64_t vocab, embd, layers, ff, heads, heads_kv, head_dim, ctx;
    double rope_base, eps;
    const char *act;
    bool tied;
    int64_t bos, eos, eot; /* -1: none */
} hf_config;

static ob_status cfg_int(const ob_json *root, const char *key, int64_t lo, int64_t hi, bool required, int64_t *v) {
    const ob_json *j = ob_json_get(root, key);
    if (!j || j->type == OB_JSON_NULL) {
        return required ? ob_fail(OB_ERR_FORMAT, "config.json: %s is missing", key) : OB_OK;
    }
    if (!ob_json_is_int(j) || j->number < (double)lo || j->number > (double)hi)
        return ob_fail(OB_ERR_FORMAT, "config.json: %s must be an integer in [%lld, %lld]", key, (long long)lo,
                       (long long)hi);
    *v = (int64_t)j->number;
    return OB_OK;
}

static ob_status cfg_pos(const ob_json *j, const char *key, double *v) {
    if (!j || j->type == OB_JSON_NULL) return OB_OK;
    if (j->type != OB_JSON_NUMBER || !isfinite(j->number) || j->number <= 0)
        return ob_fail(OB_ERR_FORMAT, "config.json: %s must be a positive number", key);
    *v = j->number;
    return OB_OK;
}

/* A token id, or a list of them: *first gets the first, *last the last. */
static ob_status cfg_ids(const ob_json *root, const char *key, int64_t *first, int64_t *last) {
    const ob_json *j = ob_json_get(root, key);
    if (!j || j->type == OB_JSON_NULL) return OB_OK;
    const ob_json *one = j->type == OB_JSON_ARRAY ? j->child : j;
    for (const ob_json *v = one; v; v = j->type == OB_JSON_ARRAY ? v->next : NULL) {
        if (!ob_json_is_int(v) || v->number < 0 || v->number > INT32_MAX)
            return ob_fail(OB_ERR_FORMAT, "config.json: %s must be a token id or a list of them", key);
        if (v == one) *first = (int64_t)v->number;
        if (last) *last = (int64_t)v->number;
    }
    return OB_OK;
}

static ob_status read_config(const ob_json *root, hf_config *c) {
    memset(c, 0, sizeof *c);
    if (!root || root->type != OB_JSON_OBJECT) return ob_fail(OB_ERR_FORMAT, "config.json: not a JSON object");
    const char *model_type = ob_json_get_str(root, "model_type");
    const ob_json *archs = ob_json_get(root, "architectures");
    const ob_json *arch0 = archs && archs->type == OB_JSON_ARRAY ? archs->child : NULL;
    /* 1bitLLM's checkpoints say model_type "llama", architectures ["BitnetForCausalLM"]. */
    bool bitnet_class = arch0 && arch0->type == OB_JSON_STRING && strncasecmp(arch0->str, "bitnet", 6) == 0;
    if (model_type && strcmp(model_type, "bitnet") == 0) c->bitnet = true;
    else if (model_type && strcmp(model_type, "llama") == 0) c->bitnet = bitnet_class;
    else if (!model_type && bitnet_class) c->bitnet = true;
    else
        return ob_fail(OB_ERR_UNSUPPORTED, "config.json: unsupported model_type '%.40s' (1bit reads bitnet and llama)",
                       model_type ? model_type : "(none)");
    c->ternary = c->bitnet;

    const ob_json *q = ob_json_get(root, "quantization_config");
    if (q && q->type == OB_JSON_OBJECT) {
        const char *method = ob_json_get_str(q, "quant_method");
        const char *linear_class = ob_json_get_str(q, "linear_class");
        const ob_json *rms = ob_json_get(q, "use_rms_norm");
        if (!method || strcmp(method, "bitnet") != 0)
            return ob_fail(OB_ERR_UNSUPPORTED, "config.json: unsupported quant_method '%.40s'", method ? method : "(none)");
        if (linear_class && strcmp(linear_class, "autobitlinear") != 0 && strcmp(linear_class, "bitlinear") != 0)
            return ob_fail(OB_ERR_UNSUPPORTED, "config.json: unsupported linear_class '%.40s'", linear_class);
        if (rms && rms->type == OB_JSON_BOOL && rms->boolean)
            return ob_fail(OB_ERR_UNSUPPORTED, "config.json: use_rms_norm (a norm inside each BitLinear) is not supported");
        c->ternary = true;
        c->scale_multiplies = linear_class && strcmp(linear_class, "autobitlinear") == 0;
    } else if (q && q->type != OB_JSON_NULL) {
        return ob_fail(OB_ERR_FORMAT, "config.json: quantization_config is not an object");
    }

    const int64_t big = INT32_MAX;
    ob_status st;
    c->heads_kv = c->head_dim = c->bos = c->eos = c->eot = -1;
    c->ctx = 2048;
    if ((st = cfg_int(root, "vocab_size", 1, big, true, &c->vocab)) ||
        (st = cfg_int(root, "hidden_size", 1, big, true, &c->embd)) ||
        (st = cfg_int(root, "num_hidden_layers", 1, 65536, true, &c->layers)) ||
        (st = cfg_int(root, "intermediate_size", 1, big, true, &c->ff)) ||
        (st = cfg_int(root, "num_attention_heads", 1, 65536, true, &c->heads)) ||
        (st = cfg_int(root, "num_key_value_heads", 1, 65536, false, &c->heads_kv)) ||
        (st = cfg_int(root, "head_dim", 1, 65536, false, &c->head_dim)) ||
        (st = cfg_int(root, "max_position_embeddings", 1, big, false, &c->ctx)))
        return st;
    if (c->heads_kv < 0) c->heads_kv = c->heads;
    if (c->heads % c->heads_kv)
        return ob_fail(OB_ERR_FORMAT, "config.json: %lld heads are not a multiple of %lld KV heads",
                       (long long)c->heads, (long long)c->heads_kv);
    if (c->head_dim < 0) {
        if (c->embd % c->heads)
            return ob_fail(OB_ERR_FORMAT, "config.json: hidden_size is not a multiple of num_attention_heads");
        c->head_dim = c->embd / c->heads;
    }

    /* rope_theta at the top level (older) or in rope_parameters (transformers 5). */
    const ob_json *rp = ob_json_get(root, "rope_parameters");
    c->rope_base = 10000.0;
    c->eps = 1e-6; /* LlamaConfig's default */
    if ((st = cfg_pos(ob_json_get(rp, "rope_theta"), "rope_parameters.rope_theta", &c->rope_base)) ||
        (st = cfg_pos(ob_json_get(root, "rope_theta"), "rope_theta", &c->rope_base)) ||
        (st = cfg_pos(ob_json_get(root, "rms_norm_eps"), "rms_norm_eps", &c->eps)))
        return st;
    const ob_json *scaling = ob_json_get(root, "rope_scaling");
    const char *rope_kind = ob_json_get_str(rp, "rope_type");
    if (!rope_kind) rope_kind = ob_json_get_str(scaling, "rope_type");
    if (!rope_kind) rope_kind = ob_json_get_str(scaling, "type");
    if (rope_kind && strcmp(rope_kind, "default") != 0)
        ob_log(OB_LOG_WARN, "config.json: rope scaling '%.40s' is ignored (plain RoPE is used)", rope_kind);

    const char *act = ob_json_get_str(root, "hidden_act");
    bool bitnet_type = model_type && strcmp(model_type, "bitnet") == 0;
    if (!act) c->act = bitnet_type ? "relu2" : "silu";
    else if (strcmp(act, "relu2") == 0) c->act = "relu2";
    else if (strcmp(act, "silu") == 0 || strcmp(act, "swish") == 0) c->act = "silu";
    else return ob_fail(OB_ERR_UNSUPPORTED, "config.json: unsupported hidden_act '%.40s'", act);

    const ob_json *tie = ob_json_get(root, "tie_word_embeddings");
    c->tied = tie && tie->type == OB_JSON_BOOL ? tie->boolean : c->bitnet;
    /* eos may be a list (LLaMA-3 instruct: [128001, 128008, 128009]): the first
     * is the end-of-sequence id and the last, when different, the end of turn. */
    if ((st = cfg_ids(root, "bos_token_id", &c->bos, NULL)) || (st = cfg_ids(root, "eos_token_id", &c->eos, &c->eot)))
        return st;
    if (c->eot == c->eos) c->eot = -1;
    return OB_OK;
}

/* ---- tensors ------------------------------------------------------------- */

typedef struct hf_import {
    const hf_config *cfg;
    ob_safetensors *files;
    size_t n_files;
    uint8_t **used; /* per file, per tensor */
    ob_model_file *out;
    ob_progress progress;
} hf_import;

static const ob_st_tensor *find(hf_import *h, const char *name) {
    for (size_t i = 0; i < h->n_files; i++) {
        const ob_st_tensor *t = ob_safetensors_find(&h->files[i], name);
        if (t) {
            h->used[i][t - h->files[i].tensors] = 1;
            ob_progress_add(&h->progress, t->nbytes);
            return t;
        }
    }
    return NULL;
}

static bool is_float(ob_st_dtype d) { return d == OB_ST_F32 || d == OB_ST_F16 || d == OB_ST_BF16; }

/* Element i of an F32/F16/BF16 tensor. */
static float float_at(const ob_st_tensor *t, uint64_t i) {
    switch (t->dtype) {
    case OB_ST_F32: return ob_rd_f32(t->data + 4 * i);
    case OB_ST_F16: return ob_f16_to_f32(ob_rd_u16(t->data + 2 * i));
    default: return ob_bf16_to_f32(ob_rd_u16(t->data + 2 * i));
    }
}

static ob_status check_shape(const ob_st_tensor *t, int n_dims, int64_t d0, int64_t d1) {
    if (!is_float(t->dtype) && t->dtype != OB_ST_U8)
        return ob_fail(OB_ERR_UNSUPPORTED, "%s: dtype %s is not supported (U8, BF16, F16, F32 are)", t->name,
                       ob_st_dtype_name(t->dtype));
    if (t->n_dims != n_dims || t->shape[0] != d0 || (n_dims == 2 && t->shape[1] != d1)) {
        if (n_dims == 1)
            return ob_fail(OB_ERR_FORMAT, "%s: shape must be [%lld]", t->name, (long long)d0);
        return ob_fail(OB_ERR_FORMAT, "%s: shape must be [%lld, %lld]", t->name, (long long)d0, (long long)d1);
    }
    return OB_OK;
}

static ob_status require(hf_import *h, const char *name, const ob_st_tensor **t) {
    *t = find(h, name);
    return *t ? OB_OK : ob_fail(OB_ERR_FORMAT, "tensor %s is missing", name);
}

/* A norm weight [n] -> F32. */
static ob_status add_norm(hf_import *h, const ob_st_tensor *t, const char *name, int64_t n) {
    ob_status st = check_shape(t, 1, n, 0);
    if (st) return st;
    if (!is_float(t->dtype)) return ob_fail(OB_ERR_UNSUPPORTED, "%s: a norm must be a float tensor", t->name);
    float *dst;
    if ((st = ob_model_file_new_tensor(h->out, name, OB_TYPE_F32, 1, &n, (void **)&dst))) return st;
    for (int64_t i = 0; i < n; i++) dst[i] = float_at(t, (uint64_t)i);
    return OB_OK;
}

/* A float matrix [rows, cols] kept in its dtype as ne = {cols, rows}. */
static ob_status add_float(hf_import *h, const ob_st_tensor *t, const char *name, int64_t rows, int64_t cols) {
    ob_status st = check_shape(t, 2, rows, cols);
    if (st) return st;
    if (!is_float(t->dtype)) return ob_fail(OB_ERR_UNSUPPORTED, "%s: expected a float tensor, not %s", t->name,
                                            ob_st_dtype_name(t->dtype));
    ob_type type = t->dtype == OB_ST_F32 ? OB_TYPE_F32 : t->dtype == OB_ST_F16 ? OB_TYPE_F16 : OB_TYPE_BF16;
    int64_t ne[2] = { cols, rows };
    void *dst;
    if ((st = ob_model_file_new_tensor(h->out, name, type, 2, ne, &dst))) return st;
    memcpy(dst, t->data, (size_t)t->nbytes);
    return OB_OK;
}

/* A linear HF [out, in] -> canonical `name` ne = {in, out}. base: the HF
 * name without ".weight". */
static ob_status add_linear(hf_import *h, const char *base, const char *name, int64_t in, int64_t out) {
    char key[OB_MAX_NAME * 2];
    const ob_st_tensor *w, *ws;
    snprintf(key, sizeof key, "%s.weight", base);
    ob_status st = require(h, key, &w);
    if (st) return st;
    snprintf(key, sizeof key, "%s.weight_scale", base);
    ws = find(h, key);
    if (!h->cfg->ternary) return add_float(h, w, name, out, in);

    int64_t packed_rows = (out + 3) / 4;
    bool packed = w->dtype == OB_ST_U8;
    if ((st = check_shape(w, 2, packed ? packed_rows : out, in))) return st;
    int64_t ne[2] = { in, out };
    uint8_t *dst;
    if ((st = ob_model_file_new_tensor(h->out, name, OB_TYPE_T2, 2, ne, (void **)&dst))) return st;
    size_t row_bytes = ob_type_row_bytes(OB_TYPE_T2, in);
    uint8_t *codes = malloc((size_t)in);
    if (!codes) return ob_fail(OB_ERR_NOMEM, "out of memory");
    float beta;
    if (packed) {
        if (!ws) {
            st = ob_fail(OB_ERR_FORMAT, "%s is packed but %s is missing", w->name, key);
            goto done;
        }
        if (!is_float(ws->dtype) || ws->numel != 1) {
            st = ob_fail(OB_ERR_FORMAT, "%s: expected one float value", ws->name);
            goto done;
        }
        float s = float_at(ws, 0);
        beta = h->cfg->scale_multiplies ? s : 1.0f / s;
        if ((st = ob_check_scale(beta, ws->name))) goto done;
        for (int64_t o = 0; o < out; o++) {
            const uint8_t *src = w->data + (size_t)(o % packed_rows) * (size_t)in;
            int shift = 2 * (int)(o / packed_rows);
            for (int64_t c = 0; c < in; c++) {
                codes[c] = (src[c] >> shift) & 3;
                if (codes[c] == 3) {
                    st = ob_fail(OB_ERR_FORMAT, "%s: invalid ternary code 3 (row %lld, column %lld)", w->name,
                                 (long long)o, (long long)c);
                    goto done;
                }
            }
            ob_t2_pack_row(codes, in, dst + (size_t)o * row_bytes);
        }
    } else {
        double sum = 0;
        for (uint64_t i = 0; i < w->numel; i++) {
            float x = float_at(w, i);
            if (!isfinite(x)) {
                st = ob_fail(OB_ERR_FORMAT, "%s: weight %llu is not finite", w->name, (unsigned long long)i);
                goto done;
            }
            sum += fabsf(x);
        }
        beta = OB_MAX((float)(sum / (double)w->numel), 1e-5f);
        float inv = 1.0f / beta;
        for (int64_t o = 0; o < out; o++) {
            for (int64_t c = 0; c < in; c++) {
                float t = rintf(float_at(w, (uint64_t)(o * in + c)) * inv); /* rint: half to even */
                codes[c] = (uint8_t)(OB_MAX(-1.0f, OB_MIN(1.0f, t)) + 1.0f);
            }
            ob_t2_pack_row(codes, in, dst + (size_t)o * row_bytes);
        }
    }
    st = ob_add_scale(h->out, name, &beta, 1);
done:
    free(codes);
    return st;
}

typedef enum { DIM_EMBD, DIM_Q, DIM_KV, DIM_FF } dim_kind;

/* Per layer: HF suffix -> canonical suffix. Norms have only `in`. */
static const struct {
    const char *hf, *ob;
    bool linear, sub_norm;
    dim_kind in, out;
} layer_tensors[] = {
    { "input_layernorm", "attn_norm", false, false, DIM_EMBD, 0 },
    { "self_attn.q_proj", "attn_q", true, false, DIM_EMBD, DIM_Q },
    { "self_attn.k_proj", "attn_k", true, false, DIM_EMBD, DIM_KV },
    { "self_attn.v_proj", "attn_v", true, false, DIM_EMBD, DIM_KV },
    { "self_attn.attn_sub_norm", "attn_sub_norm", false, true, DIM_Q, 0 },
    { "self_attn.o_proj", "attn_output", true, false, DIM_Q, DIM_EMBD },
    { "post_attention_layernorm", "ffn_norm", false, false, DIM_EMBD, 0 },
    { "mlp.gate_proj", "ffn_gate", true, false, DIM_EMBD, DIM_FF },
    { "mlp.up_proj", "ffn_up", true, false, DIM_EMBD, DIM_FF },
    { "mlp.ffn_sub_norm", "ffn_sub_norm", false, true, DIM_FF, 0 },
    { "mlp.down_proj", "ffn_down", true, false, DIM_FF, DIM_EMBD },
};
/* 1bitLLM's spellings of the two sub-norms. */
static const char *const sub_norm_alias[][2] = {
    { "self_attn.attn_sub_norm", "self_attn.inner_attn_ln" },
    { "mlp.ffn_sub_norm", "mlp.ffn_layernorm" },
};

static int64_t dim(const hf_config *c, dim_kind k) {
    switch (k) {
    case DIM_EMBD: return c->embd;
    case DIM_Q: return c->heads * c->head_dim;
    case DIM_KV: return c->heads_kv * c->head_dim;
    default: return c->ff;
    }
}

static const ob_st_tensor *find_sub_norm(hf_import *h, int layer, const char *hf) {
    char key[OB_MAX_NAME * 2];
    snprintf(key, sizeof key, "model.layers.%d.%s.weight", layer, hf);
    const ob_st_tensor *t = find(h, key);
    for (size_t a = 0; !t && a < OB_ARRAY_LEN(sub_norm_alias); a++)
        if (strcmp(sub_norm_alias[a][0], hf) == 0) {
            snprintf(key, sizeof key, "model.layers.%d.%s.weight", layer, sub_norm_alias[a][1]);
            t = find(h, key);
        }
    return t;
}

static ob_status import_tensors(hf_import *h, bool *sub_norms) {
    const hf_config *c = h->cfg;
    const ob_st_tensor *t;
    ob_status st;
    if ((st = require(h, "model.embed_tokens.weight", &t)) ||
        (st = add_float(h, t, "token_embd.weight", c->vocab, c->embd)) ||
        (st = require(h, "model.norm.weight", &t)) || (st = add_norm(h, t, "output_norm.weight", c->embd)))
        return st;
    const ob_st_tensor *head = find(h, "lm_head.weight");
    if (!c->tied && !head) return ob_fail(OB_ERR_FORMAT, "lm_head.weight is missing and embeddings are not tied");
    if (!c->tied && (st = add_float(h, head, "output.weight", c->vocab, c->embd))) return st;

    *sub_norms = false;
    for (int l = 0; l < (int)c->layers; l++) {
        for (size_t i = 0; i < OB_ARRAY_LEN(layer_tensors); i++) {
            char hf[OB_MAX_NAME], name[OB_MAX_NAME];
            snprintf(hf, sizeof hf, "model.layers.%d.%s", l, layer_tensors[i].hf);
            snprintf(name, sizeof name, "blk.%d.%s.weight", l, layer_tensors[i].ob);
            int64_t in = dim(c, layer_tensors[i].in);
            if (layer_tensors[i].linear) {
                st = add_linear(h, hf, name, in, dim(c, layer_tensors[i].out));
            } else if (layer_tensors[i].sub_norm) {
                /* Present in every layer or in none: layer 0 decides. */
                t = find_sub_norm(h, l, layer_tensors[i].hf);
                if (l == 0 && t) *sub_norms = true;
                if (!t && *sub_norms) st = ob_fail(OB_ERR_FORMAT, "tensor %s.weight is missing", hf);
                else if (t) st = add_norm(h, t, name, in);
            } else {
                char key[OB_MAX_NAME + 8];
                snprintf(key, sizeof key, "%s.weight", hf);
                if (!(st = require(h, key, &t))) st = add_norm(h, t, name, in);
            }
            if (st) return st;
        }
    }
    /* Leftovers are reported, not fatal (e.g. rotary_emb.inv_freq of old checkpoints). */
    size_t unused = 0;
    const char *example = NULL;
    for (size_t f = 0; f < h->n_files; f++)
        for (size_t i = 0; i < h->files[f].n_tensors; i++)
            if (!h->used[f][i] && !(c->tied && strcmp(h->files[f].tensors[i].name, "lm_head.weight") == 0)) {
                unused++;
                if (!example) example = h->files[f].tensors[i].name;
            }
    if (unused) ob_log(OB_LOG_WARN, "%zu tensor(s) of the checkpoint are not used, e.g. %s", unused, example);
    return OB_OK;
}

static ob_status set_meta(const hf_config *c, bool sub_norms, ob_meta *m) {
    ob_status st;
    if ((st = ob_meta_set_str(m, OB_KEY_ARCH, c->bitnet ? "bitnet" : "llama")) ||
        (st = ob_meta_set_int(m, OB_KEY_VOCAB, c->vocab)) || (st = ob_meta_set_int(m, OB_KEY_CTX, c->ctx)) ||
        (st = ob_meta_set_int(m, OB_KEY_EMBD, c->embd)) || (st = ob_meta_set_int(m, OB_KEY_LAYERS, c->layers)) ||
        (st = ob_meta_set_int(m, OB_KEY_FF, c->ff)) || (st = ob_meta_set_int(m, OB_KEY_HEADS, c->heads)) ||
        (st = ob_meta_set_int(m, OB_KEY_HEADS_KV, c->heads_kv)) ||
        (st = ob_meta_set_int(m, OB_KEY_HEAD_DIM, c->head_dim)) ||
        (st = ob_meta_set_int(m, OB_KEY_ROPE_DIM, c->head_dim)) ||
        (st = ob_meta_set_float(m, OB_KEY_ROPE_BASE, c->rope_base)) ||
        /* HF q/k rows are in rotate-half order for both architectures. */
        (st = ob_meta_set_str(m, OB_KEY_ROPE_TYPE, "neox")) || (st = ob_meta_set_float(m, OB_KEY_NORM_EPS, c->eps)) ||
        (st = ob_meta_set_str(m, OB_KEY_ACT, c->act)) || (st = ob_meta_set_bool(m, OB_KEY_SUBNORM, sub_norms)) ||
        (st = ob_meta_set_bool(m, OB_KEY_TIED, c->tied)))
        return st;
    /* config.json's special ids win over the tokenizer's (they are what generate() uses). */
    if (c->bos >= 0 && (st = ob_meta_set_int(m, OB_KEY_BOS, c->bos))) return st;
    if (c->eos >= 0 && (st = ob_meta_set_int(m, OB_KEY_EOS, c->eos))) return st;
    if (c->eot >= 0 && (st = ob_meta_set_int(m, OB_KEY_EOT, c->eot))) return st;
    return OB_OK;
}

/* Imports from already opened safetensors files. */
static ob_status import_files(const ob_json *config, ob_safetensors *files, size_t n_files, const char *name,
                              ob_model_file *out) {
    hf_config cfg;
    ob_status st = read_config(config, &cfg);
    if (st) return st;
    hf_import h = { .cfg = &cfg, .files = files, .n_files = n_files, .out = out };
    h.used = calloc(n_files + 1, sizeof *h.used);
    uint64_t total = 0;
    for (size_t f = 0; h.used && f < n_files; f++) {
        if (!(h.used[f] = calloc(files[f].n_tensors + 1, 1))) st = ob_fail(OB_ERR_NOMEM, "out of memory");
        for (size_t i = 0; i < files[f].n_tensors; i++) total += files[f].tensors[i].nbytes;
    }
    if (!h.used) st = ob_fail(OB_ERR_NOMEM, "out of memory");
    bool sub_norms = false;
    ob_progress_begin(&h.progress, "converting", total);
    if (!st) st = import_tensors(&h, &sub_norms);
    ob_progress_end(&h.progress);
    if (!st) st = set_meta(&cfg, sub_norms, &out->meta);
    if (!st) {
        char src[512];
        snprintf(src, sizeof src, "hf:%s", name);
        st = ob_meta_set_str(&out->meta, OB_KEY_SOURCE, src);
    }
    for (size_t f = 0; h.used && f < n_files; f++) free(h.used[f]);
    free(h.used);
    return st;
}

ob_status ob_hf_import_mem(const char *config_json, size_t config_len, const uint8_t *safetensors, size_t size,
                           const char *name, ob_model_file *out) {
    memset(out, 0, sizeof *out);
    ob_json_doc config;
    ob_status st = ob_json_parse(config_json, config_len, &config);
    if (st) return ob_fail_prefix(st, "config.json: ");
    ob_safetensors file;
    if (!(st = ob_safetensors_parse(safetensors, size, "model.safetensors", &file))) {
        if (!(st = import_files(config.root, &file, 1, name ? name : "memory", out)) &&
            !ob_meta_find(&out->meta, OB_KEY_TOK_MODEL))
            st = ob_meta_set_str(&out->meta, OB_KEY_TOK_MODEL, "none");
        ob_safetensors_close(&file);
    }
    ob_json_free(&config);
    if (st) ob_model_file_close(out);
    return st;
}

/* ---- the directory ------------------------------------------------------- */

/* Opens the shards listed by model.safetensors.index.json ("weight_map":
 * tensor -> file), each once. */
static ob_status open_shards(const char *dir, const char *index_path, ob_safetensors **files, size_t *n_files) {
    char *text;
    size_t len;
    ob_status st = ob_read_file(index_path, &text, &len);
    if (st) return st;
    ob_json_doc doc;
    st = ob_json_parse(text, len, &doc);
    free(text);
    if (st) return ob_fail_prefix(st, "%s: ", index_path);
    const ob_json *map = ob_json_get(doc.root, "weight_map");
    if (!map || map->type != OB_JSON_OBJECT || !map->count) {
        ob_json_free(&doc);
        return ob_fail(OB_ERR_FORMAT, "%s: weight_map is missing or empty", index_path);
    }
    const char **names = calloc(map->count, sizeof *names);
    *files = calloc(map->count, sizeof **files);
    *n_files = 0;
    if (!names || !*files) st = ob_fail(OB_ERR_NOMEM, "out of memory");
    for (const ob_json *e = map->child; !st && e; e = e->next) {
        if (e->type != OB_JSON_STRING || !e->str_len || strchr(e->str, '/') || e->str[0] == '.' ||
            e->str_len != strlen(e->str)) {
            st = ob_fail(OB_ERR_FORMAT, "%s: %s: bad shard file name", index_path, e->key);
            break;
        }
        size_t k = 0;
        while (k < *n_files && strcmp(names[k], e->str) != 0) k++;
        if (k < *n_files) continue;
        char *path = ob_path_join(dir, e->str);
        if (!path) st = ob_fail(OB_ERR_NOMEM, "out of memory");
        else st = ob_safetensors_open(path, &(*files)[k]);
        free(path);
        if (!st) names[(*n_files)++] = e->str;
    }
    free(names);
    ob_json_free(&doc);
    return st;
}

/* tokenizer.json (when present) and the chat template of tokenizer_config.json. */
static ob_status import_tokenizer(const char *dir, ob_meta *m) {
    ob_status st = OB_OK;
    char *path = ob_path_join(dir, "tokenizer.json");
    if (!path) return ob_fail(OB_ERR_NOMEM, "out of memory");
    if (ob_file_exists(path)) {
        ob_tokenizer *tok;
        if (!(st = ob_tokenizer_from_file(path, &tok))) {
            st = ob_tokenizer_to_meta(tok, m);
            ob_tokenizer_free(tok);
        }
    }
    free(path);
    if (st) return st;
    if (!ob_meta_find(m, OB_KEY_TOK_MODEL) && (st = ob_meta_set_str(m, OB_KEY_TOK_MODEL, "none"))) return st;

    if (!(path = ob_path_join(dir, "tokenizer_config.json"))) return ob_fail(OB_ERR_NOMEM, "out of memory");
    char *text = NULL;
    size_t len;
    if (ob_file_exists(path) && !(st = ob_read_file(path, &text, &len))) {
        ob_json_doc doc;
        if (!(st = ob_json_parse(text, len, &doc))) {
            /* A string, or a list of {"name", "template"}: take "default" or the first. */
            const ob_json *tmpl = ob_json_get(doc.root, "chat_template"), *pick = NULL;
            if (tmpl && tmpl->type == OB_JSON_STRING) pick = tmpl;
            for (const ob_json *e = tmpl && tmpl->type == OB_JSON_ARRAY ? tmpl->child : NULL; e; e = e->next) {
                const ob_json *t = ob_json_get(e, "template");
                const char *n = ob_json_get_str(e, "name");
                if (t && t->type == OB_JSON_STRING && (!pick || (n && strcmp(n, "default") == 0))) pick = t;
            }
            if (pick) st = ob_meta_set_strn(m, OB_KEY_CHAT_TEMPLATE, pick->str, pick->str_len);
            ob_json_free(&doc);
        } else {
            st = ob_fail_prefix(st, "%s: ", path);
        }
    }
    free(text);
    free(path);
    return st;
}

ob_status ob_hf_import(const char *dir, ob_model_file *out) {
    memset(out, 0, sizeof *out);
    char *config_path = ob_path_join(dir, "config.json");
    char *index_path = ob_path_join(dir, "model.safetensors.index.json");
    char *single_path = ob_path_join(dir, "model.safetensors");
    char *text = NULL;
    size_t len;
    ob_json_doc config = { 0 };
    ob_safetensors *files = NULL;
    size_t n_files = 0;
    ob_status st = OB_OK;
    if (!config_path || !index_path || !single_path) st = ob_fail(OB_ERR_NOMEM, "out of memory");
    else if (!ob_file_exists(config_path)) st = ob_fail(OB_ERR_IO, "%s: no config.json (not a Hugging Face model directory)", dir);
    else if (!(st = ob_read_file(config_path, &text, &len)) && (st = ob_json_parse(text, len, &config)))
        ob_fail_prefix(st, "%s: ", config_path);
    if (!st) {
        if (ob_file_exists(index_path)) {
            st = open_shards(dir, index_path, &files, &n_files);
        } else if (ob_file_exists(single_path)) {
            files = calloc(1, sizeof *files);
            if (!files) st = ob_fail(OB_ERR_NOMEM, "out of memory");
            else if (!(st = ob_safetensors_open(single_path, files))) n_files = 1;
        } else {
            st = ob_fail(OB_ERR_IO, "%s: no model.safetensors or model.safetensors.index.json", dir);
        }
    }
    if (!st) st = import_tokenizer(dir, &out->meta); /* before: config.json's ids win */
    if (!st) {
        /* The directory's own name, for provenance. */
        size_t n = strlen(dir);
        while (n > 1 && dir[n - 1] == '/') n--;
        size_t b = n;
        while (b > 0 && dir[b - 1] != '/') b--;
        char base[256];
        snprintf(base, sizeof base, "%.*s", (int)OB_MIN(n - b, sizeof base - 1), dir + b);
        st = import_files(config.root, files, n_files, base, out);
        if (st) ob_fail_prefix(st, "%s: ", dir);
    }
    for (size_t i = 0; i < n_files; i++) ob_safetensors_close(&files[i]);
    free(files);
    ob_json_free(&config);
    free(text);
    free(config_path);
    free(index_path);
    free(single_path);
    if (st) ob_model_file_close(out);
    return st;
}
