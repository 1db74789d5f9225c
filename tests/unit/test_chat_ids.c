/* Conversations through a model's own chat template, then tokens: the ids
 * equal transformers' apply_chat_template(messages) encoded, on SmolLM2's
 * tokenizer and template and on a Llama-3-style tokenizer with Llama 3's
 * (tests/fixtures/chat/ids.json, made by gen_chat_ids.py); a special token
 * written inside a message stays text; the loss lies on the assistant turns. */
#include <cjson/cJSON.h>

#include "stream.h"
#include "check.h"
#include "tokenizer.h"

#define FIX "tests/fixtures/"

/* The fixture folder's tokenizer (its tokenizer.json is kept compressed). */
static pp_tokenizer *load(const char *name)
{
    char p[256];
    pp_tokfiles f = {0};
    f.json = 1;
    snprintf(p, sizeof p, FIX "tokenizer/%s/tokenizer.json.zst", name);
    f.data = read_path(p, &f.n);
    snprintf(p, sizeof p, FIX "tokenizer/%s/tokenizer_config.json", name);
    f.config = read_path(p, &f.nconfig);
    pp_tokenizer *tk = NULL;
    if (f.data) CHECK_STATUS(pp_tokenizer_from_files(&tk, &f), PP_OK);
    CHECK(tk != NULL);
    pp_tokfiles_free(&f);
    return tk;
}

static char *piece(const pp_tokenizer *tk, int id)
{
    size_t n;
    const char *p = pp_tokenizer_piece(tk, id, &n);
    char *s = malloc(n + 1);
    memcpy(s, p, n);
    s[n] = 0;
    return s;
}

/* s without its whitespace (spaces, tabs, newlines). */
static void squeeze(char *s)
{
    char *o = s;
    for (; *s; s++)
        if (!strchr(" \t\r\n", *s)) *o++ = *s;
    *o = 0;
}

static size_t count_in(const char *hay, const char *needle)
{
    size_t k = 0, n = strlen(needle);
    for (const char *p = hay; (p = strstr(p, needle)); p += n) k++;
    return k;
}

static void check_family(cJSON *root, const char *name, const char *want_template)
{
    pp_tokenizer *tk = load(name);
    if (!tk) return;
    CHECK(tk->chat_template != NULL);
    pp_chat_template t;
    CHECK_STATUS(pp_chat_detect(&t, tk->chat_template, strlen(tk->chat_template)), PP_OK);
    CHECK(strcmp(t.name, want_template) == 0);
    char *bos = piece(tk, tk->bos_id), *eos = piece(tk, tk->eos_id);
    const char *eot = pp_chat_eot(&t, eos);
    int eot_id = pp_tokenizer_piece_id(tk, eot, strlen(eot));
    CHECK(eot_id >= 0 && pp_tokenizer_is_special(tk, eot_id));
    pp_chat_text ct = {0};
    pp_tok_state *st = NULL;
    uint32_t *ids = NULL;
    uint8_t *train = NULL;
    size_t cap = 0, tcap = 0, n, dcap = 0, dlen;
    char *dec = NULL;
    const cJSON *c;
    int k = 0, injections = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItem(root, name)) {
        k++;
        const cJSON *msgs = cJSON_GetObjectItem(c, "messages"), *e;
        pp_chat_msg m[16];
        size_t nm = 0;
        cJSON_ArrayForEach(e, msgs) m[nm++] = (pp_chat_msg){cJSON_GetObjectItem(e, "role")->valuestring,
                                                             cJSON_GetObjectItem(e, "content")->valuestring};
        int gen = cJSON_IsTrue(cJSON_GetObjectItem(c, "gen")), inj = cJSON_IsTrue(cJSON_GetObjectItem(c, "injection"));
        const char *text = cJSON_GetObjectItem(c, "text")->valuestring;
        const cJSON *want = cJSON_GetObjectItem(c, "ids");
        pp_chat_text_clear(&ct);
        CHECK_STATUS(pp_chat_render(&ct, &t, m, nm, gen, bos, eos), PP_OK);
        CHECK(ct.text.len == strlen(text) && memcmp(ct.text.p, text, ct.text.len) == 0);
        CHECK_STATUS(pp_tokenizer_encode_chat(tk, &st, &ct, &ids, &cap, &train, &tcap, &n), PP_OK);
        /* the ids decode to the rendered text, specials and all */
        CHECK_STATUS(pp_tokenizer_decode(tk, ids, n, 0, &dec, &dcap, &dlen), PP_OK);
        CHECK(dlen == strlen(text) && memcmp(dec, text, dlen) == 0);
        size_t specials = 0, want_specials = 0;
        for (size_t i = 0; i < n; i++) specials += pp_tokenizer_is_special(tk, (int)ids[i]);
        e = NULL;
        cJSON_ArrayForEach(e, want) want_specials += pp_tokenizer_is_special(tk, e->valueint);
        if (!inj) {
            int same = (size_t)cJSON_GetArraySize(want) == n;
            size_t i = 0;
            cJSON_ArrayForEach(e, want) same = same && i < n && ids[i++] == (uint32_t)e->valueint;
            if (!same) {
                fprintf(stderr, "  %s case %d: ids differ from apply_chat_template's (%zu and %d):\n    pp  ", name, k, n,
                        cJSON_GetArraySize(want));
                for (size_t j = 0; j < n; j++) fprintf(stderr, " %u", ids[j]);
                fprintf(stderr, "\n    want");
                cJSON_ArrayForEach(e, want) fprintf(stderr, " %d", e->valueint);
                fprintf(stderr, "\n");
            }
            CHECK(same);
        } else {
            /* transformers turns the markup inside messages into special
             * tokens; pp keeps it text: fewer specials, by exactly those */
            size_t written = 0;
            for (size_t i = 0; i < nm; i++)
                for (int id = 0; id < tk->vocab; id++)
                    if (pp_tokenizer_is_special(tk, id)) {
                        char *p = piece(tk, id);
                        written += count_in(m[i].content, p);
                        free(p);
                    }
            CHECK(written > 0);
            CHECK(specials + written == want_specials);
            injections++;
        }
        /* the trained tokens: each assistant turn's content and end of turn */
        pp_buf got = {0}, exp = {0};
        for (size_t i = 0; i < n;) {
            size_t j = i;
            while (j < n && train[j] == train[i]) j++;
            if (train[i]) {
                CHECK_STATUS(pp_tokenizer_decode(tk, ids + i, j - i, 0, &dec, &dcap, &dlen), PP_OK);
                pp_buf_add(&got, dec, dlen);
            }
            i = j;
        }
        for (size_t i = 0; i < nm; i++)
            if (strcmp(m[i].role, "assistant") == 0) pp_buf_adds(&exp, m[i].content), pp_buf_adds(&exp, eot);
        pp_buf_adds(&got, "");
        pp_buf_adds(&exp, "");
        squeeze(got.p), squeeze(exp.p);
        if (strcmp(got.p, exp.p) != 0) fprintf(stderr, "  %s case %d: trained \"%s\"\n    want \"%s\"\n", name, k, got.p, exp.p);
        CHECK(strcmp(got.p, exp.p) == 0);
        pp_buf_free(&got);
        pp_buf_free(&exp);
    }
    CHECK(k >= 6 && injections >= 1);
    fprintf(stderr, "  %s: %d conversations, template %s\n", name, k, t.name);
    pp_chat_text_free(&ct);
    pp_tok_state_free(st);
    free(ids);
    free(train);
    free(dec);
    free(bos);
    free(eos);
    pp_tokenizer_free(tk);
}

