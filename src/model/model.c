/* Binding a model file to the architecture: hyperparameters from canonical
 * metadata, every tensor looked up by name and its shape checked. */
#include "model/model.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DIM_MAX (1 << 20) /* no real dimension is above a million */

ob_status ob_hparams_from_meta(const ob_meta *meta, ob_hparams *hp) {
    memset(hp, 0, sizeof *hp);
    const char *arch = ob_meta_str(meta, OB_KEY_ARCH, NULL);
    if (!arch) return ob_fail(OB_ERR_FORMAT, "model has no architecture (%s)", OB_KEY_ARCH);
    if (!strcmp(arch, "bitnet")) hp->arch = OB_ARCH_BITNET;
    else if (!strcmp(arch, "llama")) hp->arch = OB_ARCH_LLAMA;
    else return ob_fail(OB_ERR_UNSUPPORTED, "architecture '%s' is not supported (bitnet, llama)", arch);

    struct { const char *key; int *dst; int64_t lo, hi; bool required; } dims[] = {
        { OB_KEY_VOCAB, &hp->n_vocab, 1, 1 << 22, true },
        { OB_KEY_EMBD, &hp->n_embd, 1, DIM_MAX, true },
        { OB_KEY_LAYERS, &hp->n_layer, 1, 4096, true },
        { OB_KEY_FF, &hp->n_ff, 1, DIM_MAX, true },
        { OB_KEY_HEADS, &hp->n_head, 1, 4096, true },
        { OB_KEY_HEADS_KV, &hp->n_head_kv, 1, 4096, false },
        { OB_KEY_HEAD_DIM, &hp->head_dim, 1, 4096, false },
        { OB_KEY_ROPE_DIM, &hp->rope_dim, 0, 4096, false },
        { OB_KEY_CTX, &hp->n_ctx_train, 1, 1 << 24, false },
    };
    for (size_t i = 0; i < OB_ARRAY_LEN(dims); i++) {
        const ob_meta_entry *e = ob_meta_find(meta, dims[i].key);
        if (!e) {
            if (dims[i].required) return ob_fail(OB_ERR_FORMAT, "model metadata lacks %s", dims[i].key);
            continue;
        }
        int64_t v = ob_meta_int(meta, dims[i].key, -1);
        if ((e->type != OB_META_INT && e->type != OB_META_FLOAT) || v < dims[i].lo || v > dims[i].hi)
            return ob_fail(OB_ERR_FORMAT, "model metadata %s = %lld is out of range", dims[i].key, (long long)v);
        *dims[i].dst = (int)v;
    }
    if (!hp->n_head_kv) hp->n_head_kv = hp->n_head;
    if (!hp->head_dim) hp->head_dim = hp->n_embd / hp->n_head;
    if (!hp->rope_dim) hp->rope_dim = hp->head_dim;
    if (!hp->n_ctx_train) hp->n_ctx_train = 2048;
    if (hp->n_head % hp->n_head_kv)
        return ob_fail(OB_ERR_FORMAT, "%d attention heads are not a multiple of %d KV heads", hp->n_head, hp->n_head_kv);
    if (hp->rope_dim > hp->head_dim || hp->rope_dim % 2)
        return ob_fail(OB_ERR_FORMAT, "rope dimension %d does not fit head dimension %d", hp->rope_dim, hp->head_dim);
    if ((int64_t)hp->n_head * hp->head_dim > DIM_MAX) return ob_fail(OB_ERR_FORMAT, "attention width too large");

    bool bitnet = hp->arch == OB_ARCH_BITNET;
    hp->rope_base = (float)ob_meta_float(meta, OB_KEY_ROPE_BASE, bitnet ? 500000.0 : 10000.0);
    hp->norm_eps = (float)ob_meta_float(meta, OB_KEY_NORM_EPS, 1e-5);
    if (!(hp->rope_base > 0) || !isfinite(hp->rope_base)) return ob_fail(OB_ERR_FORMAT, "bad rope frequency base");
    if (!(hp->norm_eps > 0) || hp->norm_eps > 1) return ob_fail(OB_ERR_FORMAT, "bad norm epsilon");
    const char *rope = ob_meta_str(meta, OB_KEY_ROPE_TYPE, bitnet ? "neox" : "norm");
    if (!strcmp(rope, "neox")) hp->rope_neox = true;
    else if (strcmp(rope, "norm")) return ob_fail(OB_ERR_UNSUPPORTED, "rope type '%s' (neox, norm)", rope);
    const char *act = ob_meta_str(meta, OB_KEY_ACT, bitnet ? "relu2" : "silu");
    if (!strcmp(act, "relu2")) hp->act_relu2 = true;
    else if (strcmp(act, "silu")) return ob_fail(OB_ERR_UNSUPPORTED, "activation '%s' (relu2, silu)", act);
    hp->sub_norms = ob_meta_bool(meta, OB_KEY_SUBNORM, bitnet);
    hp->tied = ob_meta_bool(meta, OB_KEY_TIED, false);
    return OB_OK;
}

