/* libFuzzer target: chat template recognition and rendering. The input is a
 * template, a NUL, then messages as role \1 content \1 role \1 content...;
 * the messages are rendered through the recognised template, if any, and
 * through every family by name, and the spans must cover the text. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "chat.h"

static void check(const pp_chat_text *o)
{
    size_t at = 0;
    for (size_t i = 0; i < o->n_spans; i++) {
        if (o->spans[i].off != at || o->spans[i].len == 0) abort();
        at += o->spans[i].len;
    }
    if (at != o->text.len) abort();
}

static void render(const pp_chat_template *t, const pp_chat_msg *m, size_t n)
{
    for (int gen = 0; gen < 2; gen++) {
        pp_chat_text o = {0};
        if (pp_chat_render(&o, t, m, n, gen, "<s>", "</s>") == PP_OK) check(&o);
        else if (o.text.len || o.n_spans) abort(); /* a refusal leaves nothing */
        pp_chat_text_free(&o);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const uint8_t *nul = memchr(data, 0, size);
    size_t nt = nul ? (size_t)(nul - data) : size;
    pp_chat_template t;
    int known = pp_chat_detect(&t, (const char *)data, nt) == PP_OK;

    size_t nb = nul ? size - nt - 1 : 0;
    char *b = malloc(nb + 1);
    if (!b) return 0;
    if (nb) memcpy(b, nul + 1, nb);
    b[nb] = '\0';
    pp_chat_msg m[32];
    size_t n = 0;
    char *p = b, *field[64];
    size_t nf = 0;
    for (;;) { /* fields separated by \1; NULs inside cut a field short, as a C string would */
        field[nf++] = p;
        char *q = memchr(p, 1, (size_t)(b + nb - p));
        if (!q || nf == 64) break;
        *q = '\0';
        p = q + 1;
    }
    for (size_t i = 0; i + 1 < nf; i += 2) m[n++] = (pp_chat_msg){field[i], field[i + 1]};

    if (n) {
        if (known) render(&t, m, n);
        static const char *const names[] = {"chatml", "llama3", "llama2", "mistral"};
        for (int k = 0; k < 4; k++) {
            pp_chat_template u;
            if (pp_chat_by_name(&u, names[k]) == PP_OK) render(&u, m, n);
        }
        if (pp_chat_by_name(&t, "chatml") == PP_OK) {
            t.has_system = 1;
            memcpy(t.system, "You are \xe3\x80\x80 \n", 13);
            render(&t, m, n);
        }
    }
    free(b);
    return 0;
}
