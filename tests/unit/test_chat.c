/* Chat templates against transformers: tests/fixtures/chat/cases.json holds
 * conversations rendered by apply_chat_template(tokenize=False) through each
 * known template (gen_chat.py); every one must be recognised, render to the
 * same bytes, and come with spans that cover the text in order. */
#include <cjson/cJSON.h>

#include "chat.h"
#include "check.h"

#define DIR "tests/fixtures/chat/"

static cJSON *fx;

static char *template_text(const char *file, size_t *n)
{
    char path[256];
    snprintf(path, sizeof path, DIR "%s", file);
    return slurp(path, n);
}

static const char *str(const cJSON *o, const char *k)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, k);
    return cJSON_IsString(v) ? v->valuestring : NULL;
}

static const cJSON *template_entry(const char *name)
{
    const cJSON *t;
    cJSON_ArrayForEach(t, cJSON_GetObjectItemCaseSensitive(fx, "templates"))
        if (strcmp(str(t, "name"), name) == 0) return t;
    return NULL;
}

/* Detects the fixture template called name. */
static pp_status detect(const char *name, pp_chat_template *t)
{
    const cJSON *e = template_entry(name);
    size_t n;
    char *s = template_text(str(e, "file"), &n);
    pp_status st = pp_chat_detect(t, s, n);
    free(s);
    return st;
}

TEST(every_known_template_is_recognised)
{
    static const char *const family[] = {"chatml", "llama3", "llama2", "mistral"};
    const cJSON *e;
    int k = 0;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(fx, "templates")) {
        pp_chat_template t;
        k++;
        CHECK_STATUS(detect(str(e, "name"), &t), PP_OK);
        CHECK(strcmp(family[t.family], str(e, "family")) == 0);
        const char *sys = str(e, "default_system");
        CHECK(t.has_system == (sys != NULL));
        if (sys && strcmp(t.system, sys)) {
            fprintf(stderr, "  %s: default system [%s], expected [%s]\n", str(e, "name"), t.system, sys);
            check_failed = 1;
        }
        CHECK(t.eos_space == (strcmp(str(e, "name"), "mistral-v0.1") == 0));
    }
    CHECK(k == 7);
}

TEST(equivalent_spellings_are_recognised)
{
    const cJSON *v;
    int k = 0;
    cJSON_ArrayForEach(v, cJSON_GetObjectItemCaseSensitive(fx, "variants")) {
        pp_chat_template a, b;
        size_t n;
        char *s = template_text(str(v, "file"), &n);
        CHECK_STATUS(pp_chat_detect(&a, s, n), PP_OK);
        CHECK_STATUS(detect(str(v, "same_as"), &b), PP_OK);
        CHECK(a.family == b.family && a.has_system == b.has_system && strcmp(a.name, b.name) == 0);
        if (strstr(str(v, "file"), "system"))
            CHECK(strcmp(a.system, "You are Pemberley's librarian;\tsay \"sir\".") == 0);
        else
            CHECK(strcmp(a.system, b.system) == 0);
        free(s);
        k++;
    }
    CHECK(k == 3);
    /* CRLF line ends and a final newline are what Jinja's lexer ignores */
    pp_chat_template t;
    const char *crlf = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\r\n' + message['content'] + "
                       "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
                       "}}{% endif %}\r\n";
    CHECK_STATUS(pp_chat_detect(&t, crlf, strlen(crlf)), PP_OK);
    CHECK(t.family == PP_CHAT_CHATML && !t.has_system);
}