/* Looks up a tensor and checks its shape; ne1 = 0 means 1-D. */
static ob_status need(const ob_model_file *mf, const char *name, int64_t ne0, int64_t ne1, const ob_tensor **out) {
    const ob_tensor *t = ob_model_file_find(mf, name);
    if (!t) return ob_fail(OB_ERR_FORMAT, "tensor %s is missing", name);
    int64_t want1 = ne1 ? ne1 : 1;
    if (t->ne[0] != ne0 || t->ne[1] != want1 || t->ne[2] != 1 || t->ne[3] != 1)
        return ob_fail(OB_ERR_FORMAT, "tensor %s has shape [%lld, %lld], expected [%lld, %lld]", name,
                       (long long)t->ne[0], (long long)t->ne[1], (long long)ne0, (long long)want1);
    *out = t;
    return OB_OK;
}

static ob_status need_f32_vec(const ob_model_file *mf, const char *name, int64_t n, const float **out) {
    const ob_tensor *t;
    ob_status st = need(mf, name, n, 0, &t);
    if (st) return st;
    if (t->type != OB_TYPE_F32) return ob_fail(OB_ERR_FORMAT, "tensor %s must be f32, is %s", name, ob_type_name(t->type));
    const float *v = t->data;
    for (int64_t i = 0; i < n; i++)
        if (!isfinite(v[i])) return ob_fail(OB_ERR_FORMAT, "tensor %s has a non-finite value at %lld", name, (long long)i);
    *out = v;
    return OB_OK;
}

static bool float_type(ob_type t) { return t == OB_TYPE_F32 || t == OB_TYPE_F16 || t == OB_TYPE_BF16; }

static ob_status bind_linear(const ob_model_file *mf, const char *prefix, int64_t in, int64_t out, ob_linear *l) {
    char name[OB_MAX_NAME];
    snprintf(name, sizeof name, "%s.weight", prefix);
    ob_status st = need(mf, name, in, out, &l->w);
    if (st) return st;
    l->in = in;
    l->out = out;
    if (l->w->type == OB_TYPE_T2) {
        snprintf(name, sizeof name, "%s.scale", prefix);
        const ob_tensor *s = ob_model_file_find(mf, name);
        if (!s) return ob_fail(OB_ERR_FORMAT, "ternary tensor %s.weight has no scale tensor %s", prefix, name);
        if (s->type != OB_TYPE_F32 || s->n_dims != 1 || (s->ne[0] != 1 && s->ne[0] != out))
            return ob_fail(OB_ERR_FORMAT, "scale tensor %s must be f32 [1] or [%lld]", name, (long long)out);
        l->scale = s->data;
        l->n_scale = s->ne[0];
        for (int64_t i = 0; i < l->n_scale; i++)
            if (!isfinite(l->scale[i]) || l->scale[i] < 0)
                return ob_fail(OB_ERR_FORMAT, "scale tensor %s has an invalid value (%g)", name, (double)l->scale[i]);
    } else if (!float_type(l->w->type)) {
        return ob_fail(OB_ERR_UNSUPPORTED, "tensor %s.weight has type %s; linears must be t2, f32, f16 or bf16",
                       prefix, ob_type_name(l->w->type));
    }
    return OB_OK;
}

/* Binds every tensor pointer of m from m->file (again after tensors are added:
 * adding may move the tensor table). */
