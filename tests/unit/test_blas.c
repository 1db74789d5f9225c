/* The OpenBLAS kernel choice (blas.c): a CPU that OpenBLAS does not know,
 * for which it falls back to generic kernels, still gets the kernels of its
 * instruction set; a choice as good as the CPU's is kept. */
#include "blas.h"
#include "check.h"

TEST(generic_fallback_gets_the_cpus_kernels)
{
    CHECK(pp_blas_pick("Prescott", PP_ISA_AVX512) && !strcmp(pp_blas_pick("Prescott", PP_ISA_AVX512), "SkylakeX"));
    CHECK(!strcmp(pp_blas_pick("Prescott", PP_ISA_AVX512_BF16), "Cooperlake"));
    CHECK(!strcmp(pp_blas_pick("Core2", PP_ISA_AVX2), "Haswell"));
    CHECK(!strcmp(pp_blas_pick("Nehalem", PP_ISA_AVX), "Sandybridge"));
    CHECK(!strcmp(pp_blas_pick("Sandybridge", PP_ISA_AVX2), "Haswell"));
    CHECK(!strcmp(pp_blas_pick("Haswell", PP_ISA_AVX512), "SkylakeX"));
    CHECK(!strcmp(pp_blas_pick("prescott", PP_ISA_AVX512), "SkylakeX")); /* names as OpenBLAS spells them, any case */
}

TEST(as_good_a_choice_is_kept)
{
    CHECK(pp_blas_pick("SkylakeX", PP_ISA_AVX512) == NULL);
    CHECK(pp_blas_pick("Cooperlake", PP_ISA_AVX512) == NULL);
    CHECK(pp_blas_pick("Zen", PP_ISA_AVX2) == NULL);
    CHECK(pp_blas_pick("Haswell", PP_ISA_AVX2) == NULL);
    CHECK(pp_blas_pick("Prescott", PP_ISA_SSE) == NULL); /* nothing better to ask for */
    CHECK(pp_blas_pick("SomethingNew", PP_ISA_AVX512) == NULL); /* a name pp does not know: OpenBLAS knows better */
    CHECK(pp_blas_pick(NULL, PP_ISA_AVX512) == NULL);
}

TEST(this_cpu)
{
    static const char *const names[] = {"SSE", "AVX", "AVX2", "AVX-512", "AVX-512 with BF16"};
    int isa = pp_blas_cpu_isa();
    CHECK(isa >= PP_ISA_SSE && isa <= PP_ISA_AVX512_BF16);
    fprintf(stderr, "  this CPU: %s; %s\n", names[isa], pp_blas_describe());
    /* against the kernel's view of the same CPU (/proc/cpuinfo's flags) */
    FILE *f = fopen("/proc/cpuinfo", "r");
    char line[4096];
    int flags = 0, avx2 = 0, avx512 = 0;
    while (f && !flags && fgets(line, sizeof line, f))
        if (!strncmp(line, "flags", 5)) {
            flags = 1;
            avx2 = strstr(line, " avx2 ") && strstr(line, " fma ");
            avx512 = strstr(line, " avx512f ") && strstr(line, " avx512bw ") && strstr(line, " avx512vl ");
        }
    if (f) fclose(f);
    if (flags) CHECK((isa >= PP_ISA_AVX2) == (avx2 != 0) && (isa >= PP_ISA_AVX512) == (avx512 != 0));
}

int main(void)
{
    RUN(generic_fallback_gets_the_cpus_kernels);
    RUN(as_good_a_choice_is_kept);
    RUN(this_cpu);
    return tests_failed ? 1 : 0;
}
