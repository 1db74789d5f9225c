/* Llama 3.x configurations against Hugging Face transformers: RoPE scaled
 * as "llama3" (factor 8, low 1, high 4, original length 64) and "linear"
 * (factor 4) on a tiny random model with GQA, head_dim 48 given apart from
 * dim / heads and an untied head. The inverse frequencies bit for bit; the
 * logits of positions past the original length within 1e-4 of the largest,
 * whole sequences, in chunks and token by token; greedy decoding token for
 * token; the eos list of config.json and generation_config.json; the
 * config.json pp-merge writes from parsed values. Fixtures: gen_llama3.py.
 *
 * With arguments, for the CLI tests:
 *   test_llama3 config DIR   DIR/config.json (a merged model's) says what
 *                            tests/fixtures/llama3/tiny's says: RoPE, eos ids */
#include <math.h>
#include <unistd.h>

#include "check.h"
#include "llama.h"
#include "merge.h"
#include "safetensors.h"
#include "sample.h"
#include "stream.h"

#define TOL 1e-4
#define DIR3 "tests/fixtures/llama3/"

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

/* max |a - b| over n values (NaN counts), and max |b| */
static double max_diff(const float *a, const float *b, size_t n, double *mx)
{
    double d = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)a[i] - b[i]) <= d)) d = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > *mx) *mx = fabs(b[i]);
    }
    return d;
}

static const char *dir_of(const char *name) { return strcmp(name, "llama3") ? DIR3 "linear" : DIR3 "tiny"; }

TEST(inv_freq_equals_transformers)
{
    static const char *const names[] = {"llama3", "linear"};
    for (int k = 0; k < 2; k++) {
        pp_llama m;
        CHECK_STATUS(pp_llama_load(&m, dir_of(names[k])), PP_OK);
        if (check_failed) return;
        size_t n;
        const float *want = fx(names[k], "inv_freq", &n);
        CHECK(n == (size_t)m.cfg.head_dim / 2 && m.cfg.head_dim == 48);
        CHECK(m.cfg.rope_type == (k ? PP_ROPE_LINEAR : PP_ROPE_LLAMA3));
        float got[64];
        pp_config_inv_freq(&m.cfg, got);
        int same = 0;
        for (size_t j = 0; j < n; j++) same += memcmp(&got[j], &want[j], sizeof *got) == 0;
        if (same != (int)n) {
            fprintf(stderr, "  %s: %d of %zu inverse frequencies bit for bit\n", names[k], same, n);
            for (size_t j = 0; j < n; j++)
                if (got[j] != want[j]) fprintf(stderr, "    [%zu] %.9g, transformers %.9g\n", j, got[j], want[j]);
            check_failed = 1;
        }
        pp_llama_free(&m);
    }
}

/* Plain RoPE: the table is what rope computed before it took one. */
TEST(plain_table_is_the_old_formula)
{
    pp_config c = {.head_dim = 48, .rope_theta = 500000.0f, .rope_factor = 1};
    float t[24];
    pp_config_inv_freq(&c, t);
    for (int j = 0; j < 24; j++) CHECK(t[j] == 1.0f / powf(500000.0f, (float)(2 * j) / 48.0f));
}

