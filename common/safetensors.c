#include "safetensors.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "text.h"

static const struct {
    const char *name;
    size_t size;
} dtypes[PP_DTYPE_COUNT] = {
    [PP_BOOL] = {"BOOL", 1}, [PP_U8] = {"U8", 1},     [PP_I8] = {"I8", 1},
    [PP_F8_E5M2] = {"F8_E5M2", 1}, [PP_F8_E4M3] = {"F8_E4M3", 1},
    [PP_I16] = {"I16", 2},   [PP_U16] = {"U16", 2},   [PP_F16] = {"F16", 2},
    [PP_BF16] = {"BF16", 2}, [PP_I32] = {"I32", 4},   [PP_U32] = {"U32", 4},
    [PP_F32] = {"F32", 4},   [PP_F64] = {"F64", 8},   [PP_I64] = {"I64", 8},
    [PP_U64] = {"U64", 8},
};

const char *pp_dtype_name(pp_dtype t) { return t < PP_DTYPE_COUNT ? dtypes[t].name : "?"; }
size_t pp_dtype_size(pp_dtype t) { return t < PP_DTYPE_COUNT ? dtypes[t].size : 0; }

pp_status pp_dtype_parse(const char *name, pp_dtype *t)
{
    for (int i = 0; i < PP_DTYPE_COUNT; i++) {
        if (strcmp(name, dtypes[i].name) == 0) {
            *t = (pp_dtype)i;
            return PP_OK;
        }
    }
    return pp_fail(PP_E_DATA, "unknown dtype \"%.40s\"", name);
}

/* a * b without overflow, else 0 */
static int mul_u64(uint64_t a, uint64_t b, uint64_t *r)
{
    return !__builtin_mul_overflow(a, b, r);
}

/* ---------------------------------------------------------------- reading */

struct pp_st_reader {
    pp_reader *in;
    cJSON *root;                /* owns every name and metadata string */
    pp_tensor_info *t;          /* (n) in file order */
    size_t n;
    const char **meta;          /* (2 * n_meta) key, value */
    size_t n_meta;
    uint64_t data_size;
    uint64_t data_start;        /* stream offset of the data section */
    uint64_t pos;               /* read position within the data section */
};

static pp_status bad_header(const char *what, uint64_t at)
{
    return pp_fail(PP_E_DATA, "invalid safetensors header: %s (byte offset %llu)", what,
                   (unsigned long long)at);
}

/* A JSON number that is a non-negative integer exactly representable. */
static int json_u64(const cJSON *v, uint64_t *out)
{
    if (!cJSON_IsNumber(v)) return 0;
    double d = v->valuedouble;
    if (!(d >= 0) || d > 9007199254740992.0 || d != (double)(uint64_t)d) return 0;
    *out = (uint64_t)d;
    return 1;
}

