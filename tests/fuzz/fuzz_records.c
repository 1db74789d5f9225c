/* libFuzzer target: the JSON record reader (array or JSON Lines) and the
 * record renderer with every built-in template, and the --chat conversation
 * writer. */
#include <stdint.h>
#include <stdlib.h>

#include "records.h"
#include "stream.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static pp_template *t[3];
    if (!t[0]) {
        pp_template_builtin(&t[0], "default");
        pp_template_builtin(&t[1], "alpaca");
        pp_template_custom(&t[2], "<{instruction}|{input}>{response}</s>", 0);
    }
    pp_reader *r;
    pp_jsonl *jl;
    pp_buf p = {0}, q = {0};
    if (pp_reader_open_mem(&r, data, size) != PP_OK) return 0;
    if (pp_jsonl_open(&jl, r) == PP_OK) {
        for (int n = 0; n < 10000; n++) {
            cJSON *rec;
            pp_status s = pp_jsonl_next(jl, &rec);
            if (s != PP_OK) {
                if (pp_jsonl_can_skip(jl)) continue;
                break;
            }
            if (!rec) break;
            pp_fields f = {0};
            pp_record_render(rec, &f, t[n % 3], &p, &q);
            pp_record_chat(rec, &f, n % 2 ? "Be brief." : NULL, &p);
            pp_fields g = {.instruction = "q", .response = "a", .input = "i"};
            pp_record_render(rec, &g, t[0], &p, &q);
        }
        pp_jsonl_close(jl);
    }
    pp_reader_close(r);
    pp_buf_free(&p);
    pp_buf_free(&q);
    return 0;
}
