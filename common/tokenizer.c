#include "tokenizer.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "safetensors.h"
#include "sha256.h"
#include "stream.h"

#define TOKENIZER_MAX (64u << 20)

/* The "tokenizer.model" tensor of a pp model file. */
static pp_status from_container(pp_reader *r, const char *head, size_t nhead, char **data, size_t *n)
{
    pp_reader *mr = NULL;
    pp_st_reader *st = NULL;
    /* head holds the whole input, already read. */
    (void)r;
    PP_TRY(pp_reader_open_mem(&mr, head, nhead));
    pp_status s = pp_st_open(&st, mr);
    const pp_tensor_info *t = s == PP_OK ? pp_st_find(st, "tokenizer.model") : NULL;
    if (s == PP_OK && (!t || t->dtype != PP_U8))
        s = pp_fail(PP_E_DATA, "no U8 tensor \"tokenizer.model\" in this model file");
    if (s == PP_OK) {
        *n = t->end - t->begin;
        *data = malloc(*n ? *n : 1);
        if (!*data) s = pp_fail(PP_E_NOMEM, "out of memory");
        else s = pp_st_read(st, t, *data);
    }
    pp_st_close(st);
    pp_reader_close(mr);
    return s;
}

pp_status pp_tokenizer_load(pp_spm **sp, const char *path, char sha256[65])
{
    *sp = NULL;
    char *file = NULL;
    struct stat stt;
    if (strcmp(path, "-") != 0 && stat(path, &stt) == 0 && S_ISDIR(stt.st_mode)) {
        size_t n = strlen(path) + sizeof "/tokenizer.model";
        file = malloc(n);
        if (!file) return pp_fail(PP_E_NOMEM, "out of memory");
        snprintf(file, n, "%s/tokenizer.model", path);
        path = file;
    }
    pp_reader *r = NULL;
    char *raw = NULL, *model = NULL;
    size_t nraw = 0, nmodel = 0;
    pp_status s = pp_reader_open(&r, path);
    /* A pp model file is read whole here; it is small next to what a tool
     * given a model does with it anyway. */
    if (s == PP_OK) s = pp_read_all(r, &raw, &nraw, (size_t)1 << 40);
    if (s == PP_OK) {
        int container = pp_reader_is_zstd(r) || (nraw > 8 && raw[8] == '{');
        if (container) {
            s = from_container(r, raw, nraw, &model, &nmodel);
            free(raw);
        } else if (nraw > TOKENIZER_MAX) {
            s = pp_fail(PP_E_DATA, "too large for a tokenizer.model");
            free(raw);
        } else {
            model = raw;
            nmodel = nraw;
        }
    }
    if (s == PP_OK) s = pp_spm_load(sp, model, nmodel);
    if (s == PP_OK) {
        pp_sha256 c;
        pp_sha256_init(&c);
        pp_sha256_update(&c, model, nmodel);
        pp_sha256_hex(&c, sha256);
    }
    free(model);
    pp_reader_close(r);
    free(file);
    return s;
}