static pp_status parse_tensor(pp_tensor_info *ti, const cJSON *v)
{
    if (!cJSON_IsObject(v)) return pp_fail(PP_E_DATA, "entry is not an object");
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(v, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(v, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(v, "data_offsets");
    if (!cJSON_IsString(dt)) return pp_fail(PP_E_DATA, "missing or non-string \"dtype\"");
    PP_TRY(pp_dtype_parse(dt->valuestring, &ti->dtype));
    if (!cJSON_IsArray(sh)) return pp_fail(PP_E_DATA, "missing or non-array \"shape\"");
    int nd = cJSON_GetArraySize(sh);
    if (nd > PP_ST_MAX_DIMS) return pp_fail(PP_E_DATA, "%d dimensions, at most %d supported", nd, PP_ST_MAX_DIMS);
    ti->ndim = nd;
    ti->nelem = 1;
    int k = 0;
    const cJSON *d;
    cJSON_ArrayForEach(d, sh) {
        if (!json_u64(d, &ti->shape[k])) return pp_fail(PP_E_DATA, "shape[%d] is not a non-negative integer", k);
        if (!mul_u64(ti->nelem, ti->shape[k], &ti->nelem)) return pp_fail(PP_E_DATA, "shape overflows");
        k++;
    }
    if (!cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2 ||
        !json_u64(cJSON_GetArrayItem(off, 0), &ti->begin) ||
        !json_u64(cJSON_GetArrayItem(off, 1), &ti->end))
        return pp_fail(PP_E_DATA, "\"data_offsets\" is not two non-negative integers");
    uint64_t nbytes;
    if (!mul_u64(ti->nelem, pp_dtype_size(ti->dtype), &nbytes)) return pp_fail(PP_E_DATA, "size overflows");
    if (ti->end < ti->begin) return pp_fail(PP_E_DATA, "data_offsets end before they begin");
    if (ti->end - ti->begin != nbytes)
        return pp_fail(PP_E_DATA, "data_offsets span %llu bytes, shape and dtype need %llu",
                       (unsigned long long)(ti->end - ti->begin), (unsigned long long)nbytes);
    return PP_OK;
}

static int by_offset(const void *a, const void *b)
{
    const pp_tensor_info *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    if (x->end != y->end) return x->end < y->end ? -1 : 1;
    return strcmp(x->name, y->name);
}

static int by_name(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static pp_status st_parse(pp_st_reader *st, char *h, size_t n)
{
    if (!pp_utf8_valid(h, n, NULL)) return bad_header("not valid UTF-8", 8);
    size_t bad;
    if (!pp_json_strings_clean(h, n, &bad))
        return bad_header(h[bad] == '\\' ? "NUL character in a string" : "control character", 8 + bad);
    const char *end = NULL;
    st->root = cJSON_ParseWithLengthOpts(h, n, &end, 0);
    if (!st->root) {
        const char *e = cJSON_GetErrorPtr();
        uint64_t at = (e && e >= h && e <= h + n) ? (uint64_t)(e - h) : 0;
        return bad_header("not valid JSON", 8 + at);
    }
    for (const char *p = end; p < h + n; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
            return bad_header("data after the JSON object", 8 + (uint64_t)(p - h));
    if (!cJSON_IsObject(st->root)) return bad_header("not a JSON object", 8);

    size_t count = 0, n_meta = 0;
    const cJSON *it;
    cJSON_ArrayForEach(it, st->root) {
        if (strcmp(it->string, "__metadata__") != 0) {
            count++;
        } else if (cJSON_IsObject(it)) {
            const cJSON *m;
            cJSON_ArrayForEach(m, it) n_meta++;
        }
    }
    st->t = calloc(count ? count : 1, sizeof *st->t);
    st->meta = calloc(2 * n_meta + 1, sizeof *st->meta);
    const char **names = calloc(count + n_meta + 2, sizeof *names);
    if (!st->t || !st->meta || !names) {
        free(names);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    pp_status s = PP_OK;
    int seen_meta = 0;
    cJSON_ArrayForEach(it, st->root) {
        if (strcmp(it->string, "__metadata__") == 0) {
            if (seen_meta++) {
                s = bad_header("duplicate \"__metadata__\"", 8);
                goto out;
            }
            if (cJSON_IsNull(it)) continue;
            if (!cJSON_IsObject(it)) {
                s = bad_header("\"__metadata__\" is not an object", 8);
                goto out;
            }
            const cJSON *m;
            size_t j = 0;
            cJSON_ArrayForEach(m, it) {
                if (!cJSON_IsString(m)) {
                    s = pp_fail(PP_E_DATA, "invalid safetensors header: metadata \"%.80s\" is not a string",
                                m->string);
                    goto out;
                }
                st->meta[2 * j] = m->string;
                st->meta[2 * j + 1] = m->valuestring;
                names[count + j] = m->string;
                j++;
            }
            st->n_meta = j;
            continue;
        }
        pp_tensor_info *ti = &st->t[st->n++];
        ti->name = it->string;
        names[st->n - 1] = it->string;
        s = parse_tensor(ti, it);
        if (s != PP_OK) {
            pp_fail_ctx(s, "tensor %.200s", ti->name);
            goto out;
        }
    }
    /* Duplicate tensor names (cJSON keeps both), then duplicate metadata keys. */
    qsort(names, st->n, sizeof *names, by_name);
    for (size_t i = 1; i < st->n; i++)
        if (strcmp(names[i - 1], names[i]) == 0) {
            s = pp_fail(PP_E_DATA, "invalid safetensors header: duplicate tensor (tensor %.200s)", names[i]);
            goto out;
        }
    qsort(names + count, st->n_meta, sizeof *names, by_name);
    for (size_t i = 1; i < st->n_meta; i++)
        if (strcmp(names[count + i - 1], names[count + i]) == 0) {
            s = pp_fail(PP_E_DATA, "invalid safetensors header: duplicate metadata key \"%.200s\"",
                        names[count + i]);
            goto out;
        }
    qsort(st->t, st->n, sizeof *st->t, by_offset);
    uint64_t expect = 0;
    for (size_t i = 0; i < st->n; i++) {
        if (st->t[i].begin != expect) {
            s = pp_fail(PP_E_DATA, "invalid safetensors header: data_offsets begin at %llu, expected %llu "
                        "(a gap or an overlap) (tensor %.200s)", (unsigned long long)st->t[i].begin,
                        (unsigned long long)expect, st->t[i].name);
            goto out;
        }
        expect = st->t[i].end;
    }
    st->data_size = expect;
out:
    free(names);
    return s;
}

pp_status pp_st_open(pp_st_reader **out, pp_reader *in)
{
    *out = NULL;
    uint8_t len8[8];
    PP_TRY(pp_read_exact(in, len8, 8));
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--) n = n << 8 | len8[i];
    if (n > PP_ST_MAX_HEADER)
        return pp_fail(PP_E_DATA, "invalid safetensors header: length %llu exceeds %u bytes (byte offset 0)",
                       (unsigned long long)n, PP_ST_MAX_HEADER);
    if (n < 2) return bad_header("too short", 0);
    pp_st_reader *st = calloc(1, sizeof *st);
    char *h = malloc(n + 1);
    if (!st || !h) {
        free(st);
        free(h);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    st->in = in;
    pp_status s = pp_read_exact(in, h, n);
    if (s != PP_OK) {
        pp_fail_ctx(s, "in the %llu-byte header", (unsigned long long)n);
    } else {
        h[n] = '\0';
        s = st_parse(st, h, n);
    }
    free(h);
    if (s != PP_OK) {
        pp_st_close(st);
        return s;
    }
    st->data_start = pp_reader_offset(in);
    /* Where the size is known, check it now: no tool allocates for a data
     * section that is not there. */
    uint64_t left;
    if (pp_reader_remaining(in, &left) && left != st->data_size) {
        s = pp_fail(PP_E_DATA, "the header declares %llu bytes of data, the file has %llu (byte offset %llu)",
                    (unsigned long long)st->data_size, (unsigned long long)left,
                    (unsigned long long)st->data_start);
        pp_st_close(st);
        return s;
    }
    *out = st;
    return PP_OK;
}

size_t pp_st_count(const pp_st_reader *st) { return st->n; }
const pp_tensor_info *pp_st_tensor(const pp_st_reader *st, size_t i) { return i < st->n ? &st->t[i] : NULL; }
uint64_t pp_st_data_size(const pp_st_reader *st) { return st->data_size; }
size_t pp_st_meta_count(const pp_st_reader *st) { return st->n_meta; }

void pp_st_meta_at(const pp_st_reader *st, size_t i, const char **key, const char **val)
{
    *key = st->meta[2 * i];
    *val = st->meta[2 * i + 1];
}

const pp_tensor_info *pp_st_find(const pp_st_reader *st, const char *name)
{
    for (size_t i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

const char *pp_st_meta(const pp_st_reader *st, const char *key)
{
    for (size_t i = 0; i < st->n_meta; i++)
        if (strcmp(st->meta[2 * i], key) == 0) return st->meta[2 * i + 1];
    return NULL;
}

pp_status pp_st_read(pp_st_reader *st, const pp_tensor_info *t, void *dst)
{
    if (t->begin < st->pos)
        return pp_fail(PP_E_INTERNAL, "tensors read out of file order (tensor %.200s)", t->name);
    pp_status s = pp_read_skip(st->in, t->begin - st->pos);
    if (s == PP_OK) s = pp_read_exact(st->in, dst, t->end - t->begin);
    if (s != PP_OK) return pp_fail_ctx(s, "tensor %.200s", t->name);
    st->pos = t->end;
    return PP_OK;
}

pp_status pp_st_read_part(pp_st_reader *st, const pp_tensor_info *t, void *dst, size_t n)
{
    uint64_t from = st->pos > t->begin ? st->pos : t->begin;
    if (st->pos > t->end || n > t->end - from)
        return pp_fail(PP_E_INTERNAL, "tensor read out of file order (tensor %.200s)", t->name);
    pp_status s = PP_OK;
    if (st->pos < t->begin) {
        s = pp_read_skip(st->in, t->begin - st->pos);
        if (s == PP_OK) st->pos = t->begin;
    }
    if (s == PP_OK) s = pp_read_exact(st->in, dst, n);
    if (s != PP_OK) return pp_fail_ctx(s, "tensor %.200s", t->name);
    st->pos += n;
    return PP_OK;
}

pp_status pp_st_finish(pp_st_reader *st)
{
    PP_TRY(pp_read_skip(st->in, st->data_size - st->pos));
    st->pos = st->data_size;
    pp_status s = pp_read_expect_end(st->in);
    if (s != PP_OK)
        return pp_fail(s, "data section should end at byte offset %llu, the input goes on",
                       (unsigned long long)(st->data_start + st->data_size));
    return PP_OK;
}

void pp_st_close(pp_st_reader *st)
{
    if (!st) return;
    cJSON_Delete(st->root);
    free(st->t);
    free(st->meta);
    free(st);
}

/* ---------------------------------------------------------------- writing */

pp_status pp_st_entry_bytes(const pp_st_entry *t, uint64_t *nbytes)
{
    uint64_t n = pp_dtype_size(t->dtype);
    if (t->ndim < 0 || t->ndim > PP_ST_MAX_DIMS || n == 0)
        return pp_fail(PP_E_INTERNAL, "bad tensor description (tensor %.200s)", t->name);
    for (int i = 0; i < t->ndim; i++)
        if (!mul_u64(n, t->shape[i], &n))
            return pp_fail(PP_E_DATA, "tensor size overflows (tensor %.200s)", t->name);
    *nbytes = n;
    return PP_OK;
}

pp_status pp_st_write_header(pp_writer *w, const pp_st_entry *t, size_t n,
                             const char *const *kv, size_t n_meta)
{
    pp_buf h = {0};
    pp_status s = pp_buf_add(&h, "{", 1);
    if (n_meta && s == PP_OK) {
        s = pp_buf_adds(&h, "\"__metadata__\":{");
        for (size_t i = 0; i < n_meta && s == PP_OK; i++) {
            if (i) s = pp_buf_add(&h, ",", 1);
            if (s == PP_OK) s = pp_buf_json_string(&h, kv[2 * i], strlen(kv[2 * i]));
            if (s == PP_OK) s = pp_buf_add(&h, ":", 1);
            if (s == PP_OK) s = pp_buf_json_string(&h, kv[2 * i + 1], strlen(kv[2 * i + 1]));
        }
        if (s == PP_OK) s = pp_buf_add(&h, "}", 1);
    }
    uint64_t off = 0;
    for (size_t i = 0; i < n && s == PP_OK; i++) {
        uint64_t nb;
        if (t[i].name[0] == '\0' || strcmp(t[i].name, "__metadata__") == 0) {
            s = pp_fail(PP_E_INTERNAL, "invalid tensor name \"%s\"", t[i].name);
            break;
        }
        for (size_t j = 0; j < i; j++)
            if (strcmp(t[i].name, t[j].name) == 0) {
                s = pp_fail(PP_E_INTERNAL, "duplicate tensor (tensor %.200s)", t[i].name);
                goto out;
            }
        s = pp_st_entry_bytes(&t[i], &nb);
        if (s != PP_OK) break;
        if (h.len > 1) s = pp_buf_add(&h, ",", 1);
        if (s == PP_OK) s = pp_buf_json_string(&h, t[i].name, strlen(t[i].name));
        if (s == PP_OK) s = pp_buf_printf(&h, ":{\"dtype\":\"%s\",\"shape\":[", pp_dtype_name(t[i].dtype));
        for (int d = 0; d < t[i].ndim && s == PP_OK; d++)
            s = pp_buf_printf(&h, d ? ",%llu" : "%llu", (unsigned long long)t[i].shape[d]);
        if (s == PP_OK)
            s = pp_buf_printf(&h, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off,
                              (unsigned long long)(off + nb));
        off += nb;
    }
    if (s == PP_OK) s = pp_buf_add(&h, "}", 1);
    while (s == PP_OK && (h.len % 8) != 0) s = pp_buf_add(&h, " ", 1);
    if (s == PP_OK && h.len > PP_ST_MAX_HEADER) s = pp_fail(PP_E_DATA, "header too large");
    if (s == PP_OK) {
        uint8_t len8[8];
        for (int i = 0; i < 8; i++) len8[i] = (uint8_t)((uint64_t)h.len >> (8 * i));
        s = pp_write(w, len8, 8);
    }
    if (s == PP_OK) s = pp_write(w, h.p, h.len);
out:
    pp_buf_free(&h);
    return s;
}

pp_status pp_st_write(pp_writer *w, const pp_st_entry *t, size_t n,
                      const char *const *kv, size_t n_meta)
{
    PP_TRY(pp_st_write_header(w, t, n, kv, n_meta));
    for (size_t i = 0; i < n; i++) {
        uint64_t nb;
        PP_TRY(pp_st_entry_bytes(&t[i], &nb));
        PP_TRY(pp_write(w, t[i].data, nb));
    }
    return PP_OK;
}
