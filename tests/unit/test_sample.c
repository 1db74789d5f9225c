/* Sampling: greedy, the filters, the distribution, seeds, the penalty. */
#include <math.h>

#include "check.h"
#include "sample.h"

static void set(float *l, const double *p, int n)
{
    for (int i = 0; i < n; i++) l[i] = (float)log(p[i]);
}

/* Frequencies of draws with the sampler as configured, logits from p. */
static void draw(pp_sampler *s, const double *p, int n, int draws, double *freq)
{
    float l[8];
    for (int i = 0; i < n; i++) freq[i] = 0;
    for (int d = 0; d < draws; d++) {
        set(l, p, n);
        freq[pp_sample(s, l, NULL, 0)] += 1.0 / draws;
    }
}

TEST(greedy_takes_the_first_maximum)
{
    pp_sampler s;
    pp_sampler_init(&s, 5, 0);
    float l[5] = {0.1f, 2.0f, -1.0f, 2.0f, 1.9f};
    CHECK(pp_sample(&s, l, NULL, 0) == 1);
    pp_sampler_free(&s);
}

TEST(the_distribution_and_temperature)
{
    static const double p[3] = {0.5, 0.3, 0.2};
    double f[3];
    pp_sampler s;
    pp_sampler_init(&s, 3, 7);
    s.temperature = 1;
    draw(&s, p, 3, 40000, f);
    for (int i = 0; i < 3; i++) CHECK(fabs(f[i] - p[i]) < 0.01);
    s.temperature = 0.5f; /* p^2, renormalised: 25/38, 9/38, 4/38 */
    draw(&s, p, 3, 40000, f);
    CHECK(fabs(f[0] - 25.0 / 38) < 0.01 && fabs(f[1] - 9.0 / 38) < 0.01 && fabs(f[2] - 4.0 / 38) < 0.01);
    pp_sampler_free(&s);
}

TEST(top_k_top_p_min_p)
{
    static const double p[4] = {0.4, 0.3, 0.2, 0.1};
    double f[4];
    pp_sampler s;
    pp_sampler_init(&s, 4, 3);
    s.temperature = 1;
    s.top_k = 2; /* 0.4 and 0.3, renormalised */
    draw(&s, p, 4, 20000, f);
    CHECK(f[2] == 0 && f[3] == 0 && fabs(f[0] - 4.0 / 7) < 0.015);
    s.top_k = 0;
    s.top_p = 0.75f; /* 0.4 + 0.3 < 0.75, so 0.2 joins; 0.1 does not */
    draw(&s, p, 4, 20000, f);
    CHECK(f[3] == 0 && f[2] > 0.15);
    s.top_p = 1;
    s.min_p = 0.6f; /* keeps p >= 0.24 */
    draw(&s, p, 4, 20000, f);
    CHECK(f[2] == 0 && f[3] == 0 && f[1] > 0.35);
    s.min_p = 0;
    s.top_k = 1;
    draw(&s, p, 4, 1000, f);
    CHECK(fabs(f[0] - 1) < 1e-9);
    pp_sampler_free(&s);
}

TEST(same_seed_same_tokens)
{
    static const double p[5] = {0.3, 0.25, 0.2, 0.15, 0.1};
    uint32_t a[64], b[64], c[64];
    pp_sampler s;
    uint64_t seeds[3] = {42, 42, 43};
    uint32_t *out[3] = {a, b, c};
    for (int k = 0; k < 3; k++) {
        pp_sampler_init(&s, 5, seeds[k]);
        s.temperature = 1;
        for (int i = 0; i < 64; i++) {
            float l[5];
            set(l, p, 5);
            out[k][i] = pp_sample(&s, l, NULL, 0);
        }
        pp_sampler_free(&s);
    }
    CHECK(memcmp(a, b, sizeof a) == 0);
    CHECK(memcmp(a, c, sizeof a) != 0);
}

TEST(repetition_penalty_over_a_window)
{
    pp_sampler s;
    pp_sampler_init(&s, 4, 0);
    s.repeat_penalty = 2;
    s.repeat_window = 2;
    uint32_t hist[3] = {0, 1, 1};
    float l[4] = {3.0f, 2.9f, -1.0f, 1.0f};
    /* token 0 is outside the window of 2: it keeps 3.0 and wins */
    CHECK(pp_sample(&s, l, hist, 3) == 0);
    float m[4] = {1.0f, 2.9f, -1.0f, 1.6f};
    CHECK(pp_sample(&s, m, hist, 3) == 3 && m[1] == 1.45f); /* 2.9 / 2 once, though seen twice */
    float n[4] = {-1.0f, -0.5f, -0.9f, -3.0f};
    uint32_t h2[1] = {1};
    CHECK(pp_sample(&s, n, h2, 1) == 2 && n[1] == -1.0f); /* a negative logit is multiplied */
    pp_sampler_free(&s);
}

int main(void)
{
    RUN(greedy_takes_the_first_maximum);
    RUN(the_distribution_and_temperature);
    RUN(top_k_top_p_min_p);
    RUN(same_seed_same_tokens);
    RUN(repetition_penalty_over_a_window);
    return tests_failed ? 1 : 0;
}
