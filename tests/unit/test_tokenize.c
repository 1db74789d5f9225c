/* Tokenization: ids equal to the Python sentencepiece package's on the real
 * Llama 2 and stories260K tokenizers; the whole pp-format | pp-tokenize
 * pipeline against Python's; token dataset validation; the shim's errors. */
#include <cjson/cJSON.h>
#include <unistd.h>

#include "check.h"
#include "safetensors.h"
#include "spm.h"
#include "stream.h"
#include "tokenizer.h"
#include "tokens.h"

#define MODELS "../shared/models/"
static char dir[] = "/tmp/pp-test-tok-XXXXXX";
static cJSON *cases;

static int ids_equal(const uint32_t *a, size_t n, const cJSON *want)
{
    if ((size_t)cJSON_GetArraySize(want) != n) return 0;
    size_t i = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, want) if ((double)a[i++] != v->valuedouble) return 0;
    return 1;
}

/* Checks both encoders: the library and, where it applies, pp's own. */
static void check_tokenizer(const char *name, const char *path, int want_fast)
{
    pp_tokenizer *tk;
    CHECK_STATUS(pp_tokenizer_load(&tk, path), PP_OK);
    if (!tk) return;
    CHECK((tk->bpe != NULL) == want_fast);
    const pp_spm *sp = tk->spm;
    pp_tok_state *st = NULL;
    const cJSON *c = cJSON_GetObjectItem(cases, name);
    CHECK(pp_spm_vocab_size(sp) == cJSON_GetObjectItem(c, "vocab_size")->valueint);
    CHECK(pp_spm_bos_id(sp) == cJSON_GetObjectItem(c, "bos_id")->valueint);
    CHECK(pp_spm_eos_id(sp) == cJSON_GetObjectItem(c, "eos_id")->valueint);
    uint32_t *ids = NULL;
    size_t cap = 0, n, k = 0;
    const cJSON *tc;
    cJSON_ArrayForEach(tc, cJSON_GetObjectItem(c, "cases")) {
        const char *text = cJSON_GetObjectItem(tc, "text")->valuestring;
        CHECK_STATUS(pp_spm_encode(sp, text, strlen(text), &ids, &cap, &n), PP_OK);
        if (!ids_equal(ids, n, cJSON_GetObjectItem(tc, "ids"))) {
            fprintf(stderr, "  %s case %zu (%.40s): library ids differ from Python's\n", name, k, text);
            check_failed = 1;
        }
        CHECK_STATUS(pp_tokenizer_encode(tk, &st, text, strlen(text), 0, &ids, &cap, &n), PP_OK);
        if (!ids_equal(ids, n, cJSON_GetObjectItem(tc, "ids"))) {
            fprintf(stderr, "  %s case %zu (%.40s): pp's ids differ from Python's\n", name, k, text);
            check_failed = 1;
        }
        k++;
    }
    CHECK(k >= 20);
    free(ids);
    pp_tok_state_free(st);
    pp_tokenizer_free(tk);
}

TEST(ids_match_python_llama2)
{
    check_tokenizer("llama2", MODELS "llama2-tokenizer/tokenizer.model", 1);
}

TEST(ids_match_python_stories260K)
{
    check_tokenizer("stories260K", MODELS "stories260K", 1); /* a model directory */
}

TEST(pipeline_matches_python)
{
    char cmd[1024], out[300];
    snprintf(out, sizeof out, "%s/pp40.tok", dir);
    snprintf(cmd, sizeof cmd,
             "%s/pp-format data/pride_prejudice_ift.json | head -n 40 | "
             "%s/pp-tokenize -q -t " MODELS "llama2-tokenizer/tokenizer.model -o %s",
             getenv("BIN") ? getenv("BIN") : "bin", getenv("BIN") ? getenv("BIN") : "bin", out);
    CHECK(system(cmd) == 0);
    char *fx = slurp("tests/fixtures/pipeline_pp.json", NULL);
    cJSON *want = cJSON_Parse(fx);
    free(fx);
    pp_reader *r;
    pp_tokens t;
    CHECK_STATUS(pp_reader_open(&r, out), PP_OK);
    CHECK(r && pp_reader_is_zstd(r));
    CHECK_STATUS(pp_tokens_read(&t, r), PP_OK);
    if (!check_failed) {
        CHECK(t.n_records == 40 && t.vocab_size == 32000 && t.bos_id == 1 && t.eos_id == 2);
        CHECK(strcmp(t.tokenizer_sha256, "9e556afd44213b6bd1be2b850ebbbd98f5481437a8021afaf58ee7fb1818d347") == 0);
        CHECK(ids_equal(t.tokens, t.n_tokens, cJSON_GetObjectItem(want, "tokens")));
        uint32_t off32[41];
        for (int i = 0; i <= 40; i++) off32[i] = (uint32_t)t.offsets[i];
        CHECK(ids_equal(off32, 41, cJSON_GetObjectItem(want, "offsets")));
        CHECK(ids_equal(t.prompt_lens, 40, cJSON_GetObjectItem(want, "prompt_lens")));
        /* the first trained target is the response's first token, EOS is last */
        CHECK(t.tokens[t.offsets[1] - 1] == 2 && t.tokens[0] == 1 && t.tokens[t.offsets[1]] == 1);
    }
    pp_tokens_free(&t);
    pp_reader_close(r);
    cJSON_Delete(want);
}

