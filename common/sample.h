/* sample.h: choosing the next token from logits, in the order Hugging Face's
 * generate applies its processors: repetition penalty, temperature, top-k,
 * top-p, min-p, then a draw from the softmax. Temperature 0 is greedy (the
 * first maximum, as torch.argmax). The same seed gives the same tokens. */
#ifndef PP_SAMPLE_H
#define PP_SAMPLE_H

#include <stdint.h>

#include "status.h"

typedef struct pp_sampler {
    float temperature;      /* 0: greedy */
    int top_k;              /* 0: off */
    float top_p;            /* 1: off */
    float min_p;            /* 0: off */
    float repeat_penalty;   /* 1: off; > 1 discourages tokens seen in the window */
    int repeat_window;      /* the last N tokens of the sequence; 0: all of it */
    uint64_t rng;
    int vocab;
    float *p;               /* (vocab) probabilities, scratch */
    int *idx;               /* (vocab) candidate ids, scratch */
} pp_sampler;

/* Greedy, every filter off, repeat window 64; set the fields to change that. */
pp_status pp_sampler_init(pp_sampler *s, int vocab, uint64_t seed);
void pp_sampler_free(pp_sampler *s);

/* Restarts the random sequence from seed (any value, 0 included). */
void pp_sampler_seed(pp_sampler *s, uint64_t seed);

/* The next token. logits (vocab) is modified; history holds the sequence so
 * far (prompt and generated tokens), n of them. */
uint32_t pp_sample(pp_sampler *s, float *logits, const uint32_t *history, int n);

#endif
