/* sgemm_probe: what OpenBLAS's cblas_sgemm reaches on this machine for the
 * products of one Llama decoder layer over a prompt, called exactly as pp's
 * CPU backend calls it (row-major, x · Wᵀ: NoTrans, Trans).
 *
 * usage: sgemm_probe THREADS M DIM HIDDEN QDIM KVDIM
 *
 * M is the number of prompt tokens. One layer's products are
 *   q (M x QDIM, K = DIM), k and v (M x KVDIM, K = DIM), o (M x DIM, K = QDIM),
 *   gate and up (M x HIDDEN, K = DIM), down (M x DIM, K = HIDDEN),
 * each with its own weight buffer (random values in [-1, 1)). The seven calls
 * are made in that order; after two untimed passes, passes are timed
 * (CLOCK_MONOTONIC) until at least 0.5 s and at least 5 passes have run; the
 * median pass gives the rate. Prints one line:
 *   sgemm THREADS M DIM HIDDEN QDIM KVDIM GFLOPS CORE CONFIG...
 * where GFLOPS = 2 * M * (layer weights) / median pass time / 1e9, CORE is
 * openblas_get_corename() and CONFIG openblas_get_config() (version, build).
 * Build: cc -O2 sgemm_probe.c -lopenblas. */
#include <cblas.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

char *openblas_get_corename(void);
char *openblas_get_config(void);

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

static float *rnd(size_t n, unsigned *seed)
{
    float *p = malloc(n * sizeof *p);
    if (!p) {
        fprintf(stderr, "sgemm_probe: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        *seed = *seed * 1664525u + 1013904223u;
        p[i] = (float)(*seed >> 8) / 8388608.0f - 1.0f;
    }
    return p;
}

static int cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: sgemm_probe THREADS M DIM HIDDEN QDIM KVDIM\n");
        return 64;
    }
    int t = atoi(argv[1]), M = atoi(argv[2]), dim = atoi(argv[3]), hid = atoi(argv[4]), qd = atoi(argv[5]), kvd = atoi(argv[6]);
    if (t < 1 || M < 1 || dim < 1 || hid < 1 || qd < 1 || kvd < 1) {
        fprintf(stderr, "sgemm_probe: arguments must be positive\n");
        return 64;
    }
    openblas_set_num_threads(t);
    /* the seven products: rows of W (N), cols of W (K) */
    int N[7] = {qd, kvd, kvd, dim, hid, hid, dim}, K[7] = {dim, dim, dim, qd, dim, dim, hid};
    int maxk = dim > qd ? dim : qd;
    if (hid > maxk) maxk = hid;
    unsigned seed = 12345;
    float *x = rnd((size_t)M * maxk, &seed), *out = rnd((size_t)M * (hid > maxk ? hid : maxk), &seed), *W[7];
    double flops = 0;
    for (int i = 0; i < 7; i++) {
        W[i] = rnd((size_t)N[i] * K[i], &seed);
        flops += 2.0 * M * (double)N[i] * K[i];
    }
    double times[10000];
    int n = 0;
    double start = 0;
    for (int pass = 0; n < 10000; pass++) {
        double t0 = now();
        if (pass == 2) start = t0;
        for (int i = 0; i < 7; i++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, M, N[i], K[i], 1.0f, x, K[i], W[i], K[i], 0.0f, out, N[i]);
        double dt = now() - t0;
        if (pass < 2) continue;
        times[n++] = dt;
        if (n >= 5 && now() - start >= 0.5) break;
    }
    qsort(times, (size_t)n, sizeof *times, cmp);
    double med = n % 2 ? times[n / 2] : (times[n / 2 - 1] + times[n / 2]) / 2;
    printf("sgemm %d %d %d %d %d %d %.3f %s %s\n", t, M, dim, hid, qd, kvd, flops / med / 1e9, openblas_get_corename(),
           openblas_get_config());
    return 0;
}
