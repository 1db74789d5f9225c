/* libFuzzer target, differential: pp's BPE encoder must give libsentencepiece's
 * ids for any valid UTF-8 text, with the Llama 2 tokenizer and with
 * stories260K's set to remove extra whitespace. Any difference aborts.
 * Inputs whose first byte has bit 1 set go to the model parser instead. */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bpe.h"
#include "spm.h"
#include "text.h"

typedef struct engine {
    pp_spm *sp;
    pp_bpe *bpe;
    pp_bpe_state *st;
} engine;

static engine eng[2];
static uint32_t *a, *b;
static size_t ca, cb;

static void load(engine *e, const char *path, const char *extra, size_t nextra)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        fprintf(stderr, "fuzz_bpe: cannot open %s (run from the repository root)\n", path);
        abort();
    }
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 16, f);
    fclose(f);
    memcpy(buf + n, extra, nextra);
    n += nextra;
    if (pp_spm_load(&e->sp, buf, n) != PP_OK || pp_bpe_build(&e->bpe, buf, n) != PP_OK) {
        fprintf(stderr, "fuzz_bpe: %s: %s\n", path, pp_errmsg());
        abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!eng[0].sp) {
        load(&eng[0], "../shared/models/llama2-tokenizer/tokenizer.model", "", 0);
        load(&eng[1], "../shared/models/stories260K/tokenizer.model", "\x1a\x02\x20\x01", 4);
    }
    if (size == 0) return 0;
    if (data[0] & 2) { /* the model parser on arbitrary bytes: no crash, no leak */
        pp_bpe *b = NULL;
        pp_bpe_state *st = NULL;
        if (pp_bpe_build(&b, data + 1, size - 1) == PP_OK) {
            size_t n;
            pp_bpe_encode(b, &st, "Hello world \xc3\xa9", 14, &a, &ca, &n);
            pp_bpe_state_free(st);
            pp_bpe_free(b);
        }
        return 0;
    }
    if (!pp_utf8_valid((const char *)data + 1, size - 1, NULL)) return 0;
    engine *e = &eng[data[0] & 1];
    const char *text = (const char *)data + 1;
    size_t n = size - 1, na, nb;
    if (pp_spm_encode(e->sp, text, n, &a, &ca, &na) != PP_OK) abort();
    if (pp_bpe_encode(e->bpe, &e->st, text, n, &b, &cb, &nb) != PP_OK) abort();
    if (na != nb || (na && memcmp(a, b, na * sizeof *a) != 0)) {
        fprintf(stderr, "fuzz_bpe: ids differ (%zu vs %zu tokens)\n", na, nb);
        abort();
    }
    return 0;
}
