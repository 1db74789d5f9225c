/* optim.h: AdamW, gradient clipping and learning-rate schedules, with
 * PyTorch's and the HF Trainer's exact arithmetic (torch.optim.AdamW,
 * clip_grad_norm_, get_{linear,cosine,constant}_schedule_with_warmup). */
#ifndef PP_OPTIM_H
#define PP_OPTIM_H

#include <stddef.h>

#include "status.h"

typedef struct pp_adamw {
    float b1, b2, eps, wd;
    long t;                 /* steps taken */
    float *m, *v;           /* (n) moments: one allocation */
    size_t n;
    size_t n_decay;         /* weight decay applies to the first n_decay values (default n) */
} pp_adamw;

/* One step's constants: the moments' decay rates, eps, the step size
 * lr / (1 - b1^t), the decay factor 1 - lr wd, and sqrt(1 - b2^t). */
typedef struct pp_adamw_hyper {
    float b1, b2, eps, step, decay, bc2s;
} pp_adamw_hyper;

pp_status pp_adamw_init(pp_adamw *o, size_t n, float b1, float b2, float eps, float wd);
/* Counts a step (o->t + 1) and returns its constants at learning rate lr. */
pp_adamw_hyper pp_adamw_next(pp_adamw *o, float lr);
/* The update itself on n values (the first n_decay decayed), moments m, v:
 * what pp_adamw_step and the CPU backend run. */
void pp_adamw_update(float *p, const float *g, float *m, float *v, size_t n, size_t n_decay, const pp_adamw_hyper *h);
void pp_adamw_free(pp_adamw *o);
/* One step on p (n) with gradients g at learning rate lr. */
void pp_adamw_step(pp_adamw *o, float *p, const float *g, float lr);

/* Scales g (n) so that its L2 norm is at most max_norm (0: no clipping),
 * as clip_grad_norm_: factor min(1, max_norm / (norm + 1e-6)). Returns the
 * norm before clipping (NaN or inf when the gradient is not finite). */
double pp_clip_grad_norm(float *g, size_t n, float max_norm);
/* The sum of squares of x (n) in double, in order (the norm's). */
double pp_sumsq(const float *x, size_t n);
/* clip_grad_norm_'s factor for a gradient of this norm: min(1, max_norm /
 * (norm + 1e-6)); 1 when max_norm is 0 or the norm is not finite. */
float pp_clip_coef(double norm, float max_norm);

typedef enum pp_schedule { PP_SCHED_LINEAR, PP_SCHED_COSINE, PP_SCHED_CONSTANT } pp_schedule;

/* The learning rate of optimizer step `step` (0-based) of `total`, after
 * `warmup` warm-up steps, as the HF Trainer's schedulers give it. */
float pp_lr_at(pp_schedule s, float base, long step, long total, long warmup);

#endif
