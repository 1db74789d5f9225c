/* pp-format's core: record shapes, templates, and bad input with positions. */
#include "check.h"
#include "records.h"
#include "stream.h"
#include "text.h"

static pp_template *tdefault, *talpaca, *traw;

/* Renders one JSON record; returns the status and fills prompt/response. */
static pp_status render(const char *json, const pp_fields *f, const pp_template *t, pp_buf *p, pp_buf *r)
{
    static const pp_fields none = {0};
    cJSON *rec = cJSON_Parse(json);
    if (!rec) {
        fprintf(stderr, "  test JSON does not parse: %s\n", json);
        return PP_E_INTERNAL;
    }
    pp_status s = pp_record_render(rec, f ? f : &none, t ? t : tdefault, p, r);
    cJSON_Delete(rec);
    return s;
}

#define EXPECT(json, f, t, want_p, want_r)                                                    \
    do {                                                                                      \
        pp_buf p_ = {0}, r_ = {0};                                                            \
        CHECK_STATUS(render(json, f, t, &p_, &r_), PP_OK);                                    \
        if (!p_.p || strcmp(p_.p, want_p) || !r_.p || strcmp(r_.p, want_r)) {                \
            fprintf(stderr, "  %s:%d: got prompt [%s] response [%s]\n", __FILE__, __LINE__,   \
                    p_.p ? p_.p : "(null)", r_.p ? r_.p : "(null)");                          \
            check_failed = 1;                                                                 \
        }                                                                                     \
        pp_buf_free(&p_);                                                                     \
        pp_buf_free(&r_);                                                                     \
    } while (0)

#define EXPECT_BAD(json, f, t, why)                                                           \
    do {                                                                                      \
        pp_buf p_ = {0}, r_ = {0};                                                            \
        CHECK_STATUS(render(json, f, t, &p_, &r_), PP_E_DATA);                                \
        if (!strstr(pp_errmsg(), why)) {                                                      \
            fprintf(stderr, "  %s:%d: message [%s] lacks [%s]\n", __FILE__, __LINE__,         \
                    pp_errmsg(), why);                                                        \
            check_failed = 1;                                                                 \
        }                                                                                     \
        pp_buf_free(&p_);                                                                     \
        pp_buf_free(&r_);                                                                     \
    } while (0)

TEST(classic_question_answer_is_byte_for_byte)
{
    EXPECT("{\"question\":\"Who is Mr. Darcy?\",\"answer\":\"A gentleman.\"}", NULL, NULL,
           "### Instruction:\nWho is Mr. Darcy?\n\n### Response:\n", "A gentleman.");
}

TEST(alpaca_with_and_without_input)
{
    EXPECT("{\"instruction\":\"Add\",\"input\":\"1 2\",\"output\":\"3\"}", NULL, NULL,
           "### Instruction:\nAdd\n\n### Input:\n1 2\n\n### Response:\n", "3");
    EXPECT("{\"instruction\":\"Add\",\"input\":\"\",\"output\":\"3\"}", NULL, NULL,
           "### Instruction:\nAdd\n\n### Response:\n", "3");
    EXPECT("{\"instruction\":\"Add\",\"input\":null,\"output\":\"3\"}", NULL, NULL,
           "### Instruction:\nAdd\n\n### Response:\n", "3");
    EXPECT("{\"instruction\":\"Add\",\"output\":\"3\"}", NULL, talpaca,
           "Below is an instruction that describes a task. Write a response that appropriately completes "
           "the request.\n\n### Instruction:\nAdd\n\n### Response:\n", "3");
    EXPECT("{\"instruction\":\"Add\",\"input\":\"1 2\",\"output\":\"3\"}", NULL, talpaca,
           "Below is an instruction that describes a task, paired with an input that provides further "
           "context. Write a response that appropriately completes the request.\n\n### Instruction:\nAdd\n\n"
           "### Input:\n1 2\n\n### Response:\n", "3");
}