static void check_logits(const char *name)
{
    pp_llama m;
    CHECK_STATUS(pp_llama_load(&m, dir_of(name)), PP_OK);
    if (check_failed) return;
    size_t n_ids, n_logits;
    const int32_t *ids32 = fx(name, "input_ids", &n_ids);
    const float *want = fx(name, "logits", &n_logits), *want_step = fx(name, "step_logits", NULL);
    int V = m.cfg.vocab, S = 2, T = (int)n_ids / S, K = (int)(n_logits / S / V); /* the last K positions */
    CHECK(T == 96 && K == 24 && !m.cfg.tie_embeddings && m.cfg.n_kv_heads == 2);
    if (check_failed) return;
    uint32_t ids[96];
    float *got = malloc((size_t)T * V * sizeof *got);
    double worst = 0, mx = 0;
    int batches[3] = {96, 7, 1};
    for (int s = 0; s < S; s++)
        for (int b = 0; b < (s ? 1 : 3); b++) {
            pp_infer inf;
            CHECK_STATUS(pp_infer_init(&inf, &m, be, T, batches[b]), PP_OK);
            for (int i = 0; i < T; i++) ids[i] = (uint32_t)ids32[s * T + i];
            if (b < 2) {
                CHECK_STATUS(pp_infer_forward(&inf, ids, T, got, 1), PP_OK);
            } else {
                for (int i = 0; i < T; i++) CHECK_STATUS(pp_infer_forward(&inf, ids + i, 1, got + (size_t)i * V, 0), PP_OK);
            }
            const float *w = b < 2 ? want + (size_t)s * K * V : want_step;
            double m1 = 0, d = max_diff(got + (size_t)(T - K) * V, w, (size_t)K * V, &m1);
            fprintf(stderr, "  %s, sequence %d, batch %d: max |diff| %.3g, relative %.2e\n", name, s, batches[b], d, d / m1);
            if (!(d / m1 < TOL)) check_failed = 1;
            if (d > worst) worst = d;
            if (m1 > mx) mx = m1;
            pp_infer_free(&inf);
        }
    fprintf(stderr, "  %s: largest |diff| %.3g of logits up to %.3g\n", name, worst, mx);
    free(got);
    pp_llama_free(&m);
}

TEST(logits_llama3) { check_logits("llama3"); }
TEST(logits_linear) { check_logits("linear"); }

/* pp's greedy tokens from the prompt, total long (prompt included). */
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

static void check_greedy(const char *name)
{
    pp_llama m;
    CHECK_STATUS(pp_llama_load(&m, dir_of(name)), PP_OK);
    if (check_failed) return;
    size_t np, n;
    const int32_t *p32 = fx(name, "prompt_ids", &np), *want = fx(name, "greedy_ids", &n);
    uint32_t prompt[128], out[256];
    CHECK(np < 128 && n < 256 && (int)n > m.cfg.rope_orig_max);
    if (check_failed) return;
    for (size_t i = 0; i < np; i++) prompt[i] = (uint32_t)p32[i];
    greedy(&m, prompt, (int)np, out, (int)n);
    size_t same = 0;
    while (same < n && out[same] == (uint32_t)want[same]) same++;
    fprintf(stderr, "  %s: %zu of %zu new tokens as transformers'\n", name, same - np, n - np);
    CHECK(same == n);
    pp_llama_free(&m);
}

TEST(greedy_llama3) { check_greedy("llama3"); }
TEST(greedy_linear) { check_greedy("linear"); }

/* config.json's eos list; generation_config.json's added to config.json's one id. */
TEST(eos_lists)
{
    size_t n;
    const int32_t *ge = fx("llama3", "greedy_eos_ids", &n);
    for (int k = 0; k < 2; k++) {
        pp_llama m;
        CHECK_STATUS(pp_llama_load(&m, k ? DIR3 "linear" : DIR3 "tiny"), PP_OK);
        if (check_failed) return;
        CHECK(m.cfg.n_eos == 3 && m.cfg.eos_id == 2 && m.cfg.eos_ids[0] == 2 && m.cfg.eos_ids[1] == 300);
        CHECK(m.cfg.eos_ids[2] == ge[n - 1] && pp_config_is_eos(&m.cfg, ge[n - 1]) && !pp_config_is_eos(&m.cfg, 3));
        pp_llama_free(&m);
    }
    size_t len;
    char *text = slurp(DIR3 "linear/config.json", &len);
    pp_config c;
    CHECK_STATUS(pp_config_parse(&c, text, len), PP_OK);
    CHECK(c.n_eos == 1 && c.eos_id == 2);
    const char *more = "{\"eos_token_id\": [2, 5, 6, 7, 8, 9, 10, 11, 12]}";
    CHECK_STATUS(pp_config_generation(&c, more, strlen(more)), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "more than 8 eos token ids") != NULL);
    const char *bad = "{\"eos_token_id\": [2, 512]}";
    CHECK_STATUS(pp_config_parse(&c, text, len), PP_OK);
    CHECK_STATUS(pp_config_generation(&c, bad, strlen(bad)), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "generation_config.json: \"eos_token_id\"") != NULL);
    free(text);
}