/* Writes a dataset from arrays, then reads it back; returns the read status. */
static pp_status round_trip(uint64_t *off, uint32_t *tok, uint32_t *pl, uint64_t nrec, uint64_t ntok, uint32_t vocab)
{
    char path[300];
    snprintf(path, sizeof path, "%s/ds", dir);
    pp_tokens t = {off, tok, pl, NULL, ntok, nrec, vocab, 1, 2, {0}, NULL};
    memset(t.tokenizer_sha256, 'a', 64);
    pp_writer *w;
    pp_status s = pp_writer_open(&w, path, 3);
    if (s == PP_OK) s = pp_tokens_write(w, &t, NULL, 0);
    if (s == PP_OK) s = pp_writer_commit(w);
    else pp_writer_abort(w);
    if (s != PP_OK) return s;
    pp_reader *r;
    pp_tokens back;
    s = pp_reader_open(&r, path);
    if (s == PP_OK) s = pp_tokens_read(&back, r);
    if (s == PP_OK) {
        CHECK(back.n_records == nrec && back.n_tokens == ntok && memcmp(back.tokens, tok, ntok * 4) == 0);
        CHECK(memcmp(back.offsets, off, (nrec + 1) * 8) == 0 && memcmp(back.prompt_lens, pl, nrec * 4) == 0);
        pp_tokens_free(&back);
    }
    pp_reader_close(r);
    return s;
}

TEST(dataset_validation)
{
    uint64_t off[] = {0, 3, 7};
    uint32_t tok[] = {1, 5, 2, 1, 6, 7, 2}, pl[] = {2, 1};
    CHECK_STATUS(round_trip(off, tok, pl, 2, 7, 8), PP_OK);
    CHECK_STATUS(round_trip(off, tok, pl, 0, 0, 8), PP_OK); /* empty dataset */
    CHECK_STATUS(round_trip(off, tok, pl, 2, 7, 7), PP_E_DATA); /* id 7 outside a vocabulary of 7 */
    CHECK(strstr(pp_errmsg(), "outside the vocabulary") != NULL);
    uint32_t pl_bad[] = {4, 1};
    CHECK_STATUS(round_trip(off, tok, pl_bad, 2, 7, 8), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "prompt_lens[0]") != NULL);
    uint64_t off_bad[] = {0, 8, 7};
    CHECK_STATUS(round_trip(off_bad, tok, pl, 2, 7, 8), PP_E_DATA);
    uint64_t off_short[] = {0, 3, 6};
    CHECK_STATUS(round_trip(off_short, tok, pl, 2, 7, 8), PP_E_DATA);
    uint64_t off_1[] = {1, 3, 7};
    CHECK_STATUS(round_trip(off_1, tok, pl, 2, 7, 8), PP_E_DATA);
    /* another kind of file */
    char path[300];
    snprintf(path, sizeof path, "%s/other", dir);
    pp_writer *w;
    pp_writer_open(&w, path, 0);
    const char *kv[] = {"pp.kind", "model"};
    pp_st_write(w, NULL, 0, kv, 1);
    pp_writer_commit(w);
    pp_reader *r;
    pp_tokens t;
    pp_reader_open(&r, path);
    CHECK_STATUS(pp_tokens_read(&t, r), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "not a token dataset") != NULL);
    pp_reader_close(r);
}

/* A small compressed file whose header declares 2^40 records: the input's
 * size is unknown, so nothing may be allocated on the header's word alone. */
TEST(huge_declared_sizes_are_bad_data_not_huge_allocations)
{
    char path[300];
    snprintf(path, sizeof path, "%s/huge.zst", dir);
    uint64_t nrec = 1ull << 40, noff = nrec + 1, zero = 0;
    pp_st_entry e[3] = {{"offsets", PP_U64, 1, &noff, NULL}, {"tokens", PP_U32, 1, &zero, NULL},
                        {"prompt_lens", PP_U32, 1, &nrec, NULL}};
    const char *kv[] = {"pp.kind", "tokens", "pp.version", "1", "tokenizer.sha256",
                        "0000000000000000000000000000000000000000000000000000000000000000", "vocab_size", "32000",
                        "bos_id", "1", "eos_id", "2", "records", "1099511627776"};
    pp_writer *w;
    CHECK_STATUS(pp_writer_open(&w, path, 3), PP_OK);
    CHECK_STATUS(pp_st_write_header(w, e, 3, kv, 7), PP_OK);
    CHECK_STATUS(pp_write(w, "only a few bytes of data", 24), PP_OK);
    CHECK_STATUS(pp_writer_commit(w), PP_OK);
    pp_reader *r;
    pp_tokens t;
    CHECK_STATUS(pp_reader_open(&r, path), PP_OK);
    CHECK_STATUS(pp_tokens_read(&t, r), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "truncated") != NULL);
    pp_reader_close(r);
}