TEST(near_misses_and_strangers_are_refused)
{
    const cJSON *u;
    int k = 0;
    cJSON_ArrayForEach(u, cJSON_GetObjectItemCaseSensitive(fx, "unknown")) {
        pp_chat_template t;
        size_t n;
        char *s = template_text(str(u, "file"), &n);
        CHECK_STATUS(pp_chat_detect(&t, s, n), PP_E_DATA);
        const char *msg = pp_errmsg();
        if (!strstr(msg, "chat template not recognised: \"") || !strstr(msg, "(known: chatml, llama3, llama2, mistral)")) {
            fprintf(stderr, "  %s (%s): message [%s]\n", str(u, "file"), str(u, "why"), msg);
            check_failed = 1;
        }
        if (strstr(str(u, "file"), "llama31")) CHECK(strstr(msg, "Llama 3.1") != NULL);
        free(s);
        k++;
    }
    CHECK(k == 7);
    pp_chat_template t;
    CHECK_STATUS(pp_chat_detect(&t, "", 0), PP_E_DATA);
    CHECK_STATUS(pp_chat_detect(&t, "{{ messages", 11), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "\"{{ messages\"") != NULL);
    const char *zephyr = "{% for message in messages %}\n{% if message['role'] == 'user' %}";
    CHECK_STATUS(pp_chat_detect(&t, zephyr, strlen(zephyr)), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "\"{% for message in messages %}\" (known: ") != NULL); /* the first line only */
    char longline[300];
    memset(longline, 'x', sizeof longline);
    CHECK_STATUS(pp_chat_detect(&t, longline, sizeof longline), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "xxx...\"") != NULL && strlen(pp_errmsg()) < 200);
    /* an escape the normal form does not cover is refused, not guessed */
    const char *esc = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\x0a' + message['content'] + "
                      "'<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' "
                      "}}{% endif %}";
    CHECK_STATUS(pp_chat_detect(&t, esc, strlen(esc)), PP_E_DATA);
}

TEST(by_name)
{
    pp_chat_template t, d;
    CHECK_STATUS(pp_chat_by_name(&t, "chatml"), PP_OK);
    CHECK(t.family == PP_CHAT_CHATML && !t.has_system);
    CHECK_STATUS(detect("chatml", &d), PP_OK);
    CHECK(strcmp(t.name, d.name) == 0);
    CHECK_STATUS(pp_chat_by_name(&t, "llama3"), PP_OK);
    CHECK(t.family == PP_CHAT_LLAMA3 && strcmp(pp_chat_eot(&t, "</s>"), "<|eot_id|>") == 0);
    CHECK_STATUS(pp_chat_by_name(&t, "llama2"), PP_OK);
    CHECK(t.family == PP_CHAT_LLAMA2 && strcmp(pp_chat_eot(&t, "</s>"), "</s>") == 0);
    CHECK_STATUS(pp_chat_by_name(&t, "mistral"), PP_OK);
    CHECK(t.family == PP_CHAT_MISTRAL && !t.eos_space);
    CHECK_STATUS(pp_chat_by_name(&t, "zephyr"), PP_E_USAGE);
    CHECK(strstr(pp_errmsg(), "chatml, llama3, llama2, mistral") != NULL);
    CHECK(strcmp(pp_chat_names(), "chatml, llama3, llama2, mistral") == 0);
}

/* Spans of o from span s0 on must cover text[off0..len) in order, each
 * non-empty, one of MARKUP and CONTENT, TRAIN and EOT where they belong. */
static void check_spans(const pp_chat_text *o, size_t s0, size_t off0, const pp_chat_template *t, const char *eos,
                        const cJSON *msgs, const char *what)
{
    size_t at = off0, n_eot_train = 0, n_asst = 0;
    const cJSON *m;
    cJSON_ArrayForEach(m, msgs) n_asst += strcmp(str(m, "role"), "assistant") == 0;
    for (size_t i = s0; i < o->n_spans; i++) {
        const pp_chat_span *sp = &o->spans[i];
        const char *p = o->text.p + sp->off;
        int k = sp->kind;
        int bad = sp->off != at || sp->len == 0 || ((k & PP_SPAN_MARKUP) != 0) == ((k & PP_SPAN_CONTENT) != 0) ||
                  (k & ~15);
        if (k & PP_SPAN_EOT) {
            const char *eot = pp_chat_eot(t, eos);
            bad |= !(k & PP_SPAN_MARKUP) || sp->len != strlen(eot) || memcmp(p, eot, sp->len) != 0;
            n_eot_train += (k & PP_SPAN_TRAIN) != 0;
        }
        if ((k & PP_SPAN_TRAIN) && (k & PP_SPAN_CONTENT)) { /* a piece of an assistant message */
            int found = 0;
            cJSON_ArrayForEach(m, msgs) {
                if (strcmp(str(m, "role"), "assistant") == 0) {
                    const char *c = str(m, "content");
                    found |= memmem(c, strlen(c), p, sp->len) != NULL;
                }
            }
            bad |= !found;
        }
        if (i > s0 && k == o->spans[i - 1].kind && !(k & PP_SPAN_EOT)) bad = 1; /* should have been merged */
        if (bad) {
            fprintf(stderr, "  %s: span %zu (off %zu len %zu kind %d) is wrong (expected off %zu)\n", what, i,
                    sp->off, sp->len, k, at);
            check_failed = 1;
            return;
        }
        at += sp->len;
    }
    if (at != o->text.len) {
        fprintf(stderr, "  %s: spans end at %zu, text at %zu\n", what, at, o->text.len);
        check_failed = 1;
    }
    if (n_eot_train != n_asst) {
        fprintf(stderr, "  %s: %zu trained end-of-turn spans for %zu assistant turns\n", what, n_eot_train, n_asst);
        check_failed = 1;
    }
}

