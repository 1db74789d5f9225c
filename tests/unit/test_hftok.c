/* tokenizer.json: ids, offsets and decoded text equal to Hugging Face
 * `tokenizers` on every fixture in tests/fixtures/tokenizer/ (made by
 * tests/fixtures/gen_tokenizers.py): SmolLM2's tokenizer, a Llama-3-style
 * one, stories260K's SentencePiece model as transformers converts it, and
 * small ones covering every supported component. Then malformed and
 * unsupported files: PP_E_DATA with the component named. */
#include <cjson/cJSON.h>
#include <dirent.h>

#include "hftok.h"
#include "stream.h"
#include "check.h"

#define FIX "tests/fixtures/tokenizer/"

/* ids: equal; offsets ([start, end] pairs): pp's start inside the library's
 * span (the library widens some byte-level tokens to whole characters). */
static int ids_equal(const uint32_t *a, size_t n, const cJSON *want)
{
    if (!cJSON_IsArray(want) || (size_t)cJSON_GetArraySize(want) != n) return 0;
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, want) {
        double x = a[i++];
        if (cJSON_IsArray(v)) {
            double lo = v->child->valuedouble, hi = v->child->next->valuedouble;
            if (!(x == lo || (x > lo && x < hi))) return 0;
        } else if (x != v->valuedouble) {
            return 0;
        }
    }
    return 1;
}

/* Prints both lists from a little before their first difference. */
static void print_ids(const char *what, const uint32_t *a, size_t n, const cJSON *want)
{
    size_t m = cJSON_IsArray(want) ? (size_t)cJSON_GetArraySize(want) : 0, i0 = 0;
    while (i0 < n && i0 < m) {
        const cJSON *x = cJSON_GetArrayItem(want, (int)i0);
        if (cJSON_IsArray(x)) x = x->child;
        if ((double)a[i0] != x->valuedouble) break;
        i0++;
    }
    i0 = i0 > 3 ? i0 - 3 : 0;
    fprintf(stderr, "    %s from [%zu]: pp", what, i0);
    for (size_t i = i0; i < n && i < i0 + 30; i++) fprintf(stderr, " %u", a[i]);
    fprintf(stderr, "\n    want");
    for (size_t i = i0; i < m && i < i0 + 30; i++) {
        const cJSON *x = cJSON_GetArrayItem(want, (int)i);
        fprintf(stderr, " %g", cJSON_IsArray(x) ? x->child->valuedouble : x->valuedouble);
    }
    fprintf(stderr, " (%zu and %zu in all)\n", n, m);
}

static int case_fails, case_total;

