/* Chat templates: one table of the formats models were trained on.
 *
 * A template renders messages to text that is tokenized with parse_special
 * set, so "<|eot_id|>" in the rendered text becomes the control token. BOS is
 * not part of the text: callers add it when tokenizing (add_bos). */
#include "tokenizer/tokenizer.h"

#include <string.h>

typedef struct chat_template {
    const char *name;
    /* Each message renders as prefix(role) + content + suffix. */
    const char *system_prefix, *user_prefix, *assistant_prefix;
    const char *suffix;
    const char *generation;   /* appended when add_generation */
    bool role_header;         /* prefix is "<|start_header_id|>" role "<|end_header_id|>\n\n" */
    bool trim;                /* content is stripped of leading/trailing whitespace */
    const char *separator;    /* between messages (plain) */
} chat_template;

static const chat_template templates[] = {
    /* BitNet b1.58 2B-4T (microsoft/BitNet gpu/tokenizer.py ChatFormat): no
     * header tokens, "Role: " + content.strip() + "<|eot_id|>". */
    { "bitnet", "System: ", "User: ", "Assistant: ", "<|eot_id|>", "Assistant: ", false, true, "" },
    /* Meta LLaMA-3 instruct: header tokens around the role, content | trim. */
    { "llama3", NULL, NULL, NULL, "<|eot_id|>", "<|start_header_id|>assistant<|end_header_id|>\n\n", true, true, "" },
    /* Completion models: the contents as they are, one per line. */
    { "plain", "", "", "", "", "", false, false, "\n" },
};

static const chat_template *find_template(const char *name) {
    for (size_t i = 0; name && i < OB_ARRAY_LEN(templates); i++)
        if (!strcmp(templates[i].name, name)) return &templates[i];
    return NULL;
}

bool ob_chat_template_known(const char *name) { return find_template(name) != NULL; }

const char *ob_chat_template_for(const ob_meta *meta) {
    const char *src = ob_meta_str(meta, OB_KEY_CHAT_TEMPLATE, NULL);
    if (src) {
        const chat_template *t = find_template(src);
        if (t) return t->name;
        /* A Jinja template from the source model: recognise its format. */
        if (strstr(src, "<|start_header_id|>")) return "llama3";
        if (strstr(src, "Assistant: ") || strstr(src, "'User: '")) return "bitnet";
    }
    const char *arch = ob_meta_str(meta, OB_KEY_ARCH, "");
    if (!strcmp(arch, "bitnet")) return "bitnet";
    const ob_meta_entry *tokens = ob_meta_find(meta, OB_KEY_TOK_TOKENS);
    if (!strcmp(arch, "llama") && tokens && tokens->type == OB_META_STR_ARR) {
        for (uint64_t i = tokens->count; i-- > 0;) /* special tokens sit at the end */
            if (tokens->str_lens[i] == 10 && !memcmp(tokens->strs[i], "<|eot_id|>", 10)) return "llama3";
    }
    return "plain";
}

static bool is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }

ob_status ob_chat_render(const char *name, const ob_chat_msg *msgs, size_t n, bool add_generation, ob_buf *out) {
    const chat_template *t = find_template(name);
    if (!t) return ob_fail(OB_ERR_ARG, "unknown chat template '%s' (bitnet, llama3 or plain)", name ? name : "(null)");
    ob_status st = OB_OK;
    for (size_t i = 0; i < n && !st; i++) {
        const char *role = msgs[i].role, *c = msgs[i].content ? msgs[i].content : "";
        const char *prefix;
        if (!role) return ob_fail(OB_ERR_ARG, "chat message %zu has no role", i);
        if (!strcmp(role, "system")) prefix = t->system_prefix;
        else if (!strcmp(role, "user")) prefix = t->user_prefix;
        else if (!strcmp(role, "assistant")) prefix = t->assistant_prefix;
        else return ob_fail(OB_ERR_ARG, "chat message %zu: unknown role '%s' (system, user or assistant)", i, role);
        size_t len = strlen(c);
        if (t->trim) {
            while (len && is_space(*c)) { c++; len--; }
            while (len && is_space(c[len - 1])) len--;
        }
        if (i > 0) st = ob_buf_printf(out, "%s", t->separator);
        if (!st && t->role_header) st = ob_buf_printf(out, "<|start_header_id|>%s<|end_header_id|>\n\n", role);
        else if (!st) st = ob_buf_printf(out, "%s", prefix);
        if (!st) st = ob_buf_append(out, c, len);
        if (!st) st = ob_buf_printf(out, "%s", t->suffix);
    }
    if (!st && add_generation) st = ob_buf_printf(out, "%s", t->generation);
    return st;
}
