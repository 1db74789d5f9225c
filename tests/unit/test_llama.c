/* The forward pass against Hugging Face transformers: full-sequence and
 * cached step-by-step logits of a tiny random Llama (fp32 and bf16 weights,
 * GQA, untied head, rope_theta 500000) and of the real stories260K, within
 * 1e-4 relative to the largest logit; greedy generation on stories260K token
 * for token; an NF4 model close to the original. Fixtures: gen_llama.py. */
#include <math.h>
#include <unistd.h>

#include "check.h"
#include "llama.h"
#include "safetensors.h"
#include "sample.h"
#include "stream.h"

#define TOL 1e-4

static pp_st_reader *st;
static unsigned char *data;
static pp_backend *be;

static const void *fx(const char *model, const char *what, size_t *count)
{
    char name[128];
    snprintf(name, sizeof name, "%s.%s", model, what);
    const pp_tensor_info *t = pp_st_find(st, name);
    if (!t) {
        fprintf(stderr, "  fixture %s missing\n", name);
        exit(2);
    }
    if (count) *count = (size_t)t->nelem;
    return data + t->begin;
}

/* max |a - b| / max |b| over n values */
static double rel_err(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)a[i] - b[i]) <= d)) d = fabs((double)a[i] - b[i]); /* NaN counts */
        if (fabs(b[i]) > m) m = fabs(b[i]);
    }
    return m > 0 ? d / m : d;
}

static void check_logits(const char *name, const char *path)
{
    pp_llama m;
    CHECK_STATUS(pp_llama_load(&m, path), PP_OK);
    if (check_failed) return;
    size_t T;
    const int32_t *ids32 = fx(name, "input_ids", &T);
    const float *want = fx(name, "logits", NULL), *want_step = fx(name, "step_logits", NULL);
    int V = m.cfg.vocab;
    uint32_t ids[64];
    for (size_t i = 0; i < T; i++) ids[i] = (uint32_t)ids32[i];
    float *got = malloc(T * V * sizeof *got);
    /* one call for the whole sequence, in chunks of 5 (chunk boundaries), and token by token */
    int batches[3] = {64, 5, 1};
    for (int b = 0; b < 3; b++) {
        pp_infer s;
        CHECK_STATUS(pp_infer_init(&s, &m, be, 64, batches[b]), PP_OK);
        for (int k = 0; k < 6; k++) got[k] = NAN;
        if (b < 2) {
            CHECK_STATUS(pp_infer_forward(&s, ids, (int)T, got, 1), PP_OK);
        } else {
            for (size_t i = 0; i < T; i++) CHECK_STATUS(pp_infer_forward(&s, ids + i, 1, got + i * V, 0), PP_OK);
        }
        double e = rel_err(got, b < 2 ? want : want_step, T * V);
        fprintf(stderr, "  %s, batch %d: relative error %.2e\n", name, batches[b], e);
        if (!(e < TOL)) {
            fprintf(stderr, "  %s (batch %d): relative error %.3g\n", name, batches[b], e);
            check_failed = 1;
        }
        pp_infer_free(&s);
    }
    free(got);
    pp_llama_free(&m);
}

TEST(logits_tiny_f32) { check_logits("tiny", "tests/fixtures/llama/tiny"); }
TEST(logits_tiny_sharded) { check_logits("tiny", "tests/fixtures/llama/tiny-sharded"); }
TEST(logits_tiny_bf16) { check_logits("tiny-bf16", "tests/fixtures/llama/tiny-bf16"); }
TEST(logits_stories260K) { check_logits("stories260K", "../shared/models/stories260K"); }

static void greedy(const pp_llama *m, const uint32_t *prompt, int np, uint32_t *out, int total)
{
    pp_infer s;
    pp_sampler smp = {0};
    CHECK_STATUS(pp_infer_init(&s, m, be, total + 1, 64), PP_OK);
    pp_sampler_init(&smp, m->cfg.vocab, 0);
    float *logits = malloc((size_t)m->cfg.vocab * sizeof *logits);
    memcpy(out, prompt, (size_t)np * sizeof *out);
    CHECK_STATUS(pp_infer_forward(&s, out, np, logits, 0), PP_OK);
    for (int i = np; i < total; i++) {
        out[i] = pp_sample(&smp, logits, out, i);
        if (i + 1 < total) pp_infer_forward(&s, out + i, 1, logits, 0);
    }
    free(logits);
    pp_sampler_free(&smp);
    pp_infer_free(&s);
}

