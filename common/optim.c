#include "optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

pp_status pp_adamw_init(pp_adamw *o, size_t n, float b1, float b2, float eps, float wd)
{
    memset(o, 0, sizeof *o);
    o->b1 = b1, o->b2 = b2, o->eps = eps, o->wd = wd, o->n = n, o->n_decay = n;
    o->m = calloc(2 * (n ? n : 1), sizeof *o->m);
    if (!o->m) return pp_fail(PP_E_NOMEM, "out of memory for the optimizer");
    o->v = o->m + n;
    return PP_OK;
}

void pp_adamw_free(pp_adamw *o)
{
    free(o->m);
    memset(o, 0, sizeof *o);
}

pp_adamw_hyper pp_adamw_next(pp_adamw *o, float lr)
{
    o->t++;
    /* torch: bias_correction1 = 1 - b1^t, step_size = lr / bc1,
     * denom = sqrt(v) / sqrt(1 - b2^t) + eps, p -= step_size * m / denom,
     * after the decoupled decay p *= 1 - lr * wd. */
    float bc1 = 1.0f - powf(o->b1, (float)o->t);
    pp_adamw_hyper h = {o->b1, o->b2, o->eps, lr / bc1, 1.0f - lr * o->wd, sqrtf(1.0f - powf(o->b2, (float)o->t))};
    return h;
}

void pp_adamw_update(float *p, const float *g, float *m, float *v, size_t n, size_t n_decay, const pp_adamw_hyper *h)
{
    for (size_t i = 0; i < n; i++) {
        if (i < n_decay) p[i] *= h->decay;
        m[i] = h->b1 * m[i] + (1.0f - h->b1) * g[i];
        v[i] = h->b2 * v[i] + (1.0f - h->b2) * g[i] * g[i];
        float denom = sqrtf(v[i]) / h->bc2s + h->eps;
        p[i] -= h->step * (m[i] / denom);
    }
}

void pp_adamw_step(pp_adamw *o, float *p, const float *g, float lr)
{
    pp_adamw_hyper h = pp_adamw_next(o, lr);
    pp_adamw_update(p, g, o->m, o->v, o->n, o->n_decay, &h);
}

double pp_sumsq(const float *x, size_t n)
{
    double ss = 0;
    for (size_t i = 0; i < n; i++) ss += (double)x[i] * x[i];
    return ss;
}

float pp_clip_coef(double norm, float max_norm)
{
    if (max_norm <= 0 || !isfinite(norm)) return 1.0f;
    float coef = (float)(max_norm / (norm + 1e-6));
    return coef < 1.0f ? coef : 1.0f;
}

double pp_clip_grad_norm(float *g, size_t n, float max_norm)
{
    double norm = sqrt(pp_sumsq(g, n));
    float coef = pp_clip_coef(norm, max_norm);
    if (coef < 1.0f)
        for (size_t i = 0; i < n; i++) g[i] *= coef;
    return norm;
}

float pp_lr_at(pp_schedule s, float base, long step, long total, long warmup)
{
    if (step < warmup) return base * (float)step / (float)(warmup > 1 ? warmup : 1);
    if (s == PP_SCHED_CONSTANT) return base;
    double progress = (double)(step - warmup) / (double)(total - warmup > 1 ? total - warmup : 1);
    if (s == PP_SCHED_LINEAR) return base * (float)fmax(0.0, (double)(total - step) / (double)(total - warmup > 1 ? total - warmup : 1));
    return base * (float)fmax(0.0, 0.5 * (1.0 + cos(M_PI * progress))); /* cosine, half a period */
}