/* One fixture folder: every case and every decode case. */
static void check_dir(const char *name)
{
    char path[512];
    size_t n;
    snprintf(path, sizeof path, FIX "%s/tokenizer.json", name);
    char *json = read_path(path, &n);
    if (!json) {
        snprintf(path, sizeof path, FIX "%s/tokenizer.json.zst", name);
        json = read_path(path, &n);
    }
    snprintf(path, sizeof path, FIX "%s/cases.json", name);
    size_t nc;
    char *ctext = read_path(path, &nc);
    CHECK(json && ctext);
    if (!json || !ctext) return;
    pp_hftok *t = NULL;
    CHECK_STATUS(pp_hftok_load(&t, json, n), PP_OK);
    cJSON *root = cJSON_ParseWithLength(ctext, nc);
    CHECK(root != NULL);
    if (!t || !root) goto done;
    pp_hftok_state *st = NULL;
    uint32_t *ids = NULL, *offs = NULL;
    size_t cap = 0, ocap = 0, count;
    char *text = NULL;
    size_t tcap = 0, tlen;
    const uint32_t *pre, *post;
    size_t npre, npost;
    pp_hftok_template(t, &pre, &npre, &post, &npost);
    const cJSON *c;
    int fails = 0, k = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "cases")) {
        k++;
        const cJSON *tx = cJSON_GetObjectItem(c, "text");
        const char *s = tx->valuestring;
        size_t len = strlen(s);
        int bad = 0;
        /* with special tokens recognised, as tokenizer.encode(text, add_special_tokens=False) */
        int want_offs = pp_hftok_has_offsets(t) && cJSON_GetObjectItem(c, "offsets");
        if (pp_hftok_encode(t, &st, s, len, PP_HFTOK_SPECIAL, &ids, &cap, &count, want_offs ? &offs : NULL, &ocap) != PP_OK) {
            fprintf(stderr, "    encode: %s\n", pp_errmsg());
            bad = 1;
        } else {
            if (!ids_equal(ids, count, cJSON_GetObjectItem(c, "ids"))) print_ids("ids", ids, count, cJSON_GetObjectItem(c, "ids")), bad = 1;
            if (want_offs && !ids_equal(offs, count, cJSON_GetObjectItem(c, "offsets")))
                print_ids("offsets", offs, count, cJSON_GetObjectItem(c, "offsets")), bad = 1;
            /* decoding what was encoded */
            const cJSON *d = cJSON_GetObjectItem(c, "decoded");
            if (pp_hftok_decode(t, ids, count, 0, &text, &tcap, &tlen) != PP_OK || !d || strlen(d->valuestring) != tlen ||
                memcmp(text, d->valuestring, tlen) != 0)
                fprintf(stderr, "    decoded: pp \"%.200s\"\n    want \"%.200s\"\n", text ? text : "", d ? d->valuestring : "?"), bad = 1;
            /* with the post-processor's ids around */
            const cJSON *ws = cJSON_GetObjectItem(c, "ids_special");
            uint32_t *full = malloc((count + npre + npost + 1) * sizeof *full);
            memcpy(full, pre, npre * sizeof *full);
            memcpy(full + npre, ids, count * sizeof *full);
            memcpy(full + npre + count, post, npost * sizeof *full);
            if (ws && !ids_equal(full, npre + count + npost, ws)) print_ids("ids_special", full, npre + count + npost, ws), bad = 1;
            const cJSON *dk = cJSON_GetObjectItem(c, "decoded_skip");
            if (dk && (pp_hftok_decode(t, full, npre + count + npost, 1, &text, &tcap, &tlen) != PP_OK ||
                       strlen(dk->valuestring) != tlen || memcmp(text, dk->valuestring, tlen) != 0))
                fprintf(stderr, "    decoded_skip: pp \"%.200s\"\n    want \"%.200s\"\n", text, dk->valuestring), bad = 1;
            free(full);
        }
        /* special tokens taken as text (encode_special_tokens) */
        const cJSON *wn = cJSON_GetObjectItem(c, "ids_nosplit_special");
        if (wn && (pp_hftok_encode(t, &st, s, len, 0, &ids, &cap, &count, NULL, NULL) != PP_OK || !ids_equal(ids, count, wn)))
            print_ids("ids_nosplit_special", ids, count, wn), bad = 1;
        if (bad) {
            char *q = cJSON_PrintUnformatted(tx);
            fprintf(stderr, "  %s case %d: %.200s\n", name, k, q);
            free(q);
            if (++fails > 8) break;
        }
        case_total++;
    }
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, "decode")) {
        const cJSON *want = cJSON_GetObjectItem(c, "ids"), *v;
        count = 0;
        size_t m = (size_t)cJSON_GetArraySize(want);
        uint32_t *in = malloc((m + 1) * sizeof *in);
        cJSON_ArrayForEach(v, want) in[count++] = (uint32_t)v->valuedouble;
        for (int skip = 0; skip < 2; skip++) {
            const cJSON *d = cJSON_GetObjectItem(c, skip ? "text_skip" : "text");
            if (!d) continue;
            if (pp_hftok_decode(t, in, count, skip, &text, &tcap, &tlen) != PP_OK || strlen(d->valuestring) != tlen ||
                memcmp(text, d->valuestring, tlen) != 0) {
                char *q = cJSON_PrintUnformatted(want);
                fprintf(stderr, "  %s decode %.200s (skip %d):\n    pp \"%.200s\"\n    want \"%.200s\"\n", name, q, skip, text,
                        d->valuestring);
                free(q);
                fails++;
            }
        }
        free(in);
        case_total++;
    }
    if (fails) fprintf(stderr, "  %s: %d cases differ\n", name, fails);
    case_fails += fails;
    CHECK(fails == 0);
    CHECK(k > 0);
    free(ids);
    free(offs);
    free(text);
    pp_hftok_state_free(st);
