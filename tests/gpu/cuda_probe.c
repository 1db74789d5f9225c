/* cuda_probe: runs the CUDA probe; exit 0 when a kernel ran right, 77 with
 * no GPU, 1 on a CUDA error. Built by `make` when nvcc is found; run only by
 * the GPU self-test. */
#include <stdio.h>

#include "probe.h"

int main(void)
{
    int n, r = pp_cuda_probe(&n);
    printf("cuda probe: %d device(s), %s\n", n, r > 0 ? "kernel ok" : r == 0 ? "no GPU" : "CUDA error");
    return r > 0 ? 0 : r == 0 ? 77 : 1;
}
