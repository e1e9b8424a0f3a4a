/* Placeholder until the importer lands. */
#include "format/model_file.h"

ob_status ob_hf_import(const char *path, ob_model_file *out) {
    (void)out;
    return ob_fail(OB_ERR_UNSUPPORTED, "%s: reader not built yet", path);
}
