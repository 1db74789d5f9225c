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

/* --- handmade models: a minimal protobuf writer --- */

static void pb_varint(pp_buf *b, uint64_t v)
{
    do {
        unsigned char c = (unsigned char)(v & 0x7f);
        v >>= 7;
        if (v) c |= 0x80;
        pp_buf_add(b, &c, 1);
    } while (v);
}

static void pb_bytes(pp_buf *b, int field, const void *p, size_t n)
{
    pb_varint(b, (uint64_t)field << 3 | 2);
    pb_varint(b, n);
    pp_buf_add(b, p, n);
}

static void pb_int(pp_buf *b, int field, uint64_t v)
{
    pb_varint(b, (uint64_t)field << 3);
    pb_varint(b, v);
}

static void add_piece(pp_buf *m, const char *piece, float score, int type)
{
    pp_buf sp = {0};
    pb_bytes(&sp, 1, piece, strlen(piece));
    pb_varint(&sp, 2 << 3 | 5);
    pp_buf_add(&sp, &score, 4);
    pb_int(&sp, 3, (uint64_t)type);
    pb_bytes(m, 1, sp.p, sp.len);
    pp_buf_free(&sp);
}

/* A small BPE model over a, b, c, d, e and U+2581 without byte fallback;
 * equal scores everywhere when ties is set; a piece "e\u2581" (which turns
 * the segment cache off) when join is set. */
static void tiny_model(pp_buf *m, int ties, int join, int remove_ws)
{
    static const char *const merges[] = {"ab", "bc", "cd", "abc", "\xe2\x96\x81" "a", "\xe2\x96\x81" "ab", "de",
                                         "\xe2\x96\x81\xe2\x96\x81", "ee", "eee", "ed", "e\xe2\x96\x81"};
    static const char *const chars[] = {"a", "b", "c", "d", "e", "\xe2\x96\x81"};
    add_piece(m, "<unk>", 0, 2);
    add_piece(m, "<s>", 0, 3);
    add_piece(m, "</s>", 0, 3);
    float sc = 0;
    for (size_t i = 0; i < sizeof merges / sizeof *merges; i++) {
        if (!join && i == sizeof merges / sizeof *merges - 1) break;
        add_piece(m, merges[i], ties ? 0 : sc--, 1);
    }
    for (size_t i = 0; i < sizeof chars / sizeof *chars; i++) add_piece(m, chars[i], ties ? 0 : sc--, 1);
    pp_buf ts = {0}, ns = {0};
    pb_int(&ts, 3, 2);  /* BPE */
    pb_int(&ts, 35, 0); /* no byte fallback */
    pb_bytes(&ns, 1, "identity", 8);
    pb_int(&ns, 3, 1);
    pb_int(&ns, 4, (uint64_t)remove_ws);
    pb_int(&ns, 5, 1);
    pb_bytes(m, 2, ts.p, ts.len);
    pb_bytes(m, 3, ns.p, ns.len);
    pp_buf_free(&ts);
    pp_buf_free(&ns);
}

/* Random strings over the tiny alphabet, spaces and characters it lacks. */
static size_t tiny_text(char *out)
{
    static const char *const bits[] = {"a", "b", "c", "d", "e", " ", "  ", "x", "\xc3\xa9", "\xe2\x96\x81", "ab", "ee"};
    size_t n = 0, k = rnd(30);
    for (size_t i = 0; i < k; i++) {
        const char *b = bits[rnd(sizeof bits / sizeof *bits)];
        memcpy(out + n, b, strlen(b));
        n += strlen(b);
    }
    return n;
}

TEST(handmade_models_without_byte_fallback)
{
    for (int variant = 0; variant < 8; variant++) {
        pp_buf m = {0};
        tiny_model(&m, variant & 1, (variant >> 1) & 1, (variant >> 2) & 1);
        pair_enc e;
        if (!open_pair(&e, m.p, m.len)) {
            check_failed = 1;
        } else {
            char buf[256];
            rng = 12345 + (uint64_t)variant;
            for (int i = 0; i < 20000; i++) compare(&e, buf, tiny_text(buf));
            if (e.differed) fprintf(stderr, "  variant %d: %ld of %ld differ\n", variant, e.differed, e.compared);
        }
        close_pair(&e);
        pp_buf_free(&m);
    }
}

TEST(llama_with_a_piece_that_joins_segments)
{
    size_t n;
    char *base = model_with(MODELS "llama2-tokenizer/tokenizer.model", "", 0, &n);
    pp_buf m = {0};
    pp_buf_add(&m, base, n);
    add_piece(&m, "e\xe2\x96\x81", 0, 1);
    add_piece(&m, "e\xe2\x96\x81\xe2\x96\x81", 0, 1);
    differential("llama2 + e\u2581", m.p, m.len, 5000);
    /* an unknown piece type: protobuf reads it as NORMAL; pp refuses the model */
    add_piece(&m, "qqqq", 0, 262);
    pp_bpe *b = NULL;
    CHECK_STATUS(pp_bpe_build(&b, m.p, m.len), PP_E_DATA);
    pp_buf_free(&m);
    free(base);
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
    RUN(handmade_models_without_byte_fallback);
    RUN(llama_with_a_piece_that_joins_segments);
    return tests_failed ? 1 : 0;
}
