/* Merging a LoRA adapter (common/merge.c) against PEFT's merge_and_unload():
 * the merged weights of tests/fixtures/lora/peft-adapter in
 * tests/fixtures/llama/tiny within a relative L2 error of 1e-6 per tensor
 * (and the check fails when the merge is wrong: scale 0); merged weights
 * give the logits of the adapter applied unmerged; huggingface_hub's shard
 * split; the requantization error. Fixture: gen_merge.py.
 *
 * The CLI tests call it with arguments to check pp-merge's output files:
 *   test_merge ref DIR             DIR (merged tiny, f32) against the fixture,
 *                                  untouched tensors byte for byte against tiny
 *   test_merge logits DIR BASE ADAPTER
 *                                  DIR's logits against BASE with ADAPTER unmerged */
#include <math.h>

#include "check.h"
#include "llama.h"
#include "lora.h"
#include "merge.h"
#include "quant.h"
#include "safetensors.h"
#include "stream.h"

#define TINY "tests/fixtures/llama/tiny"
#define ADAPTER "tests/fixtures/lora/peft-adapter"
#define REF "tests/fixtures/merge/merged_ref.safetensors"
#define TOL 1e-6
#define LOGIT_TOL 1e-5

static pp_backend *be;

/* ‖a − b‖ / ‖b‖ in double; NaN counts as a failure (returns inf). */
static double rel_l2(const float *a, const float *b, size_t n)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)a[i] - b[i];
        d += e * e;
        r += (double)b[i] * b[i];
    }
    double v = r > 0 ? sqrt(d / r) : sqrt(d);
    return v == v ? v : INFINITY;
}

/* The reference file: its header and data in memory. */
typedef struct ref {
    pp_reader *r;
    pp_st_reader *st;
    unsigned char *data;
} ref;

static int ref_open(ref *f)
{
    memset(f, 0, sizeof *f);
    if (pp_reader_open(&f->r, REF) != PP_OK || pp_st_open(&f->st, f->r) != PP_OK) {
        fprintf(stderr, "cannot read %s: %s\n", REF, pp_errmsg());
        exit(2);
    }
    f->data = malloc(pp_st_data_size(f->st) + 1);
    for (size_t i = 0; i < pp_st_count(f->st); i++)
        if (pp_st_read(f->st, pp_st_tensor(f->st, i), f->data + pp_st_tensor(f->st, i)->begin) != PP_OK) exit(2);
    return 0;
}

static void ref_close(ref *f)
{
    pp_st_close(f->st);
    pp_reader_close(f->r);
    free(f->data);
}

/* Merges l into m's adapted tensors and compares each with the fixture;
 * returns the number of tensors within TOL, *compared the number looked at. */
static int compare_to_ref(const pp_llama *m, const pp_lora *l, int *compared, double *worst)
{
    ref f;
    ref_open(&f);
    pp_merge_tensor *t;
    size_t n;
    int good = 0;
    *compared = 0;
    *worst = 0;
    if (pp_merge_list(&t, &n, m, l) != PP_OK) exit(2);
    for (size_t i = 0; i < n; i++) {
        if (t[i].type < 0) continue;
        const pp_tensor_info *ti = pp_st_find(f.st, t[i].name);
        CHECK(ti && ti->dtype == PP_F32 && ti->nelem == t[i].nelem);
        if (!ti || ti->nelem != t[i].nelem) continue;
        float *v = malloc(t[i].nelem * sizeof *v), *d = malloc(t[i].nelem * sizeof *d);
        pp_merge_tensor_values(v, d, &t[i], l);
        double e = rel_l2(v, (const float *)(f.data + ti->begin), (size_t)t[i].nelem);
        if (e > *worst) *worst = e;
        good += e <= TOL;
        (*compared)++;
        free(v);
        free(d);
    }
    free(t);
    ref_close(&f);
    return good;
}

TEST(merge_matches_peft)
{
    pp_llama m;
    pp_lora l;
    CHECK_STATUS(pp_llama_load(&m, TINY), PP_OK);
    CHECK_STATUS(pp_lora_load(&l, &m.cfg, ADAPTER), PP_OK);
    if (check_failed) return;
    int compared;
    double worst;
    int good = compare_to_ref(&m, &l, &compared, &worst);
    CHECK(compared == 14);
    CHECK(good == 14);
    printf("  merged vs merge_and_unload: %d tensors, worst relative L2 error %.3e\n", compared, worst);
    /* the same comparison must fail when the merge is wrong */
    float scale = l.scale;
    l.scale = 0;
    good = compare_to_ref(&m, &l, &compared, &worst);
    CHECK(compared == 14 && good == 0);
    l.scale = scale * 1.001f;
    good = compare_to_ref(&m, &l, &compared, &worst);
    CHECK(compared == 14 && good == 0);
    pp_lora_free(&l);
    pp_llama_free(&m);
}