TEST(prompt_completion_and_text)
{
    EXPECT("{\"prompt\":\"Say hi\",\"completion\":\"hi\"}", NULL, NULL,
           "### Instruction:\nSay hi\n\n### Response:\n", "hi");
    EXPECT("{\"prompt\":\"Say hi\",\"completion\":\"hi\"}", NULL, traw, "Say hi", "hi");
    EXPECT("{\"text\":\"Once upon a time.\"}", NULL, NULL, "", "Once upon a time.");
}

TEST(chat_messages_and_sharegpt)
{
    EXPECT("{\"messages\":[{\"role\":\"user\",\"content\":\"Hi?\"},{\"role\":\"assistant\",\"content\":\"Hello.\"}]}",
           NULL, NULL, "### Instruction:\nHi?\n\n### Response:\n", "Hello.");
    EXPECT("{\"messages\":[{\"role\":\"system\",\"content\":\"Be brief.\"},{\"role\":\"user\",\"content\":\"Hi?\"},"
           "{\"role\":\"assistant\",\"content\":\"Hello.\"}]}",
           NULL, NULL, "Be brief.\n\n### Instruction:\nHi?\n\n### Response:\n", "Hello.");
    EXPECT("{\"conversations\":[{\"from\":\"human\",\"value\":\"Q1\"},{\"from\":\"gpt\",\"value\":\"A1\"},"
           "{\"from\":\"human\",\"value\":\"Q2\"},{\"from\":\"gpt\",\"value\":\"A2\"}]}",
           NULL, NULL,
           "### Instruction:\nQ1\n\n### Response:\nA1\n\n### Instruction:\nQ2\n\n### Response:\n", "A2");
}

TEST(field_overrides)
{
    pp_fields f = {.instruction = "q", .response = "a", .input = "ctx"};
    EXPECT("{\"q\":\"Why?\",\"ctx\":\"because\",\"a\":\"So.\",\"question\":\"ignored\"}", &f, NULL,
           "### Instruction:\nWhy?\n\n### Input:\nbecause\n\n### Response:\n", "So.");
    pp_fields t = {.text = "body"};
    EXPECT("{\"body\":\"plain\",\"question\":\"ignored\"}", &t, NULL, "", "plain");
    pp_fields sg = {.messages = "turns"};
    EXPECT("{\"turns\":[{\"from\":\"human\",\"value\":\"u\"},{\"from\":\"gpt\",\"value\":\"a\"}]}", &sg,
           NULL, "### Instruction:\nu\n\n### Response:\n", "a");
    pp_fields m = {.messages = "chat"};
    EXPECT("{\"chat\":[{\"role\":\"user\",\"content\":\"u\"},{\"role\":\"assistant\",\"content\":\"a\"}]}", &m,
           NULL, "### Instruction:\nu\n\n### Response:\n", "a");
}

TEST(custom_templates)
{
    pp_template *t;
    CHECK_STATUS(pp_template_custom(&t, "<Q>{instruction}</Q>\\n{input}<A>{response}</A>\\n", 1), PP_OK);
    EXPECT("{\"question\":\"x\",\"answer\":\"y\"}", NULL, t, "<Q>x</Q>\n<A>", "y</A>\n");
    EXPECT("{\"conversations\":[{\"from\":\"human\",\"value\":\"1\"},{\"from\":\"gpt\",\"value\":\"2\"},"
           "{\"from\":\"human\",\"value\":\"3\"},{\"from\":\"gpt\",\"value\":\"4\"}]}",
           NULL, t, "<Q>1</Q>\n<A>2</A>\n<Q>3</Q>\n<A>", "4</A>\n");
    pp_buf p = {0};
    CHECK_STATUS(pp_template_prompt(t, "Who?", 4, &p), PP_OK);
    CHECK(p.p && strcmp(p.p, "<Q>Who?</Q>\n<A>") == 0);
    pp_buf_free(&p);
    pp_template_free(t);
    CHECK_STATUS(pp_template_custom(&t, "raw \\n kept", 0), PP_E_USAGE);
    CHECK_STATUS(pp_template_custom(&t, "{instruction}{instruction}", 0), PP_E_USAGE);
    CHECK_STATUS(pp_template_custom(&t, "{response}{instruction}", 0), PP_E_USAGE);
    CHECK_STATUS(pp_template_custom(&t, "{instruction}\\n", 0), PP_OK); /* verbatim: no unescape */
    pp_buf q = {0};
    pp_template_prompt(t, "a", 1, &q);
    CHECK(q.p && strcmp(q.p, "a\\n") == 0);
    pp_buf_free(&q);
    pp_template_free(t);
    CHECK_STATUS(pp_template_builtin(&t, "chatml"), PP_E_USAGE);
}

