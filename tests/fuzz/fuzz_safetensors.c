/* libFuzzer target: the safetensors reader (plain and zstd, through the
 * stream layer) and the token dataset validation on top of it. */
#include <stdint.h>
#include <stdlib.h>

#include "safetensors.h"
#include "stream.h"
#include "tokens.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    pp_reader *r;
    pp_st_reader *st;
    uint64_t declared = 0;
    if (pp_reader_open_mem(&r, data, size) != PP_OK) return 0;
    if (pp_st_open(&st, r) == PP_OK) {
        declared = pp_st_data_size(st);
        unsigned char buf[4096];
        for (size_t i = 0; i < pp_st_count(st); i++) {
            const pp_tensor_info *t = pp_st_tensor(st, i);
            if (t->end - t->begin > sizeof buf) continue; /* skipped by the next read */
            if (pp_st_read(st, t, buf) != PP_OK) break;
        }
        pp_st_finish(st);
        for (size_t i = 0; i < pp_st_meta_count(st); i++) {
            const char *k, *v;
            pp_st_meta_at(st, i, &k, &v);
            (void)pp_st_meta(st, k);
        }
        pp_st_close(st);
    }
    pp_reader_close(r);
    /* A compressed input can declare far more than it holds; keep the token
     * reader's one allocation within the fuzzer's memory limit. */
    if (declared <= (64u << 20)) {
        pp_tokens t;
        if (pp_reader_open_mem(&r, data, size) == PP_OK) {
            if (pp_tokens_read(&t, r) == PP_OK) pp_tokens_free(&t);
            pp_reader_close(r);
        }
    }
    return 0;
}
