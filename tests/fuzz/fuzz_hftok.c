/* libFuzzer target: Hugging Face tokenizer.json loading, encoding and decoding
 * (common/hftok.c) on arbitrary input. Nothing may crash or leak, and:
 *   - pp_hftok_load returns PP_OK or PP_E_DATA;
 *   - encode returns PP_OK on valid UTF-8 text and PP_E_DATA on anything else;
 *   - every id it gives is below pp_hftok_vocab_size and names a token;
 *   - offsets (where the tokenizer has them) are nondecreasing and inside the text;
 *   - encoding the same text twice with one state (the second time from the
 *     piece cache) gives the same ids;
 *   - decode returns PP_OK for any ids, in range or not, and valid UTF-8.
 * Any violation aborts.
 *
 * Input: TOKENIZER.JSON 0x00 TEXT. Without a 0x00 the whole input is the JSON
 * and a fixed text is encoded. An input 0x01 K TEXT instead encodes TEXT with
 * the K-th (modulo their number) of the tokenizers loaded once at the start
 * from the files in FIXED below (paths from the repository root, where run.sh
 * runs; those missing are skipped), so that mutations of the text are not
 * spent on JSON that no longer parses. The text's bytes also give a list of ids to
 * decode (little-endian uint16 each, taken modulo vocab size + 64, so that some
 * are out of range), plus a few fixed out-of-range ids.
 * The seed corpus is tests/fuzz/corpus/fuzz_hftok/ (small tokenizer.json files,
 * valid and malformed). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "hftok.h"
#include "text.h"

static const char DEFAULT_TEXT[] = "Hello, world! It's 2024: caf\xc3\xa9 <s> x  \n\n12345 \xe2\x96\x81y \xf0\x9f\x98\x80</s>";

static uint32_t *ids, *offs, *ids2, *dec;
static size_t cap, ocap, cap2, dcap;
static char *text_out;
static size_t text_cap;

static void fail(const char *what)
{
    fprintf(stderr, "fuzz_hftok: %s\n", what);
    abort();
}

static const char *const FIXED[] = {
    "tests/fuzz/corpus/fuzz_hftok/bytelevel.json",
    "tests/fuzz/corpus/fuzz_hftok/llama3.json",
    "tests/fuzz/corpus/fuzz_hftok/digits.json",
    "tests/fuzz/corpus/fuzz_hftok/metaspace.json",
    "tests/fuzz/corpus/fuzz_hftok/metaspace-never.json",
    "tests/fuzz/corpus/fuzz_hftok/spm-legacy.json",
    "tests/fuzz/corpus/fuzz_hftok/nfkc-split.json",
    "tests/fixtures/tokenizer/ks-bytelevel/tokenizer.json",
    "tests/fixtures/tokenizer/ks-bytelevel-nore/tokenizer.json",
    "tests/fixtures/tokenizer/ks-metaspace/tokenizer.json",
    "tests/fixtures/tokenizer/ks-metaspace-always/tokenizer.json",
    "tests/fixtures/tokenizer/ks-metaspace-never/tokenizer.json",
    "tests/fixtures/tokenizer/ks-split/tokenizer.json",
    "tests/fixtures/tokenizer/ks-spm-legacy/tokenizer.json",
    "tests/fixtures/tokenizer/stories260K-spm/tokenizer.json",
};
#define NFIXED (sizeof FIXED / sizeof *FIXED)
static pp_hftok *fixed[NFIXED];
static pp_hftok_state *fixed_st[NFIXED];
static int nfixed;

/* The tokenizers of FIXED (a seed file: its JSON part, up to the 0x00). */
static void load_fixed(void)
{
    static char buf[1 << 20];
    for (size_t i = 0; i < NFIXED; i++) {
        FILE *f = fopen(FIXED[i], "rb");
        if (!f) continue;
        size_t n = fread(buf, 1, sizeof buf, f);
        fclose(f);
        const char *z = memchr(buf, 0, n);
        if (z) n = (size_t)(z - buf);
        if (pp_hftok_load(&fixed[nfixed], buf, n) != PP_OK) {
            fprintf(stderr, "fuzz_hftok: %s: %s\n", FIXED[i], pp_errmsg());
            abort();
        }
        nfixed++;
    }
    if (nfixed < (int)NFIXED)
        fprintf(stderr, "fuzz_hftok: %d of %zu fixed tokenizers found (run from the repository root)\n", nfixed, NFIXED);
}

static void check_decode(const pp_hftok *t, const uint32_t *v, size_t n)
{
    for (int skip = 0; skip < 2; skip++) {
        size_t len = 0;
        pp_status s = pp_hftok_decode(t, v, n, skip, &text_out, &text_cap, &len);
        if (s != PP_OK) fail("decode failed");
        if (len >= text_cap || text_out[len] != 0) fail("decode: length or NUL wrong");
        /* decoding is lossy (invalid bytes become U+FFFD) but never gives invalid UTF-8 */
        if (!pp_utf8_valid(text_out, len, NULL)) fail("decode gave invalid UTF-8");
    }
}

