/* The table of compiled backends. */
#include "backend/backend.h"

#include <string.h>

static const ob_backend_ops *const backends[] = {
    &ob_backend_cpu,
#ifdef OB_HAVE_CUDA
    &ob_backend_cuda,
#endif
};

const ob_backend_ops *ob_backend_find(const char *name) {
    for (size_t i = 0; i < OB_ARRAY_LEN(backends); i++)
        if (!strcmp(backends[i]->name, name)) return backends[i];
    return NULL;
}

ob_status ob_backend_create(const char *name, const ob_model *m, const ob_backend_params *p, ob_backend **out) {
    *out = NULL;
    const ob_backend_ops *ops = ob_backend_find(name ? name : "cpu");
    if (!ops)
        return ob_fail(OB_ERR_UNSUPPORTED, "backend '%s' is not available in this build%s", name,
                       !strcmp(name, "cuda") ? " (built without nvcc)" : "");
    return ops->create(m, p, out);
}

void ob_backend_destroy(ob_backend *b) {
    if (b) b->ops->destroy(b);
}