/* Largest |a − b| over the largest |b|. */
static double rel_max(const float *a, const float *b, size_t n)
{
    double d = 0, mx = 0;
    for (size_t i = 0; i < n; i++) {
        if (!(fabs((double)a[i] - b[i]) <= d)) d = fabs((double)a[i] - b[i]);
        if (fabs(b[i]) > mx) mx = fabs(b[i]);
    }
    return mx > 0 ? d / mx : d;
}

/* Logits of ids[0..n) through m, with adapter l (or none). */
static float *logits_of(const pp_llama *m, const pp_lora *l, const uint32_t *ids, int n)
{
    pp_infer s;
    float *out = malloc((size_t)n * m->cfg.vocab * sizeof *out);
    if (pp_infer_init(&s, m, be, n, n) != PP_OK || pp_infer_adapter(&s, l, 1.0f) != PP_OK ||
        pp_infer_forward(&s, ids, n, out, 1) != PP_OK) {
        fprintf(stderr, "  forward: %s\n", pp_errmsg());
        free(out);
        out = NULL;
    }
    pp_infer_free(&s);
    return out;
}

static int test_ids(uint32_t *ids, int vocab)
{
    uint64_t x = 88172645463325252ull;
    for (int i = 0; i < 24; i++) {
        x ^= x << 13, x ^= x >> 7, x ^= x << 17;
        ids[i] = i == 0 && vocab > 1 ? 1 : (uint32_t)(x % (uint64_t)vocab);
    }
    return 24;
}

TEST(merged_weights_give_unmerged_logits)
{
    pp_llama base, merged;
    pp_lora l;
    CHECK_STATUS(pp_llama_load(&base, TINY), PP_OK);
    CHECK_STATUS(pp_llama_load(&merged, TINY), PP_OK);
    CHECK_STATUS(pp_lora_load(&l, &base.cfg, ADAPTER), PP_OK);
    if (check_failed) return;
    pp_merge_tensor *t;
    size_t n;
    CHECK_STATUS(pp_merge_list(&t, &n, &merged, &l), PP_OK);
    for (size_t i = 0; i < n; i++) {
        if (t[i].type < 0) continue;
        CHECK(t[i].w->type == PP_W_F32);
        float *d = malloc(t[i].nelem * sizeof *d);
        pp_merge_tensor_values((float *)t[i].w->data, d, &t[i], &l); /* in place: the copy is ours */
        free(d);
    }
    uint32_t ids[24];
    int T = test_ids(ids, base.cfg.vocab);
    float *a = logits_of(&merged, NULL, ids, T), *b = logits_of(&base, &l, ids, T), *c = logits_of(&base, NULL, ids, T);
    CHECK(a && b && c);
    if (a && b && c) {
        size_t N = (size_t)T * base.cfg.vocab;
        double e = rel_max(a, b, N);
        printf("  merged vs unmerged logits: max |diff| / max |logit| = %.3e\n", e);
        CHECK(e <= LOGIT_TOL);
        CHECK(rel_max(c, b, N) > 1e-2); /* the adapter matters */
    }
    free(a);
    free(b);
    free(c);
    free(t);
    pp_lora_free(&l);
    pp_llama_free(&base);
    pp_llama_free(&merged);
}

static void shard_case(const uint64_t *sizes, size_t n, uint64_t max, const int *want, size_t want_files)
{
    pp_merge_tensor t[16];
    memset(t, 0, sizeof t);
    for (size_t i = 0; i < n; i++) t[i].nelem = sizes[i];
    CHECK(pp_merge_shard(t, n, 1, max) == want_files);
    for (size_t i = 0; i < n; i++) CHECK(t[i].shard == want[i]);
}

TEST(shards_as_huggingface_hub)
{
    /* the docstring's example: [6, 6, 2, 6, 2, 2] in 10 -> [6], [6+2], [6+2+2] */
    const uint64_t a[] = {6, 6, 2, 6, 2, 2};
    const int wa[] = {0, 1, 1, 2, 2, 2};
    shard_case(a, 6, 10, wa, 3);
    /* a tensor over the limit is a file at once; the open one is numbered when closed */
    const uint64_t b[] = {3, 12, 3, 5, 11};
    const int wb[] = {1, 0, 1, 3, 2};
    shard_case(b, 5, 10, wb, 4);
    const uint64_t c[] = {4, 4};
    const int wc[] = {0, 0};
    shard_case(c, 2, 8, wc, 1);
}

