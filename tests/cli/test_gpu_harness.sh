#!/bin/sh
# The GPU self-test's program against the CPU backend itself (PP_TEST_DEVICE=cpu):
# every check must run and pass, so that a GPU run's failure is the GPU's.
. tests/cli/lib.sh
GT=${GPU_TEST:-build/gpu/test_cuda}
expect gpu_harness_on_the_cpu 0 '' "PP_TEST_DEVICE=cpu $GT ../shared/models/stories260K > $T/h.out && tail -n 1 $T/h.out | grep -Eq '^[0-9]+ checks, 0 failed$' && test \$(grep -c ' ok$' $T/h.out) -ge 70"