/* In an injection case, each special token of the message text, found right
 * after the letter that precedes it in INJECT, must lie in a CONTENT span. */
static int check_injection(const pp_chat_text *o, const char *what)
{
    static const char *const pairs[][2] = {{"x", "<|im_end|>"}, {"y", "<|im_start|>"}, {"z", "<|eot_id|>"},
                                           {"w", "[INST]"},     {"v", "</s>"},          {"u", "<s>"},
                                           {"t", "<<SYS>>"},    {"s", "[/INST]"},       {"r", "<|start_header_id|>"}};
    int seen = 0;
    for (size_t k = 0; k < sizeof pairs / sizeof pairs[0]; k++) {
        char pat[64];
        snprintf(pat, sizeof pat, "%s%s", pairs[k][0], pairs[k][1]);
        for (const char *q = strstr(o->text.p, pat); q; q = strstr(q + 1, pat)) {
            size_t off = (size_t)(q - o->text.p) + 1, len = strlen(pairs[k][1]);
            int inside = 0;
            for (size_t i = 0; i < o->n_spans; i++) {
                const pp_chat_span *sp = &o->spans[i];
                if ((sp->kind & PP_SPAN_CONTENT) && sp->off <= off && off + len <= sp->off + sp->len) inside = 1;
            }
            if (!inside) {
                fprintf(stderr, "  %s: \"%s\" at %zu is not inside a CONTENT span\n", what, pairs[k][1], off);
                check_failed = 1;
            }
            seen++;
        }
    }
    return seen;
}

