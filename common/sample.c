#include "sample.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pp_status pp_sampler_init(pp_sampler *s, int vocab, uint64_t seed)
{
    s->vocab = vocab;
    s->temperature = 0; /* greedy until told otherwise */
    s->top_k = 0;
    s->top_p = 1;
    s->min_p = 0;
    s->repeat_penalty = 1;
    s->repeat_window = 64;
    pp_sampler_seed(s, seed);
    s->p = malloc((size_t)vocab * sizeof *s->p);
    s->idx = malloc((size_t)vocab * sizeof *s->idx);
    if (!s->p || !s->idx) {
        pp_sampler_free(s);
        return pp_fail(PP_E_NOMEM, "out of memory");
    }
    return PP_OK;
}

void pp_sampler_seed(pp_sampler *s, uint64_t seed)
{
    /* splitmix64 of the seed; xorshift must not start from 0 */
    uint64_t z = seed + 0x9E3779B97F4A7C15ull;
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    z ^= z >> 31;
    s->rng = z ? z : 0x2545F4914F6CDD1Dull;
}

void pp_sampler_free(pp_sampler *s)
{
    free(s->p);
    free(s->idx);
    s->p = NULL;
    s->idx = NULL;
}

/* xorshift64*, 53 bits into [0, 1) */
static double uniform(pp_sampler *s)
{
    s->rng ^= s->rng >> 12;
    s->rng ^= s->rng << 25;
    s->rng ^= s->rng >> 27;
    return (double)((s->rng * 0x2545F4914F6CDD1Dull) >> 11) / 9007199254740992.0;
}

static int by_logit_desc(const void *a, const void *b, void *ctx)
{
    const float *l = ctx;
    float x = l[*(const int *)a], y = l[*(const int *)b];
    if (x != y) return x > y ? -1 : 1;
    return *(const int *)a - *(const int *)b;
}

uint32_t pp_sample(pp_sampler *s, float *logits, const uint32_t *history, int n)
{
    int V = s->vocab;
    if (s->repeat_penalty != 1.0f && n > 0) {
        int from = s->repeat_window > 0 && n > s->repeat_window ? n - s->repeat_window : 0;
        /* each distinct token once, as HF's gather/scatter does */
        for (int i = from; i < n; i++) {
            uint32_t t = history[i];
            if (t >= (uint32_t)V) continue;
            int seen = 0;
            for (int j = from; j < i && !seen; j++) seen = history[j] == t;
            if (seen) continue;
            logits[t] = logits[t] > 0 ? logits[t] / s->repeat_penalty : logits[t] * s->repeat_penalty;
        }
    }
    if (s->temperature <= 0) {
        int best = 0;
        for (int i = 1; i < V; i++)
            if (logits[i] > logits[best]) best = i;
        return (uint32_t)best;
    }
    for (int i = 0; i < V; i++) logits[i] /= s->temperature;
    /* candidates in descending order of logit */
    int m = V;
    for (int i = 0; i < V; i++) s->idx[i] = i;
    qsort_r(s->idx, (size_t)V, sizeof *s->idx, by_logit_desc, logits);
    if (s->top_k > 0 && s->top_k < m) { /* ties with the k-th stay, as in HF */
        float kth = logits[s->idx[s->top_k - 1]];
        int keep = s->top_k;
        while (keep < m && logits[s->idx[keep]] >= kth) keep++;
        m = keep;
    }
    float mx = logits[s->idx[0]];
    double sum = 0;
    for (int i = 0; i < m; i++) sum += (s->p[i] = expf(logits[s->idx[i]] - mx));
    for (int i = 0; i < m; i++) s->p[i] = (float)(s->p[i] / sum);
    if (s->top_p < 1.0f) { /* the smallest prefix with mass >= top_p; at least one token */
        double cum = 0;
        int keep = 0;
        while (keep < m) {
            cum += s->p[keep++];
            if (cum >= s->top_p) break;
        }
        m = keep;
    }
    if (s->min_p > 0) { /* drop what is below min_p times the best probability */
        float cut = s->min_p * s->p[0];
        int keep = 1;
        while (keep < m && s->p[keep] >= cut) keep++;
        m = keep;
    }
    double total = 0;
    for (int i = 0; i < m; i++) total += s->p[i];
    double r = uniform(s) * total, acc = 0;
    for (int i = 0; i < m; i++) {
        acc += s->p[i];
        if (r < acc) return (uint32_t)s->idx[i];
    }
    return (uint32_t)s->idx[m - 1];
}