TEST(greedy_generation_equals_transformers)
{
    pp_llama m;
    CHECK_STATUS(pp_llama_load(&m, "../shared/models/stories260K"), PP_OK);
    if (check_failed) return;
    size_t n, np, no;
    const int32_t *want = fx("stories260K", "greedy_ids", &n);
    const int32_t *p32 = fx("stories260K", "greedy_prompt_ids", &np), *w2 = fx("stories260K", "greedy_prompt_out", &no);
    uint32_t out[512], bos = 1, prompt[16];
    CHECK(n >= 201 && no >= 200);
    greedy(&m, &bos, 1, out, (int)n);
    size_t same = 0;
    while (same < n && out[same] == (uint32_t)want[same]) same++;
    if (same != n) fprintf(stderr, "  from BOS: the first %zu of %zu tokens agree\n", same, n);
    CHECK(same == n);
    for (size_t i = 0; i < np; i++) prompt[i] = (uint32_t)p32[i];
    greedy(&m, prompt, (int)np, out, (int)no);
    same = 0;
    while (same < no && out[same] == (uint32_t)w2[same]) same++;
    CHECK(same == no);
    pp_llama_free(&m);
}

/* stories260K through pp-quantize with the given options, loaded. */
static pp_status quantized(pp_llama *m, const char *opts)
{
    char cmd[512], path[] = "/tmp/pp-test-llama-XXXXXX";
    close(mkstemp(path));
    snprintf(cmd, sizeof cmd, "%s/pp-quantize -q %s -o %s ../shared/models/stories260K", getenv("BIN") ? getenv("BIN") : "bin",
             opts, path);
    pp_status s = system(cmd) == 0 ? pp_llama_load(m, path) : pp_fail(PP_E_INTERNAL, "%s failed", cmd);
    unlink(path);
    return s;
}

/* The NF4 model from pp-quantize stays close to the original: a relative L2
 * error of the logits near NF4's weight error and mostly the same argmax. */
TEST(nf4_logits_close_to_the_original)
{
    pp_llama m;
    CHECK_STATUS(quantized(&m, ""), PP_OK);
    if (check_failed) return;
    CHECK(strcmp(m.quant, "nf4") == 0 && m.layers[0].wq.type == PP_W_NF4);
    size_t T;
    const int32_t *ids32 = fx("stories260K", "input_ids", &T);
    const float *want = fx("stories260K", "logits", NULL);
    uint32_t ids[64];
    for (size_t i = 0; i < T; i++) ids[i] = (uint32_t)ids32[i];
    int V = m.cfg.vocab;
    float *got = malloc(T * V * sizeof *got);
    pp_infer s;
    CHECK_STATUS(pp_infer_init(&s, &m, be, 64, 64), PP_OK);
    CHECK_STATUS(pp_infer_forward(&s, ids, (int)T, got, 1), PP_OK);
    double e2 = 0, r2 = 0;
    int agree = 0;
    for (size_t t = 0; t < T; t++) {
        int a = 0, b = 0;
        for (int j = 0; j < V; j++) {
            e2 += ((double)got[t * V + j] - want[t * V + j]) * ((double)got[t * V + j] - want[t * V + j]);
            r2 += (double)want[t * V + j] * want[t * V + j];
            if (got[t * V + j] > got[t * V + a]) a = j;
            if (want[t * V + j] > want[t * V + b]) b = j;
        }
        agree += a == b;
    }
    fprintf(stderr, "  nf4: relative L2 error of the logits %.3f, argmax agrees on %d of %zu\n", sqrt(e2 / r2), agree, T);
    CHECK(sqrt(e2 / r2) < 0.25 && sqrt(e2 / r2) > 0.001);
    CHECK(agree >= (int)T * 3 / 4);
    pp_infer_free(&s);
    free(got);
    pp_llama_free(&m);
}

/* Weights stored as f16 or bf16 (pp-quantize -t f16 --dtype f16): the
 * logits move only by the rounding of the weights. */