TEST(bad_records_name_the_field)
{
    EXPECT_BAD("[1,2]", NULL, NULL, "record is an array, expected an object");
    EXPECT_BAD("{\"question\":42,\"answer\":\"x\"}", NULL, NULL, "field \"question\" is a number, expected a string");
    EXPECT_BAD("{\"question\":\"q\",\"answer\":[\"x\"]}", NULL, NULL, "field \"answer\" is an array");
    EXPECT_BAD("{\"question\":\"q\"}", NULL, NULL, "but no answer field");
    EXPECT_BAD("{\"question\":\"\",\"answer\":\"a\"}", NULL, NULL, "field \"question\" is empty");
    EXPECT_BAD("{\"question\":\"q\",\"answer\":\"\"}", NULL, NULL, "field \"answer\" is empty");
    EXPECT_BAD("{\"title\":\"q\",\"body\":\"a\"}", NULL, NULL, "no usable field");
    EXPECT_BAD("{\"text\":true}", NULL, NULL, "field \"text\" is a boolean");
    EXPECT_BAD("{\"messages\":{}}", NULL, NULL, "expected an array");
    EXPECT_BAD("{\"messages\":[{\"role\":\"user\",\"content\":\"u\"}]}", NULL, NULL, "does not end with an assistant turn");
    EXPECT_BAD("{\"messages\":[{\"role\":\"robot\",\"content\":\"u\"}]}", NULL, NULL, "unknown role \"robot\"");
    EXPECT_BAD("{\"messages\":[{\"role\":\"user\",\"content\":1}]}", NULL, NULL, "messages[0] needs string fields");
    EXPECT_BAD("{\"messages\":[{\"role\":\"assistant\",\"content\":\"a\"}]}", NULL, NULL, "without a user turn");
    pp_fields f = {.instruction = "q"};
    EXPECT_BAD("{\"question\":\"x\",\"answer\":\"y\"}", &f, NULL, "record has no field \"q\"");
}

/* Reads all records of text through pp_jsonl; returns the first failure and
 * the number of good records before it; skips skippable errors if asked. */
static pp_status read_all(const char *text, int skip, int *good, int *skipped)
{
    pp_reader *r;
    pp_jsonl *jl;
    *good = *skipped = 0;
    pp_reader_open_mem(&r, text, strlen(text));
    pp_jsonl_open(&jl, r);
    pp_status s;
    for (;;) {
        cJSON *rec;
        s = pp_jsonl_next(jl, &rec);
        if (s != PP_OK && skip && pp_jsonl_can_skip(jl)) {
            ++*skipped;
            continue;
        }
        if (s != PP_OK || !rec) break;
        ++*good;
    }
    pp_jsonl_close(jl);
    pp_reader_close(r);
    return s;
}