TEST(shim_turns_library_failures_into_statuses)
{
    pp_spm *bad;
    CHECK_STATUS(pp_spm_load(&bad, "definitely not a model", 22), PP_E_DATA);
    CHECK(bad == NULL);
    pp_tokenizer *tk;
    CHECK_STATUS(pp_tokenizer_load(&tk, "/nonexistent/tokenizer.model"), PP_E_NOINPUT);
    CHECK_STATUS(pp_tokenizer_load(&tk, MODELS "stories260K/tokenizer.model"), PP_OK);
    if (!tk) return;
    const pp_spm *sp = tk->spm;
    CHECK(strcmp(tk->sha256, "fec6aa960a1fb3ebf71d26f9b0e486afcbd76c34cf0fbfb93e21126ca9f778d3") == 0);
    uint32_t oob[] = {5, 512};
    char *out = NULL;
    size_t cap = 0, len;
    CHECK_STATUS(pp_spm_decode(sp, oob, 2, &out, &cap, &len), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "out of range") != NULL);
    uint32_t good[] = {403, 407, 261, 378};
    CHECK_STATUS(pp_spm_decode(sp, good, 4, &out, &cap, &len), PP_OK);
    CHECK(out && strcmp(out, "Once upon a time") == 0);
    CHECK(pp_spm_id_to_piece(sp, -1) == NULL && pp_spm_id_to_piece(sp, 512) == NULL);
    CHECK(strcmp(pp_spm_id_to_piece(sp, 1), "<s>") == 0 && pp_spm_is_control(sp, 2) && !pp_spm_is_control(sp, 403));
    CHECK(pp_spm_piece_to_id(sp, "<s>") == 1 && pp_spm_piece_to_id(sp, "<unk>") == 0);
    CHECK(pp_spm_piece_to_id(sp, "no such piece") == -1);
    free(out);
    pp_tokenizer_free(tk);
}

TEST(train_a_tokenizer_and_round_trip)
{
    char corpus[300], model[300];
    snprintf(corpus, sizeof corpus, "%s/corpus.txt", dir);
    snprintf(model, sizeof model, "%s/tok.model", dir);
    FILE *f = fopen(corpus, "w");
    for (int i = 0; i < 300; i++)
        fprintf(f, "Elizabeth Bennet walked %d miles to Netherfield, and Mr. Darcy noticed her eyes.\n", i);
    fclose(f);
    pp_reader *r;
    char *m = NULL;
    size_t n = 0;
    CHECK_STATUS(pp_reader_open(&r, corpus), PP_OK);
    CHECK_STATUS(pp_spm_train(r, 300, 2, &m, &n), PP_OK);
    pp_reader_close(r);
    pp_spm *sp;
    CHECK_STATUS(pp_spm_load(&sp, m, n), PP_OK);
    if (sp) {
        CHECK(pp_spm_vocab_size(sp) == 300 && pp_spm_bos_id(sp) == 1 && pp_spm_eos_id(sp) == 2);
        /* unseen bytes go through byte fallback; whitespace is kept as is */
        const char *text = "  Darcy  walked 42 miles \xe2\x80\x94 caf\xc3\xa9! ";
        uint32_t *ids = NULL;
        size_t cap = 0, cnt, dcap = 0, dlen;
        char *back = NULL;
        CHECK_STATUS(pp_spm_encode(sp, text, strlen(text), &ids, &cap, &cnt), PP_OK);
        CHECK_STATUS(pp_spm_decode(sp, ids, cnt, &back, &dcap, &dlen), PP_OK);
        CHECK(back && strcmp(back, text) == 0);
        free(ids);
        free(back);
        pp_spm_free(sp);
    }
    free(m);
}

int main(void)
{
    if (!mkdtemp(dir)) return 2;
    char *fx = slurp("tests/fixtures/tokenize_cases.json", NULL);
    cases = cJSON_Parse(fx);
    free(fx);
    if (!cases) return 2;
    RUN(ids_match_python_llama2);
    RUN(ids_match_python_stories260K);
    RUN(pipeline_matches_python);
    RUN(dataset_validation);
    RUN(huge_declared_sizes_are_bad_data_not_huge_allocations);
    RUN(shim_turns_library_failures_into_statuses);
    RUN(train_a_tokenizer_and_round_trip);
    cJSON_Delete(cases);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 2;
    return tests_failed ? 1 : 0;
}