/* config.json text with "@" replaced by rope (and a top-level rope_theta). */
static pp_status parse_with(pp_config *c, const char *rope)
{
    char json[1024];
    snprintf(json, sizeof json,
             "{\"architectures\": [\"LlamaForCausalLM\"], \"hidden_size\": 64, \"intermediate_size\": 128, "
             "\"num_hidden_layers\": 2, \"num_attention_heads\": 4, \"vocab_size\": 512, \"max_position_embeddings\": 256, "
             "\"eos_token_id\": [2, 3, 4], %s}",
             rope);
    return pp_config_parse(c, json, strlen(json));
}

TEST(rope_configurations)
{
    pp_config a, b;
    /* transformers 4's layout says what transformers 5's does */
    CHECK_STATUS(parse_with(&a, "\"rope_theta\": 500000.0, \"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, "
                                "\"low_freq_factor\": 1.0, \"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64}"),
                 PP_OK);
    CHECK_STATUS(parse_with(&b, "\"rope_parameters\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                                "\"high_freq_factor\": 4.0, \"original_max_position_embeddings\": 64, \"rope_theta\": 500000.0}"),
                 PP_OK);
    CHECK(a.rope_type == PP_ROPE_LLAMA3 && b.rope_type == PP_ROPE_LLAMA3 && a.rope_theta == 500000.0f &&
          b.rope_theta == 500000.0f && a.rope_orig_max == 64 && b.rope_orig_max == 64 && a.rope_factor == 8);
    CHECK(a.n_eos == 3 && a.eos_id == 2 && a.eos_ids[2] == 4);
    /* both layouts at once: the same, or refused */
    CHECK_STATUS(parse_with(&a, "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4}, "
                                "\"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 4, \"rope_theta\": 10000}"),
                 PP_OK);
    CHECK(a.rope_type == PP_ROPE_LINEAR && a.rope_factor == 4 && a.rope_theta == 10000.0f);
    CHECK_STATUS(parse_with(&a, "\"rope_scaling\": {\"type\": \"linear\", \"factor\": 4}, "
                                "\"rope_parameters\": {\"rope_type\": \"linear\", \"factor\": 2, \"rope_theta\": 10000}"),
                 PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "rope_scaling and rope_parameters disagree") != NULL);
    /* llama3 without its pre-training length: max_position_embeddings, as transformers */
    CHECK_STATUS(parse_with(&a, "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0, "
                                "\"high_freq_factor\": 4.0}"),
                 PP_OK);
    CHECK(a.rope_orig_max == 256);
    /* plain */
    CHECK_STATUS(parse_with(&a, "\"rope_scaling\": null, \"rope_parameters\": {\"rope_type\": \"default\", \"rope_theta\": 1e4}"),
                 PP_OK);
    CHECK(a.rope_type == PP_ROPE_DEFAULT);
    /* refused by name */
    CHECK_STATUS(parse_with(&a, "\"rope_scaling\": {\"rope_type\": \"yarn\", \"factor\": 4.0}"), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "rope_scaling \"yarn\" is not implemented") != NULL);
    CHECK_STATUS(parse_with(&a, "\"rope_parameters\": {\"rope_type\": \"dynamic\", \"factor\": 2.0}"), PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "rope_parameters \"dynamic\" is not implemented") != NULL);
    CHECK_STATUS(parse_with(&a, "\"rope_scaling\": {\"rope_type\": \"llama3\", \"factor\": 8.0, \"low_freq_factor\": 1.0}"),
                 PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "rope_scaling without \"high_freq_factor\"") != NULL);
    CHECK_STATUS(parse_with(&a, "\"rope_scaling\": {\"rope_type\": \"linear\", \"factor\": -1}"), PP_E_DATA);
    CHECK_STATUS(parse_with(&a, "\"rope_scaling\": {\"factor\": 2}"), PP_E_DATA);
    CHECK_STATUS(parse_with(&a, "\"rope_parameters\": {\"rope_type\": \"default\", \"partial_rotary_factor\": 0.5}"),
                 PP_E_DATA);
    CHECK(strstr(pp_errmsg(), "partial_rotary_factor") != NULL);
    CHECK_STATUS(parse_with(&a, "\"partial_rotary_factor\": 0.5"), PP_E_DATA);
    CHECK_STATUS(parse_with(&a, "\"partial_rotary_factor\": 1.0"), PP_OK);
}

