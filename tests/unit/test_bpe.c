/* pp's BPE encoder against libsentencepiece, id for id: the whole Pride and
 * Prejudice set, random text from many scripts, and every normalizer setting
 * (made by appending fields to a real model, which protobuf merges). */
#include <cjson/cJSON.h>

#include "bpe.h"
#include "check.h"
#include "records.h"
#include "spm.h"
#include "text.h"

#define MODELS "../shared/models/"

typedef struct pair_enc {
    pp_spm *sp;
    pp_bpe *bpe;
    pp_bpe_state *st;
    uint32_t *a, *b;
    size_t ca, cb;
    long compared, differed;
} pair_enc;

static int open_pair(pair_enc *e, const char *model, size_t n)
{
    memset(e, 0, sizeof *e);
    if (pp_spm_load(&e->sp, model, n) != PP_OK) {
        fprintf(stderr, "  library refused: %s\n", pp_errmsg());
        return 0;
    }
    if (pp_bpe_build(&e->bpe, model, n) != PP_OK) {
        fprintf(stderr, "  fast encoder refused: %s\n", pp_errmsg());
        return 0;
    }
    return 1;
}

static void close_pair(pair_enc *e)
{
    pp_spm_free(e->sp);
    pp_bpe_free(e->bpe);
    pp_bpe_state_free(e->st);
    free(e->a);
    free(e->b);
}

static void compare(pair_enc *e, const char *text, size_t n)
{
    size_t na, nb;
    pp_status s1 = pp_spm_encode(e->sp, text, n, &e->a, &e->ca, &na);
    pp_status s2 = pp_bpe_encode(e->bpe, &e->st, text, n, &e->b, &e->cb, &nb);
    e->compared++;
    if (s1 != PP_OK || s2 != PP_OK || na != nb || (na && memcmp(e->a, e->b, na * 4) != 0)) {
        if (e->differed++ < 3) {
            fprintf(stderr, "  differs on [%.*s]:\n    library", (int)(n > 80 ? 80 : n), text);
            for (size_t i = 0; i < na && i < 20; i++) fprintf(stderr, " %u", e->a[i]);
            fprintf(stderr, "\n    pp     ");
            for (size_t i = 0; i < nb && i < 20; i++) fprintf(stderr, " %u", e->b[i]);
            fprintf(stderr, "\n");
        }
        check_failed = 1;
    }
}

static uint64_t rng = 88172645463325252ull;
static uint32_t rnd(uint32_t n)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return (uint32_t)(rng % n);
}

/* Random text: words, runs of spaces, tabs and newlines, digits, and
 * characters from many scripts, some surely outside any vocabulary. */
static size_t random_text(char *out, size_t cap)
{
    static const char *const bits[] = {
        "the", "Darcy", "Elizabeth", " ", "  ", "   ", "\t", "\n", "\n\n", ".", ",", "!", "?", "'", "\"",
        "0", "7", "42", "1999", "3.14", "caf\xc3\xa9", "na\xc3\xafve", "Z\xc3\xbcrich", "\xc3\x9f",
        "\xe6\x97\xa5\xe6\x9c\xac", "\xe4\xb8\xad\xe6\x96\x87", "\xd0\xbc\xd0\xb8\xd1\x80", "\xce\xb1\xce\xb2",
        "\xd7\xa9\xd7\x9c\xd7\x95\xd7\x9d", "\xd8\xb3\xd9\x84\xd8\xa7\xd9\x85", "\xf0\x9f\x98\x80", "\xf0\x9f\x8e\x89",
        "\xe2\x96\x81", "\xe2\x96\x81\xe2\x96\x81", "\xef\xbf\xbd", "\xee\x80\x80", "\xf0\xa0\x80\x80", "\x01", "\x7f",
        "<s>", "</s>", "<unk>", "<0x41>", "ing", "tion", "pre", "un", "supercalifragilistic", "#", "###", "Instruction:",
        "aaaaaaaaaaaa", "...", "--", "\xe2\x80\x94", "\xe2\x80\x9c", "\xc2\xa0", "\xe2\x80\x8b",
    };
    size_t n = 0, k = 1 + rnd(40);
    for (size_t i = 0; i < k; i++) {
        const char *b = bits[rnd(sizeof bits / sizeof *bits)];
        size_t l = strlen(b);
        if (n + l >= cap) break;
        memcpy(out + n, b, l);
        n += l;
    }
    return n;
}

static void differential(const char *name, const char *model, size_t n, int rounds)
{
    pair_enc e;
    if (!open_pair(&e, model, n)) {
        check_failed = 1;
        return;
    }
    char buf[2048];
    rng = 88172645463325252ull;
    for (int i = 0; i < rounds; i++) compare(&e, buf, random_text(buf, sizeof buf));
    /* long inputs: one word over many cached segments, and no spaces at all */
    for (int i = 0; i < 20; i++) {
        size_t m = 0;
        while (m < 1900) m += random_text(buf + m, sizeof buf - m);
        compare(&e, buf, m);
        memset(buf, 'a' + i % 26, 1500);
        compare(&e, buf, 1500);
    }
    if (e.differed) fprintf(stderr, "  %s: %ld of %ld texts differ\n", name, e.differed, e.compared);
    close_pair(&e);
}