TEST(jsonl_and_arrays_with_positions)
{
    int good, skipped;
    CHECK_STATUS(read_all("{\"a\":1}\n\n  \n{\"b\":2}\r\n{\"c\":3}", 0, &good, &skipped), PP_OK);
    CHECK(good == 3);
    CHECK_STATUS(read_all("\xEF\xBB\xBF{\"a\":1}\n", 0, &good, &skipped), PP_OK);
    CHECK(good == 1);
    CHECK_STATUS(read_all("{\"a\":1}\n{\"b\":\n{\"c\":3}\n", 0, &good, &skipped), PP_E_DATA);
    CHECK(good == 1 && strstr(pp_errmsg(), "invalid JSON") && strstr(pp_errmsg(), "(line 2)"));
    CHECK_STATUS(read_all("{\"a\":1}\n{\"b\":\n{\"c\":3}\n", 1, &good, &skipped), PP_OK);
    CHECK(good == 2 && skipped == 1);
    CHECK_STATUS(read_all("{\"a\":1}\n{\"b\":\"\xC3\x28\"}\n", 0, &good, &skipped), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "invalid UTF-8 at column 7 (line 2)") != NULL);
    CHECK_STATUS(read_all("{\"a\":1} {\"b\":2}\n", 0, &good, &skipped), PP_E_DATA);
    CHECK_STATUS(read_all("\n\n[ {\"a\":1},\n {\"b\":2} ]\n", 0, &good, &skipped), PP_OK);
    CHECK(good == 2);
    CHECK_STATUS(read_all("[]", 0, &good, &skipped), PP_OK);
    CHECK(good == 0);
    CHECK_STATUS(read_all("\n[ {\"a\":1},\n {\"b\":2,}\n]", 0, &good, &skipped), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "invalid JSON (line 3)") != NULL);
    CHECK_STATUS(read_all("[{\"a\":\"\xFF\"}]", 1, &good, &skipped), PP_E_DATA); /* a broken array cannot be skipped */
    CHECK(strstr(pp_errmsg(), "invalid UTF-8 (line 1)") != NULL);
    CHECK_STATUS(read_all("", 0, &good, &skipped), PP_OK);
    CHECK(good == 0);
}

TEST(large_array_spanning_many_buffers)
{
    pp_buf doc = {0};
    pp_buf_adds(&doc, "[\n{\"question\": \"first\", \"answer\": \"one\"},\n"); /* "[" alone first, as json.dump(indent=2) writes */
    for (int i = 0; i < 20000; i++)
        pp_buf_printf(&doc, " {\"question\": \"q%d\", \"answer\": \"a%d\"},\n", i, i);
    pp_buf_adds(&doc, " {\"question\": \"last\", \"answer\": \"end\"}]\n");
    int good, skipped;
    CHECK(doc.len > 500000);
    CHECK_STATUS(read_all(doc.p, 0, &good, &skipped), PP_OK);
    CHECK(good == 20002);
    pp_buf_free(&doc);
}

TEST(record_numbers_in_arrays)
{
    pp_reader *r;
    pp_jsonl *jl;
    const char *text = "[{\"a\":1},{\"b\":2},{\"c\":3}]";
    pp_reader_open_mem(&r, text, strlen(text));
    pp_jsonl_open(&jl, r);
    cJSON *rec;
    for (int i = 1; i <= 3; i++) {
        CHECK_STATUS(pp_jsonl_next(jl, &rec), PP_OK);
        char want[32];
        snprintf(want, sizeof want, "record %d", i);
        CHECK(rec && strcmp(pp_jsonl_where(jl), want) == 0);
    }
    CHECK_STATUS(pp_jsonl_next(jl, &rec), PP_OK);
    CHECK(rec == NULL);
    pp_jsonl_close(jl);
    pp_reader_close(r);
}

int main(void)
{
    pp_template_builtin(&tdefault, "default");
    pp_template_builtin(&talpaca, "alpaca");
    pp_template_builtin(&traw, "raw");
    RUN(classic_question_answer_is_byte_for_byte);
    RUN(alpaca_with_and_without_input);
    RUN(prompt_completion_and_text);
    RUN(chat_messages_and_sharegpt);
    RUN(field_overrides);
    RUN(custom_templates);
    RUN(bad_records_name_the_field);
    RUN(jsonl_and_arrays_with_positions);
    RUN(large_array_spanning_many_buffers);
    RUN(record_numbers_in_arrays);
    pp_template_free(tdefault);
    pp_template_free(talpaca);
    pp_template_free(traw);
    return tests_failed ? 1 : 0;
}