static cJSON *fixture(void)
{
    size_t n;
    char *s = read_path(FIX "chat/ids.json", &n);
    cJSON *root = s ? cJSON_ParseWithLength(s, n) : NULL;
    free(s);
    return root;
}

TEST(smollm2_chatml_ids_equal_transformers)
{
    cJSON *root = fixture();
    CHECK(root != NULL);
    if (root) check_family(root, "smollm2", "chatml+system");
    cJSON_Delete(root);
}

TEST(llama3_ids_equal_transformers)
{
    cJSON *root = fixture();
    CHECK(root != NULL);
    if (root) check_family(root, "llama3-style", "llama3");
    cJSON_Delete(root);
}

/* A normalizer that rewrites across a turn's edge (here ">\n" removed) can
 * make the text up to the edge encode to more tokens than the whole: the
 * mask stays within the tokens (ASan in make test SAN=1 checks the bytes). */
TEST(mask_within_tokens_when_the_edge_rewrites)
{
    char j[8192];
    size_t k = 0;
    k += (size_t)sprintf(j + k, "{\"normalizer\":{\"type\":\"Replace\",\"pattern\":{\"String\":\">\\n\"},\"content\":\"\"},"
                                "\"model\":{\"type\":\"BPE\",\"merges\":[],\"vocab\":{\"\\n\":0");
    for (int c = 32, id = 1; c < 127; c++, id++)
        k += (size_t)sprintf(j + k, c == '"' || c == '\\' ? ",\"\\%c\":%d" : ",\"%c\":%d", c, id);
    k += (size_t)sprintf(j + k, "}}}");
    pp_tokfiles f = {0};
    f.data = j, f.n = k, f.json = 1;
    pp_tokenizer *tk = NULL;
    CHECK_STATUS(pp_tokenizer_from_files(&tk, &f), PP_OK);
    if (!tk) return;
    char u[101], a[100];
    memset(u, 'x', 100), u[100] = 0;
    memset(a, 'y', 99), a[99] = 0;
    pp_chat_msg m[2] = {{"user", u}, {"assistant", a}};
    pp_chat_template t;
    CHECK_STATUS(pp_chat_by_name(&t, "chatml"), PP_OK);
    pp_chat_text ct = {0};
    CHECK_STATUS(pp_chat_render(&ct, &t, m, 2, 0, "", ""), PP_OK);
    pp_tok_state *st = NULL;
    uint32_t *ids = NULL;
    uint8_t *train = NULL;
    size_t cap = 0, tcap = 0, n = 0, trained = 0;
    CHECK_STATUS(pp_tokenizer_encode_chat(tk, &st, &ct, &ids, &cap, &train, &tcap, &n), PP_OK);
    for (size_t i = 0; i < n; i++) trained += train[i];
    CHECK(n > 0 && trained >= 99 && trained < n);
    free(ids);
    free(train);
    pp_tok_state_free(st);
    pp_chat_text_free(&ct);
    pp_tokenizer_free(tk);
}

int main(void)
{
    RUN(smollm2_chatml_ids_equal_transformers);
    RUN(llama3_ids_equal_transformers);
    RUN(mask_within_tokens_when_the_edge_rewrites);
    return tests_failed ? 1 : 0;
}