TEST(half_precision_weights)
{
    const char *types[2] = {"f16", "bf16"};
    const double tol[2] = {2e-3, 2e-2};
    for (int k = 0; k < 2; k++) {
        char opts[64];
        snprintf(opts, sizeof opts, "-t %s --dtype %s", types[k], types[k]);
        pp_llama m;
        CHECK_STATUS(quantized(&m, opts), PP_OK);
        if (check_failed) return;
        CHECK(m.embed.type == (k ? PP_W_BF16 : PP_W_F16) && m.layers[0].wq.type == m.embed.type);
        size_t T;
        const int32_t *ids32 = fx("stories260K", "input_ids", &T);
        const float *want = fx("stories260K", "logits", NULL);
        uint32_t ids[64];
        for (size_t i = 0; i < T; i++) ids[i] = (uint32_t)ids32[i];
        float *got = malloc(T * m.cfg.vocab * sizeof *got);
        pp_infer s;
        CHECK_STATUS(pp_infer_init(&s, &m, be, 64, 64), PP_OK);
        CHECK_STATUS(pp_infer_forward(&s, ids, (int)T, got, 1), PP_OK);
        double e = rel_err(got, want, T * m.cfg.vocab);
        fprintf(stderr, "  %s weights: relative error of the logits %.2e\n", types[k], e);
        CHECK(e < tol[k] && e > 0);
        pp_infer_free(&s);
        free(got);
        pp_llama_free(&m);
    }
}

/* Decoding (one token: fused and vector kernels reading the stored weight)
 * and prompts (the weight dequantized, then sgemm) compute the same thing. */
TEST(decode_kernels_agree_with_the_prompt_path)
{
    const char *types[3] = {"nf4", "fp4", "bf16"};
    for (int k = 0; k < 3; k++) {
        char opts[64];
        snprintf(opts, sizeof opts, "-t %s", types[k]);
        pp_llama m;
        CHECK_STATUS(quantized(&m, opts), PP_OK);
        if (check_failed) return;
        size_t T;
        const int32_t *ids32 = fx("stories260K", "input_ids", &T);
        uint32_t ids[64];
        for (size_t i = 0; i < T; i++) ids[i] = (uint32_t)ids32[i];
        int V = m.cfg.vocab;
        float *a = malloc(T * V * sizeof *a), *b = malloc(T * V * sizeof *b);
        pp_infer s1, s2;
        CHECK_STATUS(pp_infer_init(&s1, &m, be, 64, 1), PP_OK);
        CHECK_STATUS(pp_infer_init(&s2, &m, be, 64, 64), PP_OK);
        for (size_t i = 0; i < T; i++) CHECK_STATUS(pp_infer_forward(&s1, ids + i, 1, a + i * V, 0), PP_OK);
        CHECK_STATUS(pp_infer_forward(&s2, ids, (int)T, b, 1), PP_OK);
        double e = rel_err(a, b, T * V);
        if (!(e < 1e-5)) {
            fprintf(stderr, "  %s: decode and prompt paths differ by %.3g\n", types[k], e);
            check_failed = 1;
        }
        pp_infer_free(&s1);
        pp_infer_free(&s2);
        free(a);
        free(b);
        pp_llama_free(&m);
    }
}

TEST(context_and_vocabulary_limits)
{
    pp_llama m;
    CHECK_STATUS(pp_llama_load(&m, "tests/fixtures/llama/tiny"), PP_OK);
    if (check_failed) return;
    pp_infer s;
    float logits[1000];
    uint32_t ids[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9}, bad = 1000;
    CHECK_STATUS(pp_infer_init(&s, &m, be, 8, 4), PP_OK);
    CHECK_STATUS(pp_infer_forward(&s, ids, 9, logits, 0), PP_E_DATA);
    CHECK_STATUS(pp_infer_forward(&s, &bad, 1, logits, 0), PP_E_DATA);
    CHECK_STATUS(pp_infer_forward(&s, ids, 8, logits, 0), PP_OK);
    CHECK_STATUS(pp_infer_forward(&s, ids, 1, logits, 0), PP_E_DATA);
    pp_infer_free(&s);
    pp_llama_free(&m);
}

int main(void)
{
    pp_reader *r;
    if (pp_reader_open(&r, "tests/fixtures/llama/logits.safetensors") != PP_OK || pp_st_open(&st, r) != PP_OK) {
        fprintf(stderr, "fixture: %s\n", pp_errmsg());
        return 2;
    }
    data = malloc(pp_st_data_size(st) + 1);
    for (size_t i = 0; i < pp_st_count(st); i++) pp_st_read(st, pp_st_tensor(st, i), data + pp_st_tensor(st, i)->begin);
    pp_backend_cpu(&be, 2);
    RUN(logits_tiny_f32);
    RUN(logits_tiny_sharded);
    RUN(logits_tiny_bf16);
    RUN(logits_stories260K);
    RUN(greedy_generation_equals_transformers);
    RUN(nf4_logits_close_to_the_original);
    RUN(half_precision_weights);
    RUN(decode_kernels_agree_with_the_prompt_path);
    RUN(context_and_vocabulary_limits);
    pp_backend_free(be);
    pp_st_close(st);
    pp_reader_close(r);
    free(data);
    return tests_failed ? 1 : 0;
}