static ob_status bind(ob_model *m, bool load_tokenizer) {
    const ob_model_file *mf = &m->file;
    ob_hparams *hp = &m->hp;
    ob_status st = ob_hparams_from_meta(&mf->meta, hp);
    if (st) return st;
    int64_t E = hp->n_embd, F = hp->n_ff, V = hp->n_vocab;
    int64_t Q = (int64_t)hp->n_head * hp->head_dim, KV = (int64_t)hp->n_head_kv * hp->head_dim;

    m->tok_embd_scale = NULL;
    if ((st = need(mf, "token_embd.weight", E, V, &m->tok_embd))) return st;
    ob_type et = m->tok_embd->type;
    if (!float_type(et) && et != OB_TYPE_Q8_0 && et != OB_TYPE_I8)
        return ob_fail(OB_ERR_UNSUPPORTED, "token embedding type %s", ob_type_name(et));
    if ((st = need_f32_vec(mf, "output_norm.weight", E, &m->output_norm))) return st;

    const ob_tensor *out = ob_model_file_find(mf, "output.weight");
    hp->tied = out == NULL;
    if ((st = need(mf, out ? "output.weight" : "token_embd.weight", E, V, &m->output.w))) return st;
    m->output.in = E;
    m->output.out = V;
    ob_type ht = m->output.w->type;
    if (ht == OB_TYPE_I8) {
        const char *sname = out ? "output.scale" : "token_embd.scale";
        const ob_tensor *s = ob_model_file_find(mf, sname);
        if (!s || s->type != OB_TYPE_F32 || s->ne[0] != V || s->n_dims != 1)
            return ob_fail(OB_ERR_FORMAT, "int8 lm_head needs an f32 [%lld] tensor %s", (long long)V, sname);
        m->output_scale = s->data;
    } else if (!float_type(ht) && ht != OB_TYPE_Q8_0) {
        return ob_fail(OB_ERR_UNSUPPORTED, "lm_head type %s", ob_type_name(ht));
    }
    if (et == OB_TYPE_I8) {
        const ob_tensor *s = ob_model_file_find(mf, "token_embd.scale");
        if (!s || s->type != OB_TYPE_F32 || s->ne[0] != V)
            return ob_fail(OB_ERR_FORMAT, "int8 token embedding needs an f32 [%lld] token_embd.scale", (long long)V);
        m->tok_embd_scale = s->data;
    }

    free(m->layers);
    m->layers = calloc((size_t)hp->n_layer, sizeof *m->layers);
    if (!m->layers) return ob_fail(OB_ERR_NOMEM, "out of memory");
    for (int l = 0; l < hp->n_layer; l++) {
        ob_layer *L = &m->layers[l];
        char name[OB_MAX_NAME], pre[64];
        snprintf(pre, sizeof pre, "blk.%d.", l);
#define VEC(field, nm, n)                                                  \
    snprintf(name, sizeof name, "%s" nm ".weight", pre);                   \
    if ((st = need_f32_vec(mf, name, n, &L->field))) return st;
#define LIN(field, nm, in, outd)                                           \
    snprintf(name, sizeof name, "%s" nm, pre);                             \
    if ((st = bind_linear(mf, name, in, outd, &L->field))) return st;
        VEC(attn_norm, "attn_norm", E)
        VEC(ffn_norm, "ffn_norm", E)
        if (hp->sub_norms) {
            VEC(attn_sub_norm, "attn_sub_norm", Q)
            VEC(ffn_sub_norm, "ffn_sub_norm", F)
        }
        LIN(q, "attn_q", E, Q)
        LIN(k, "attn_k", E, KV)
        LIN(v, "attn_v", E, KV)
        LIN(o, "attn_output", Q, E)
        LIN(gate, "ffn_gate", E, F)
        LIN(up, "ffn_up", E, F)
        LIN(down, "ffn_down", F, E)
#undef VEC
#undef LIN
    }

    if (!load_tokenizer) return OB_OK;
    /* The tokenizer is optional: models are usable with ids alone. */
    const char *tm = ob_meta_str(&mf->meta, OB_KEY_TOK_MODEL, "none");
    if (strcmp(tm, "none") != 0) {
        if (ob_tokenizer_from_meta(&mf->meta, &m->tok) != OB_OK) {
            ob_log(OB_LOG_WARN, "tokenizer not loaded (%s); token ids still work", ob_last_error());
            m->tok = NULL;
        }
    }
    const char *tmpl = ob_chat_template_for(&mf->meta);
    m->chat_template = ob_strdup(tmpl ? tmpl : "plain");
    if (!m->chat_template) return ob_fail(OB_ERR_NOMEM, "out of memory");
    return OB_OK;
}