done:
    cJSON_Delete(root);
    pp_hftok_free(t);
    free(json);
    free(ctext);
}

TEST(fixtures_equal_tokenizers)
{
    DIR *d = opendir(FIX);
    CHECK(d != NULL);
    if (!d) return;
    int dirs = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.' || strchr(e->d_name, '.')) continue;
        char p[512];
        snprintf(p, sizeof p, FIX "%s/cases.json", e->d_name);
        FILE *f = fopen(p, "rb");
        if (!f) continue;
        fclose(f);
        check_dir(e->d_name);
        dirs++;
    }
    closedir(d);
    fprintf(stderr, "  %d tokenizers, %d cases, %d differ\n", dirs, case_total, case_fails);
    CHECK(dirs >= 4);
}

/* A minimal valid file with one part replaced. */
static pp_status load_with(const char *model, const char *extra)
{
    char json[4096];
    snprintf(json, sizeof json,
             "{\"model\": %s%s}",
             model ? model
                   : "{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"a b\"]}",
             extra ? extra : "");
    pp_hftok *t = NULL;
    pp_status s = pp_hftok_load(&t, json, strlen(json));
    pp_hftok_free(t);
    return s;
}

static int says(const char *needle)
{
    if (strstr(pp_errmsg(), needle)) return 1;
    fprintf(stderr, "  message \"%s\" lacks \"%s\"\n", pp_errmsg(), needle);
    return 0;
}

TEST(bad_files_refused_by_name)
{
    CHECK_STATUS(load_with(NULL, NULL), PP_OK);
    CHECK_STATUS(load_with(NULL, ", \"pre_tokenizer\": {\"type\": \"Whitespace\"}"), PP_E_DATA);
    CHECK(says("pre_tokenizer \"Whitespace\" is not supported"));
    CHECK_STATUS(load_with(NULL, ", \"normalizer\": {\"type\": \"Lowercase\"}"), PP_E_DATA);
    CHECK(says("normalizer \"Lowercase\""));
    CHECK_STATUS(load_with(NULL, ", \"decoder\": {\"type\": \"WordPiece\"}"), PP_E_DATA);
    CHECK(says("decoder \"WordPiece\""));
    CHECK_STATUS(load_with(NULL, ", \"post_processor\": {\"type\": \"RobertaProcessing\"}"), PP_E_DATA);
    CHECK(says("RobertaProcessing"));
    CHECK_STATUS(load_with("{\"type\":\"Unigram\",\"vocab\":[]}", NULL), PP_E_DATA);
    CHECK(says("model \"Unigram\""));
    CHECK_STATUS(load_with("{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b\"]}", NULL), PP_E_DATA);
    CHECK(says("not in the vocab"));
    CHECK_STATUS(load_with("{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1},\"merges\":[\"a b c\"]}", NULL), PP_E_DATA);
    CHECK_STATUS(load_with("{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":0},\"merges\":[]}", NULL), PP_E_DATA);
    CHECK_STATUS(load_with("{\"type\":\"BPE\",\"vocab\":{\"a\":99999999},\"merges\":[]}", NULL), PP_E_DATA);
    CHECK_STATUS(load_with("{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[],\"unk_token\":\"<unk>\"}", NULL), PP_E_DATA);
    CHECK_STATUS(load_with(NULL, ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"(\"}, "
                                 "\"behavior\": \"Isolated\", \"invert\": false}"), PP_E_DATA);
    CHECK(says("regex"));
    CHECK_STATUS(load_with(NULL, ", \"pre_tokenizer\": {\"type\": \"Split\", \"pattern\": {\"Regex\": \"a\"}, "
                                 "\"behavior\": \"Sideways\", \"invert\": false}"), PP_E_DATA);
    CHECK_STATUS(load_with(NULL, ", \"added_tokens\": [{\"content\": \"x\"}]"), PP_E_DATA);
    const char *bad[] = {"", "{", "[]", "{\"model\": 3}", "{\"model\": {\"type\": \"BPE\"}}", "{\"model\":{\"vocab\":{\"\\u0000\":0},\"merges\":[]}}"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        pp_hftok *t = NULL;
        CHECK_STATUS(pp_hftok_load(&t, bad[i], strlen(bad[i])), PP_E_DATA);
        CHECK(t == NULL);
    }
}

