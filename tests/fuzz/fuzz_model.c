/* libFuzzer target: a pp model file from untrusted bytes through the model
 * loader (config, quant states, nested absmax, shapes) and, when it loads,
 * one forward step. The bytes are handed over as a file via memfd. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#include "llama.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pp_backend *be;
    if (!be && pp_backend_cpu(&be, 1) != PP_OK) abort();
    int fd = memfd_create("model", 0);
    if (fd < 0 || write(fd, data, size) != (ssize_t)size) abort();
    char path[64];
    snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    pp_llama m;
    if (pp_llama_load(&m, path) == PP_OK) {
        const pp_config *c = &m.cfg;
        /* keep the work small: the fuzzer is after parsing bugs, not big models */
        if ((size_t)c->dim * c->vocab < (1u << 22) && (size_t)c->dim * c->hidden < (1u << 22) && c->n_layers <= 8) {
            pp_infer s;
            if (pp_infer_init(&s, &m, be, 4, 2) == PP_OK) {
                float *logits = malloc((size_t)c->vocab * sizeof *logits);
                uint32_t ids[2] = {0, (uint32_t)(c->vocab - 1)};
                if (logits) pp_infer_forward(&s, ids, 2, logits, 0);
                free(logits);
                pp_infer_free(&s);
            }
        }
        pp_llama_free(&m);
    }
    close(fd);
    return 0;
}