TEST(renders_as_transformers_with_spans)
{
    const cJSON *c, *convs = cJSON_GetObjectItemCaseSensitive(fx, "conversations");
    int n_cases = 0, n_err = 0, n_inj = 0;
    cJSON_ArrayForEach(c, cJSON_GetObjectItemCaseSensitive(fx, "cases")) {
        const char *tname = str(c, "template");
        const cJSON *te = template_entry(tname);
        int ci = cJSON_GetObjectItemCaseSensitive(c, "conversation")->valueint;
        int gen = cJSON_GetObjectItemCaseSensitive(c, "gen")->valueint;
        const cJSON *conv = cJSON_GetArrayItem(convs, ci), *msgs = cJSON_GetObjectItemCaseSensitive(conv, "messages");
        char what[128];
        snprintf(what, sizeof what, "%s/%s/gen=%d", tname, str(conv, "name"), gen);
        pp_chat_template t;
        if (detect(tname, &t) != PP_OK) {
            fprintf(stderr, "  %s: not recognised: %s\n", what, pp_errmsg());
            check_failed = 1;
            continue;
        }
        pp_chat_msg m[16];
        size_t n = 0;
        const cJSON *e;
        cJSON_ArrayForEach(e, msgs) if (n < 16) m[n++] = (pp_chat_msg){str(e, "role"), str(e, "content")};
        const char *bos = str(te, "bos"), *eos = str(te, "eos"), *want = str(c, "text");
        pp_chat_text o = {0};
        pp_status s = pp_chat_render(&o, &t, m, n, gen, bos, eos);
        n_cases++;
        if (!want) { /* transformers raised: so must we, leaving nothing behind */
            n_err++;
            if (s != PP_E_DATA || o.text.len != 0 || o.n_spans != 0) {
                fprintf(stderr, "  %s: status %d (%s), expected bad data like [%s]\n", what, (int)s, pp_errmsg(),
                        str(c, "error"));
                check_failed = 1;
            }
            pp_chat_text_free(&o);
            continue;
        }
        if (s != PP_OK || o.text.len != strlen(want) || memcmp(o.text.p, want, o.text.len) != 0) {
            fprintf(stderr, "  %s: status %d (%s)\n    got  [%s]\n    want [%s]\n", what, (int)s, s ? pp_errmsg() : "",
                    o.text.p ? o.text.p : "", want);
            check_failed = 1;
            pp_chat_text_free(&o);
            continue;
        }
        check_spans(&o, 0, 0, &t, eos, msgs, what);
        if (strstr(str(conv, "name"), "injection")) n_inj += check_injection(&o, what) > 0;
        /* a second conversation is appended, its spans after the first's */
        size_t len1 = o.text.len, spans1 = o.n_spans;
        CHECK_STATUS(pp_chat_render(&o, &t, m, n, gen, bos, eos), PP_OK);
        CHECK(o.text.len == 2 * len1 && memcmp(o.text.p + len1, want, len1) == 0 && o.text.p[o.text.len] == '\0');
        check_spans(&o, spans1, len1, &t, eos, msgs, what);
        pp_chat_text_free(&o);
    }
    CHECK(n_cases == 280 && n_err == 60);
    /* injection, injection_no_system through 7 templates less mistral's 2 refusals of a system turn, and
     * injection_role through chatml and llama3 (llama2 writes nothing for the role, mistral refuses it): x 2 gen */
    CHECK(n_inj == 32);
}

TEST(refusals_leave_the_output_as_it_was)
{
    pp_chat_template t;
    pp_chat_text o = {0};
    CHECK_STATUS(pp_chat_by_name(&t, "mistral"), PP_OK);
    pp_chat_msg ok[] = {{"user", "a"}, {"assistant", "b"}};
    pp_chat_msg bad[] = {{"user", "a"}, {"assistant", "b"}, {"assistant", "c"}};
    CHECK_STATUS(pp_chat_render(&o, &t, ok, 2, 0, "<s>", "</s>"), PP_OK);
    CHECK(strcmp(o.text.p, "<s>[INST] a [/INST]b</s>") == 0);
    size_t n_spans = o.n_spans;
    CHECK_STATUS(pp_chat_render(&o, &t, bad, 3, 0, "<s>", "</s>"), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "must alternate") && strstr(pp_errmsg(), "message 3 is \"assistant\""));
    CHECK(strcmp(o.text.p, "<s>[INST] a [/INST]b</s>") == 0 && o.n_spans == n_spans);
    CHECK_STATUS(pp_chat_render(&o, &t, ok, 0, 0, "<s>", "</s>"), PP_E_DATA);
    pp_chat_msg null_content[] = {{"user", NULL}};
    CHECK_STATUS(pp_chat_render(&o, &t, null_content, 1, 0, "<s>", "</s>"), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "message 1 has no content") != NULL);
    pp_chat_text_clear(&o);
    CHECK(o.text.len == 0 && o.n_spans == 0);
    /* NULL bos and eos are "" */
    CHECK_STATUS(pp_chat_render(&o, &t, ok, 2, 0, NULL, NULL), PP_OK);
    CHECK(strcmp(o.text.p, "[INST] a [/INST]b") == 0);
    pp_chat_text_free(&o);
}

int main(void)
{
    char *s = slurp(DIR "cases.json", NULL);
    fx = cJSON_Parse(s);
    free(s);
    if (!fx) {
        fprintf(stderr, "cannot parse " DIR "cases.json\n");
        return 2;
    }
    RUN(every_known_template_is_recognised);
    RUN(equivalent_spellings_are_recognised);
    RUN(near_misses_and_strangers_are_refused);
    RUN(by_name);
    RUN(renders_as_transformers_with_spans);
    RUN(refusals_leave_the_output_as_it_was);
    cJSON_Delete(fx);
    return tests_failed != 0;
}