/* Two configurations say the same about RoPE and eos. */
static int same_rope_eos(const pp_config *a, const pp_config *b)
{
    return a->rope_type == b->rope_type && a->rope_theta == b->rope_theta && a->rope_factor == b->rope_factor &&
           a->rope_low_freq == b->rope_low_freq && a->rope_high_freq == b->rope_high_freq &&
           a->rope_orig_max == b->rope_orig_max && a->n_eos == b->n_eos &&
           !memcmp(a->eos_ids, b->eos_ids, sizeof a->eos_ids) && a->head_dim == b->head_dim &&
           a->tie_embeddings == b->tie_embeddings;
}

/* pp-merge's config.json for a base read from standard input, made from the
 * parsed values: the scaling and the eos list come through. */
TEST(merge_config_from_parsed_values)
{
    static const char *const dirs[] = {DIR3 "tiny/config.json", DIR3 "linear/config.json"};
    for (int k = 0; k < 2; k++) {
        size_t len;
        char *text = slurp(dirs[k], &len), *json = NULL;
        pp_config a, b;
        CHECK_STATUS(pp_config_parse(&a, text, len), PP_OK);
        if (!k) CHECK(a.n_eos == 3);
        CHECK_STATUS(pp_merge_config_json(&json, "-", &a, "float32"), PP_OK);
        if (check_failed) return;
        CHECK_STATUS(pp_config_parse(&b, json, strlen(json)), PP_OK);
        CHECK(same_rope_eos(&a, &b));
        float x[24], y[24];
        pp_config_inv_freq(&a, x);
        pp_config_inv_freq(&b, y);
        CHECK(!memcmp(x, y, sizeof x));
        free(json);
        free(text);
    }
}

static int cmd_config(const char *dir)
{
    char path[512];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t n1, n2;
    char *t1 = slurp(DIR3 "tiny/config.json", &n1), *t2 = slurp(path, &n2);
    pp_config a, b;
    int ok = pp_config_parse(&a, t1, n1) == PP_OK && pp_config_parse(&b, t2, n2) == PP_OK && same_rope_eos(&a, &b) &&
             b.rope_type == PP_ROPE_LLAMA3 && b.n_eos == 3;
    printf("%s merged_config_keeps_rope_and_eos (%s)\n", ok ? "ok" : "FAIL", path);
    free(t1);
    free(t2);
    return !ok;
}

int main(int argc, char **argv)
{
    if (argc == 3 && !strcmp(argv[1], "config")) return cmd_config(argv[2]);
    pp_reader *r;
    if (pp_reader_open(&r, DIR3 "logits.safetensors") != PP_OK || pp_st_open(&st, r) != PP_OK) {
        fprintf(stderr, "fixture: %s\n", pp_errmsg());
        return 2;
    }
    data = malloc(pp_st_data_size(st) + 1);
    for (size_t i = 0; i < pp_st_count(st); i++) pp_st_read(st, pp_st_tensor(st, i), data + pp_st_tensor(st, i)->begin);
    pp_backend_cpu(&be, 2);
    RUN(inv_freq_equals_transformers);
    RUN(plain_table_is_the_old_formula);
    RUN(logits_llama3);
    RUN(logits_linear);
    RUN(greedy_llama3);
    RUN(greedy_linear);
    RUN(eos_lists);
    RUN(rope_configurations);
    RUN(merge_config_from_parsed_values);
    pp_backend_free(be);
    pp_st_close(st);
    pp_reader_close(r);
    free(data);
    return tests_failed ? 1 : 0;
}