static void check_encode(const pp_hftok *t, pp_hftok_state **st, const char *text, size_t n)
{
    int nids = pp_hftok_vocab_size(t), valid = pp_utf8_valid(text, n, NULL);
    for (int flags = 0; flags <= PP_HFTOK_SPECIAL; flags++) {
        int with_offs = pp_hftok_has_offsets(t) && flags;
        size_t count = 0, count2 = 0;
        pp_status s = pp_hftok_encode(t, st, text, n, flags, &ids, &cap, &count, with_offs ? &offs : NULL,
                                      with_offs ? &ocap : NULL);
        if (!valid) {
            if (s != PP_E_DATA) fail("encode accepted invalid UTF-8");
            continue;
        }
        if (s != PP_OK) {
            fprintf(stderr, "fuzz_hftok: encode: %s\n", pp_errmsg());
            fail("encode failed on valid UTF-8");
        }
        for (size_t i = 0; i < count; i++) {
            size_t len;
            if (ids[i] >= (uint32_t)nids || !pp_hftok_token(t, (int)ids[i], &len)) fail("encode gave an id no token has");
            if (with_offs && (offs[i] > n || (i && offs[i] < offs[i - 1]))) fail("encode gave bad offsets");
        }
        /* again, with the offsets the other way round: the state's cache must not change the ids */
        s = pp_hftok_encode(t, st, text, n, flags, &ids2, &cap2, &count2, NULL, NULL);
        if (s != PP_OK || count2 != count || (count && memcmp(ids, ids2, count * sizeof *ids) != 0))
            fail("encoding the same text twice gave different ids");
        check_decode(t, ids, count);
    }
    if (valid) pp_hftok_token_id(t, text, n);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static int init;
    if (!init) load_fixed(), init = 1;
    if (size >= 2 && data[0] == 1) { /* a fixed tokenizer, the state kept from run to run (its cache too) */
        if (!nfixed) return 0;
        int k = data[1] % nfixed;
        char *text = malloc(size - 2 ? size - 2 : 1);
        if (!text) return 0;
        memcpy(text, data + 2, size - 2);
        check_encode(fixed[k], &fixed_st[k], text, size - 2);
        /* a fresh state (no cache) must agree with the long-lived one */
        pp_hftok_state *fresh = NULL;
        size_t c1 = 0, c2 = 0;
        pp_status s1 = pp_hftok_encode(fixed[k], &fresh, text, size - 2, PP_HFTOK_SPECIAL, &ids, &cap, &c1, NULL, NULL);
        pp_status s2 = pp_hftok_encode(fixed[k], &fixed_st[k], text, size - 2, PP_HFTOK_SPECIAL, &ids2, &cap2, &c2, NULL, NULL);
        if (s1 != s2 || c1 != c2 || (c1 && memcmp(ids, ids2, c1 * sizeof *ids) != 0))
            fail("a fresh state and a used one gave different ids");
        pp_hftok_state_free(fresh);
        free(text);
        return 0;
    }
    const uint8_t *z = memchr(data, 0, size);
    size_t njson = z ? (size_t)(z - data) : size;
    /* copies of exactly their length, so that ASan sees any read past the end */
    char *json = malloc(njson ? njson : 1);
    if (!json) return 0;
    memcpy(json, data, njson);
    const char *text = z ? (const char *)z + 1 : DEFAULT_TEXT;
    size_t ntext = z ? size - njson - 1 : sizeof DEFAULT_TEXT - 1;
    char *tcopy = malloc(ntext ? ntext : 1);
    if (!tcopy) {
        free(json);
        return 0;
    }
    memcpy(tcopy, text, ntext);

    pp_hftok *t = NULL;
    pp_status s = pp_hftok_load(&t, json, njson);
    free(json);
    if (s != PP_OK) {
        if (s != PP_E_DATA) {
            fprintf(stderr, "fuzz_hftok: load: status %d: %s\n", (int)s, pp_errmsg());
            fail("load returned something other than PP_OK or PP_E_DATA");
        }
        if (t) fail("load failed but set *out");
        free(tcopy);
        return 0;
    }
    int nids = pp_hftok_vocab_size(t);
    if (nids <= 0) fail("loaded with no ids");
    (void)pp_hftok_describe(t);

    pp_hftok_state *st = NULL;
    check_encode(t, &st, tcopy, ntext);
    if (ntext > 1) check_encode(t, &st, tcopy + 1, ntext - 1); /* the same state, other text */

    /* ids from the input bytes, some out of range, and the extremes */
    size_t nd = ntext / 2 + 4;
    if (nd > dcap) {
        free(dec);
        dec = malloc(nd * sizeof *dec);
        dcap = dec ? nd : 0;
        if (!dec) fail("out of memory");
    }
    size_t k = 0;
    for (size_t i = 0; i + 1 < ntext; i += 2)
        dec[k++] = ((uint32_t)(uint8_t)tcopy[i] | (uint32_t)(uint8_t)tcopy[i + 1] << 8) % ((uint32_t)nids + 64);
    dec[k++] = (uint32_t)nids;
    dec[k++] = UINT32_MAX;
    dec[k++] = (uint32_t)INT32_MAX + 1;
    dec[k++] = 0;
    check_decode(t, dec, k);
    for (size_t i = 0; i < k; i++) {
        size_t len;
        const char *p = pp_hftok_token(t, (int)dec[i], &len);
        if (p) {
            if (!pp_utf8_valid(p, len, NULL)) fail("a token string is not valid UTF-8");
            if (pp_hftok_token_id(t, p, len) < 0) fail("a token's string has no id");
        }
        pp_hftok_is_special(t, (int)dec[i]);
    }

    /* the post-processor's ids, then a template set as transformers does */
    const uint32_t *pre, *post;
    size_t npre, npost;
    pp_hftok_template(t, &pre, &npre, &post, &npost);
    for (size_t i = 0; i < npre; i++)
        if (pre[i] >= (uint32_t)nids) fail("template id out of range");
    for (size_t i = 0; i < npost; i++)
        if (post[i] >= (uint32_t)nids) fail("template id out of range");
    pp_hftok_set_template(t, ntext ? (uint8_t)tcopy[0] % nids : -1, nids - 1);
    pp_hftok_template(t, &pre, &npre, &post, &npost);
    if (npost != 1 || post[0] != (uint32_t)nids - 1) fail("set_template did not take");

    pp_hftok_state_free(st);
    pp_hftok_free(t);
    free(tcopy);
    return 0;
}
