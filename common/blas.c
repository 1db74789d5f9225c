#include "blas.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#endif

/* OpenBLAS's own entry points (cblas.h declares them too). */
char *openblas_get_corename(void);
char *openblas_get_config(void);

int pp_blas_cpu_isa(void)
{
#if defined(__x86_64__) || defined(__i386__)
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return PP_ISA_SSE;
    int osxsave = c >> 27 & 1, avx = c >> 28 & 1, fma = c >> 12 & 1;
    if (!osxsave || !avx) return PP_ISA_SSE;
    unsigned lo, hi;
    __asm__("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    if ((lo & 6) != 6) return PP_ISA_SSE; /* the OS saves no YMM state */
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return PP_ISA_AVX;
    int avx2 = b >> 5 & 1, f = b >> 16 & 1, dq = b >> 17 & 1, cd = b >> 28 & 1, bw = b >> 30 & 1, vl = b >> 31 & 1;
    if (!avx2 || !fma) return PP_ISA_AVX;
    if (!(f && dq && cd && bw && vl) || (lo & 0xe6) != 0xe6) return PP_ISA_AVX2; /* ZMM and opmask state too */
    unsigned a1 = 0, b1, c1, d1;
    int bf16 = __get_cpuid_count(7, 1, &a1, &b1, &c1, &d1) && (a1 >> 5 & 1);
    return bf16 ? PP_ISA_AVX512_BF16 : PP_ISA_AVX512;
#else
    return PP_ISA_SSE;
#endif
}

/* The class of an OpenBLAS x86-64 kernel set; -1 for a name pp does not know. */
static int core_isa(const char *name)
{
    static const struct {
        const char *name;
        int isa;
    } cores[] = {
        {"Katmai", PP_ISA_SSE}, {"Coppermine", PP_ISA_SSE}, {"Northwood", PP_ISA_SSE}, {"Prescott", PP_ISA_SSE},
        {"Banias", PP_ISA_SSE}, {"Atom", PP_ISA_SSE}, {"Core2", PP_ISA_SSE}, {"Penryn", PP_ISA_SSE},
        {"Dunnington", PP_ISA_SSE}, {"Nehalem", PP_ISA_SSE}, {"Athlon", PP_ISA_SSE}, {"Opteron", PP_ISA_SSE},
        {"Opteron_SSE3", PP_ISA_SSE}, {"Barcelona", PP_ISA_SSE}, {"Nano", PP_ISA_SSE}, {"Bobcat", PP_ISA_SSE},
        {"Sandybridge", PP_ISA_AVX}, {"Bulldozer", PP_ISA_AVX}, {"Piledriver", PP_ISA_AVX}, {"Steamroller", PP_ISA_AVX},
        {"Haswell", PP_ISA_AVX2}, {"Excavator", PP_ISA_AVX2}, {"Zen", PP_ISA_AVX2},
        {"SkylakeX", PP_ISA_AVX512}, {"Cooperlake", PP_ISA_AVX512_BF16}, {"SapphireRapids", PP_ISA_AVX512_BF16},
    };
    for (size_t i = 0; name && i < sizeof cores / sizeof *cores; i++)
        if (strcasecmp(name, cores[i].name) == 0) return cores[i].isa;
    return -1;
}

const char *pp_blas_pick(const char *detected, int isa)
{
    static const char *const best[] = {NULL, "Sandybridge", "Haswell", "SkylakeX", "Cooperlake"};
    int have = core_isa(detected);
    if (have < 0 || have >= isa || isa <= PP_ISA_SSE || isa > PP_ISA_AVX512_BF16) return NULL;
    return best[isa];
}

void pp_blas_setup(char **argv)
{
    if (getenv("OPENBLAS_CORETYPE") || getenv("PP_BLAS_CHOSE")) return; /* the user's choice, or done */
    const char *detected = getenv("PP_BLAS_DETECTED");
    if (!detected || !*detected) detected = openblas_get_corename();
    const char *want = pp_blas_pick(detected, pp_blas_cpu_isa());
    if (!want) return;
    char note[96];
    snprintf(note, sizeof note, "%s", detected);
    setenv("OPENBLAS_CORETYPE", want, 1);
    setenv("PP_BLAS_CHOSE", note, 1); /* what OpenBLAS had chosen, for describe(); and no second time */
    execv("/proc/self/exe", argv);
    unsetenv("OPENBLAS_CORETYPE"); /* could not: go on with OpenBLAS's choice */
}

const char *pp_blas_describe(void)
{
    static char line[256];
    const char *cfg = openblas_get_config(), *core = openblas_get_corename(), *was = getenv("PP_BLAS_CHOSE");
    char why[128] = "as OpenBLAS detected it";
    if (was) snprintf(why, sizeof why, "chosen by pp from the CPU's instruction set; OpenBLAS had detected %.40s", was);
    else if (getenv("OPENBLAS_CORETYPE")) snprintf(why, sizeof why, "OPENBLAS_CORETYPE=%.40s", getenv("OPENBLAS_CORETYPE"));
    /* openblas_get_config(): "OpenBLAS 0.3.21 NO_LAPACKE DYNAMIC_ARCH ...": its first two words */
    const char *sp = cfg && strlen(cfg) > 9 ? strchr(cfg + 9, ' ') : NULL;
    snprintf(line, sizeof line, "BLAS: %.*s, kernels %s (%s)", sp ? (int)(sp - cfg) : 8, sp ? cfg : "OpenBLAS",
             core ? core : "?", why);
    return line;
}
