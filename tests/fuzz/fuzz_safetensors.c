/* libFuzzer target: the safetensors header reader and the Hugging Face
 * importer (config.json + one safetensors image).
 *
 * Input: u16 n (little-endian), then n bytes of config.json text, then the
 * safetensors bytes. Inputs shorter than 2 bytes go to the header reader only. */
#include "format/safetensors.h"

#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    ob_safetensors st;
    if (ob_safetensors_parse(data, size, "fuzz", &st) == OB_OK) {
        for (size_t i = 0; i < st.n_tensors; i++) /* touch every extent the reader vouched for */
            if (st.tensors[i].nbytes) (void)*(volatile const uint8_t *)(st.tensors[i].data + st.tensors[i].nbytes - 1);
        ob_safetensors_close(&st);
    }
    if (size < 2) return 0;
    size_t n = (size_t)(data[0] | data[1] << 8);
    if (n > size - 2) n = size - 2;
    ob_model_file mf;
    if (ob_hf_import_mem((const char *)data + 2, n, data + 2 + n, size - 2 - n, "fuzz", &mf) == OB_OK)
        ob_model_file_close(&mf);
    else if (!*ob_last_error())
        abort();
    return 0;
}