ob_status ob_model_from_file(ob_model_file *mf, ob_model **out) {
    *out = NULL;
    ob_model *m = calloc(1, sizeof *m);
    if (!m) {
        ob_model_file_close(mf);
        return ob_fail(OB_ERR_NOMEM, "out of memory");
    }
    m->file = *mf;
    memset(mf, 0, sizeof *mf);
    ob_status st = bind(m, true);
    if (st) {
        ob_fail_prefix(st, "%s", m->file.path ? m->file.path : "model");
        ob_model_free(m);
        return st;
    }
    *out = m;
    return OB_OK;
}

ob_status ob_model_load(const char *path, ob_model **out) {
    ob_model_file mf;
    ob_status st = ob_model_file_open(path, &mf);
    if (st) return st;
    return ob_model_from_file(&mf, out);
}

void ob_model_free(ob_model *m) {
    if (!m) return;
    ob_tokenizer_free(m->tok);
    free(m->layers);
    free(m->chat_template);
    ob_model_file_close(&m->file);
    free(m);
}

static uint64_t linear_bytes(const ob_linear *l) {
    return l->w ? l->w->nbytes + (uint64_t)l->n_scale * 4 : 0;
}

uint64_t ob_model_weight_bytes(const ob_model *m) {
    const ob_hparams *hp = &m->hp;
    uint64_t b = linear_bytes(&m->output) + (uint64_t)hp->n_embd * 4;
    b += m->tok_embd->nbytes / (uint64_t)hp->n_vocab; /* one embedding row */
    for (int l = 0; l < hp->n_layer; l++) {
        const ob_layer *L = &m->layers[l];
        const ob_linear *lin[] = { &L->q, &L->k, &L->v, &L->o, &L->gate, &L->up, &L->down };
        for (size_t i = 0; i < OB_ARRAY_LEN(lin); i++) b += linear_bytes(lin[i]);
        b += (uint64_t)(2 * hp->n_embd) * 4;
        if (hp->sub_norms) b += (uint64_t)(hp->n_head * hp->head_dim + hp->n_ff) * 4;
    }
    return b;
}

ob_status ob_model_quantize_head(ob_model *m) {
    const ob_linear *h = &m->output;
    if (h->w->type == OB_TYPE_I8) return OB_OK;
    int64_t V = h->out, E = h->in;
    int64_t ne[2] = { E, V }, ne_s[1] = { V };
    void *wq, *sc;
    ob_status st = ob_model_file_new_tensor(&m->file, "output.weight.i8", OB_TYPE_I8, 2, ne, &wq);
    if (st) return st;
    if ((st = ob_model_file_new_tensor(&m->file, "output.scale", OB_TYPE_F32, 1, ne_s, &sc))) return st;
    const ob_tensor *src = ob_model_file_find(&m->file, ob_model_file_find(&m->file, "output.weight")
                                                             ? "output.weight" : "token_embd.weight");
    float *row = malloc((size_t)E * sizeof *row);
    if (!row) return ob_fail(OB_ERR_NOMEM, "out of memory");
    for (int64_t r = 0; r < V; r++) {
        ob_tensor_row_f32(src, r, row);
        float mx = 0;
        for (int64_t c = 0; c < E; c++) mx = fmaxf(mx, fabsf(row[c]));
        float scale = mx > 0 ? mx / 127.0f : 1.0f;
        int8_t *q = (int8_t *)wq + r * E;
        for (int64_t c = 0; c < E; c++) q[c] = (int8_t)nearbyintf(row[c] / scale);
        ((float *)sc)[r] = scale;
    }
    free(row);
    /* The quantized head replaces output.weight (the embedding stays as it was). */
    for (size_t i = 0; i < m->file.n_tensors; i++) {
        ob_tensor *t = &m->file.tensors[i];
        if (!strcmp(t->name, "output.weight")) snprintf(t->name, sizeof t->name, "output.weight.f");
    }
    for (size_t i = 0; i < m->file.n_tensors; i++) {
        ob_tensor *t = &m->file.tensors[i];
        if (!strcmp(t->name, "output.weight.i8")) snprintf(t->name, sizeof t->name, "output.weight");
    }
    return bind(m, false);
}
