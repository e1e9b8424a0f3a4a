/* libFuzzer target: the GGUF importer over arbitrary bytes. Every input must
 * import or fail with a message; sanitizers catch the rest. */
#include "format/gguf.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ob_model_file mf;
    if (ob_gguf_import_mem(data, size, "fuzz.gguf", &mf) == OB_OK) ob_model_file_close(&mf);
    else if (!*ob_last_error()) abort(); /* a failure must say why */
    return 0;
}