static char *model_with(const char *path, const char *extra, size_t nextra, size_t *n)
{
    size_t m;
    char *base = slurp(path, &m);
    char *p = malloc(m + nextra);
    memcpy(p, base, m);
    memcpy(p + m, extra, nextra);
    free(base);
    *n = m + nextra;
    return p;
}

TEST(random_text_llama2)
{
    size_t n;
    char *m = model_with(MODELS "llama2-tokenizer/tokenizer.model", "", 0, &n);
    differential("llama2", m, n, 20000);
    free(m);
}

TEST(random_text_stories260K)
{
    size_t n;
    char *m = model_with(MODELS "stories260K/tokenizer.model", "", 0, &n);
    differential("stories260K", m, n, 20000);
    free(m);
}

TEST(every_normalizer_setting)
{
    static const struct {
        const char *name, *bytes;
        size_t n;
    } v[] = {
        {"remove_extra_whitespaces", "\x1a\x02\x20\x01", 4},
        {"no add_dummy_prefix", "\x1a\x02\x18\x00", 4},
        {"no escape_whitespaces", "\x1a\x02\x28\x00", 4},
        {"all three", "\x1a\x06\x20\x01\x18\x00\x28\x00", 8},
        /* (byte_fallback off is refused by the library for a model with byte pieces) */
    };
    for (size_t i = 0; i < sizeof v / sizeof *v; i++) {
        size_t n;
        char *m = model_with(MODELS "llama2-tokenizer/tokenizer.model", v[i].bytes, v[i].n, &n);
        differential(v[i].name, m, n, 4000);
        free(m);
    }
}

TEST(refuses_what_it_cannot_reproduce)
{
    size_t n;
    pp_bpe *b = NULL;
    char *m = model_with(MODELS "llama2-tokenizer/tokenizer.model", "\x12\x02\x18\x01", 4, &n); /* unigram */
    CHECK_STATUS(pp_bpe_build(&b, m, n), PP_E_USAGE);
    CHECK(strstr(pp_errmsg(), "not a BPE model") != NULL);
    free(m);
    m = model_with(MODELS "llama2-tokenizer/tokenizer.model", "\x1a\x03\x12\x01\x41", 5, &n); /* a charsmap */
    CHECK_STATUS(pp_bpe_build(&b, m, n), PP_E_USAGE);
    free(m);
    /* an extra piece of type USER_DEFINED: {1: "zz", 3: 4} */
    m = model_with(MODELS "stories260K/tokenizer.model", "\x0a\x06\x0a\x02zz\x18\x04", 8, &n);
    CHECK_STATUS(pp_bpe_build(&b, m, n), PP_E_USAGE);
    CHECK(strstr(pp_errmsg(), "user-defined") != NULL);
    free(m);
    CHECK_STATUS(pp_bpe_build(&b, "\x0a\xff", 2), PP_E_DATA);
    CHECK(b == NULL);
}

/* Every prompt and answer of the data sets, formatted as pp-format does. */
TEST(pride_and_prejudice_records)
{
    size_t n;
    char *m = model_with(MODELS "llama2-tokenizer/tokenizer.model", "", 0, &n);
    pair_enc e;
    if (!open_pair(&e, m, n)) {
        check_failed = 1;
        free(m);
        return;
    }
    pp_template *t;
    pp_template_builtin(&t, "default");
    pp_buf p = {0}, r = {0};
    const char *files[] = {"data/pride_prejudice_ift.json", "data/pride_prejudice_eval.json"};
    for (int f = 0; f < 2; f++) {
        char *text = slurp(files[f], NULL);
        cJSON *arr = cJSON_Parse(text), *rec;
        pp_fields none = {0};
        cJSON_ArrayForEach(rec, arr) {
            CHECK_STATUS(pp_record_render(rec, &none, t, &p, &r), PP_OK);
            compare(&e, p.p, p.len);
            compare(&e, r.p, r.len);
        }
        cJSON_Delete(arr);
        free(text);
    }
    CHECK(e.compared >= 2 * 1000);
    pp_buf_free(&p);
    pp_buf_free(&r);
    pp_template_free(t);
    close_pair(&e);
    free(m);
}

int main(void)
{
    RUN(pride_and_prejudice_records);
    RUN(random_text_llama2);
    RUN(random_text_stories260K);
    RUN(every_normalizer_setting);
    RUN(refuses_what_it_cannot_reproduce);
    return tests_failed ? 1 : 0;
}