TEST(requant_error)
{
    size_t n = 1000;
    float *x = malloc(n * sizeof *x), *y = malloc(n * sizeof *y), *am = malloc(64 * sizeof *am);
    uint8_t *q = malloc(n);
    for (size_t i = 0; i < n; i++) x[i] = sinf((float)i * 0.37f) * (1.0f + (float)(i % 7));
    double e = pp_requant_error(x, n, PP_W_NF4, 64, y, q, am);
    CHECK(e > 0);
    /* values already on the NF4 grid come back exactly */
    memcpy(x, y, n * sizeof *x);
    CHECK(pp_requant_error(x, n, PP_W_NF4, 64, y, q, am) < 1e-6 * pp_frobenius(x, n));
    CHECK(pp_requant_error(x, n, PP_W_INT8, 64, y, q, am) < e);
    free(x);
    free(y);
    free(am);
    free(q);
}

/* ---- modes for tests/cli/test_merge.sh ---- */

static int cmd_ref(const char *dir)
{
    pp_llama m, b;
    if (pp_llama_load(&m, dir) != PP_OK || pp_llama_load(&b, TINY) != PP_OK) {
        fprintf(stderr, "FAIL merge_ref_load: %s\n", pp_errmsg());
        return 1;
    }
    ref f;
    ref_open(&f);
    pp_merge_tensor *t, *tb;
    size_t n, nb;
    int bad = 0, adapted = 0, same = 0;
    double worst = 0;
    if (pp_merge_list(&t, &n, &m, NULL) != PP_OK || pp_merge_list(&tb, &nb, &b, NULL) != PP_OK || n != nb) return 1;
    for (size_t i = 0; i < n; i++) {
        const pp_tensor_info *ti = pp_st_find(f.st, t[i].name);
        if (t[i].w->type != PP_W_F32) {
            fprintf(stderr, "  %s is not F32\n", t[i].name);
            bad++;
        } else if (ti) {
            double e = rel_l2(t[i].w->data, (const float *)(f.data + ti->begin), (size_t)t[i].nelem);
            if (e > worst) worst = e;
            if (!(e <= TOL)) fprintf(stderr, "  %s: relative L2 error %.3e\n", t[i].name, e), bad++;
            adapted++;
        } else if (memcmp(t[i].w->data, tb[i].w->data, (size_t)t[i].nelem * 4) != 0) {
            fprintf(stderr, "  %s differs from the base\n", t[i].name);
            bad++;
        } else {
            same++;
        }
    }
    printf("%s merge_output_vs_merge_and_unload (%d adapted, worst relative L2 %.3e; %d untouched, identical)\n",
           bad || adapted != 14 ? "FAIL" : "ok", adapted, worst, same);
    free(t);
    free(tb);
    ref_close(&f);
    pp_llama_free(&m);
    pp_llama_free(&b);
    return bad != 0;
}

static int cmd_logits(const char *dir, const char *base, const char *adapter)
{
    pp_llama m, b;
    pp_lora l;
    if (pp_llama_load(&m, dir) != PP_OK || pp_llama_load(&b, base) != PP_OK || pp_lora_load(&l, &b.cfg, adapter) != PP_OK) {
        fprintf(stderr, "FAIL merge_logits_load: %s\n", pp_errmsg());
        return 1;
    }
    uint32_t ids[24];
    int T = test_ids(ids, b.cfg.vocab);
    float *x = logits_of(&m, NULL, ids, T), *y = logits_of(&b, &l, ids, T);
    double e = x && y ? rel_max(x, y, (size_t)T * b.cfg.vocab) : INFINITY;
    int ok = e <= LOGIT_TOL;
    printf("%s merge_logits_equal_unmerged (%s: max |diff| / max |logit| = %.3e)\n", ok ? "ok" : "FAIL", dir, e);
    free(x);
    free(y);
    pp_lora_free(&l);
    pp_llama_free(&m);
    pp_llama_free(&b);
    return !ok;
}

int main(int argc, char **argv)
{
    pp_backend_cpu(&be, 2);
    int rc;
    if (argc == 3 && !strcmp(argv[1], "ref")) {
        rc = cmd_ref(argv[2]);
    } else if (argc == 5 && !strcmp(argv[1], "logits")) {
        rc = cmd_logits(argv[2], argv[3], argv[4]);
    } else if (argc == 1) {
        RUN(merge_matches_peft);
        RUN(merged_weights_give_unmerged_logits);
        RUN(shards_as_huggingface_hub);
        RUN(requant_error);
        rc = tests_failed != 0;
    } else {
        fprintf(stderr, "usage: test_merge [ref DIR | logits DIR BASE ADAPTER]\n");
        rc = 64;
    }
    pp_backend_free(be);
    return rc;
}
