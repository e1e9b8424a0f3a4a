/* Placeholder until the importer lands. */
#include "format/model_file.h"

ob_status ob_h1b_open(const char *path, ob_model_file *out) {
    (void)out;
    return ob_fail(OB_ERR_UNSUPPORTED, "%s: reader not built yet", path);
}

ob_status ob_h1b_write(const ob_model_file *mf, const char *path) {
    (void)mf;
    return ob_fail(OB_ERR_UNSUPPORTED, "%s: writer not built yet", path);
}

ob_status ob_h1b_verify(const ob_model_file *mf) {
    (void)mf;
    return OB_OK;
}