/* Text that is not UTF-8 is refused, not guessed at. */
TEST(invalid_utf8_refused)
{
    const char *json = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0},\"merges\":[]}}";
    pp_hftok *t = NULL;
    CHECK_STATUS(pp_hftok_load(&t, json, strlen(json)), PP_OK);
    if (!t) return;
    pp_hftok_state *st = NULL;
    uint32_t *ids = NULL;
    size_t cap = 0, n;
    CHECK_STATUS(pp_hftok_encode(t, &st, "a\xff", 2, 0, &ids, &cap, &n, NULL, NULL), PP_E_DATA);
    CHECK_STATUS(pp_hftok_encode(t, &st, "aa", 2, 0, &ids, &cap, &n, NULL, NULL), PP_OK);
    CHECK(n == 2 && ids[0] == 0 && ids[1] == 0);
    free(ids);
    pp_hftok_state_free(st);
    pp_hftok_free(t);
}

/* Where files repeat or annotate themselves, as the library reads them: a
 * repeated merge takes its last rank, a "#version" line is skipped, and an
 * added token whose id the library would not give it is refused. */
TEST(library_reading_rules)
{
    const char *dup = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"c\":2,\"ab\":3,\"bc\":4},"
                      "\"merges\":[\"a b\",\"b c\",\"a b\"]}}";
    pp_hftok *t = NULL;
    pp_hftok_state *st = NULL;
    uint32_t *ids = NULL;
    size_t cap = 0, n = 0;
    CHECK_STATUS(pp_hftok_load(&t, dup, strlen(dup)), PP_OK);
    if (t) CHECK_STATUS(pp_hftok_encode(t, &st, "abc", 3, 0, &ids, &cap, &n, NULL, NULL), PP_OK);
    CHECK(n == 2 && ids[0] == 0 && ids[1] == 4); /* "a b" ranks after "b c" */
    pp_hftok_free(t);
    const char *ver = "{\"model\":{\"type\":\"BPE\",\"vocab\":{\"a\":0,\"b\":1,\"ab\":2},\"merges\":[\"#version: 0.2\",\"a b\"]}}";
    t = NULL;
    CHECK_STATUS(pp_hftok_load(&t, ver, strlen(ver)), PP_OK);
    if (t) CHECK_STATUS(pp_hftok_encode(t, &st, "ab", 2, 0, &ids, &cap, &n, NULL, NULL), PP_OK);
    CHECK(n == 1 && ids[0] == 2);
    pp_hftok_free(t);
    CHECK_STATUS(load_with(NULL, ", \"added_tokens\": [{\"id\": 7, \"content\": \"<x>\"}]"), PP_E_DATA);
    CHECK(says("added token \"<x>\" has id 7, the tokenizers library gives it 3"));
    CHECK_STATUS(load_with(NULL, ", \"added_tokens\": [{\"id\": 3, \"content\": \"<x>\"}, {\"id\": 1, \"content\": \"b\"}]"), PP_OK);
    free(ids);
    pp_hftok_state_free(st);
}

int main(void)
{
    RUN(fixtures_equal_tokenizers);
    RUN(bad_files_refused_by_name);
    RUN(invalid_utf8_refused);
    RUN(library_reading_rules);
    return tests_failed ? 1 : 0;
}
