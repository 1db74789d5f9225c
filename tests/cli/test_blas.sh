#!/bin/sh
# The tools that compute run the CPU's best OpenBLAS kernels: when OpenBLAS
# falls back to generic ones (pretended here with PP_BLAS_DETECTED), pp asks
# for the CPU's and says so in --version and -v; a user's OPENBLAS_CORETYPE stands.
. tests/cli/lib.sh
expect blas_version_names_kernels 0 '^$' "$BIN/pp-train --version | grep -Eq '^BLAS: OpenBLAS [0-9.]+, kernels [A-Za-z]+ '"
if grep -q ' avx2 ' /proc/cpuinfo 2>/dev/null; then
    expect blas_generic_fallback_replaced 0 '^$' "PP_BLAS_DETECTED=Prescott $BIN/pp-train --version | grep -q 'chosen by pp from the CPU.s instruction set; OpenBLAS had detected Prescott' &&
        ! PP_BLAS_DETECTED=Prescott $BIN/pp-train --version | grep -q 'kernels Prescott'"
    expect blas_verbose_says_it 0 'pp-generate: BLAS: OpenBLAS .*chosen by pp' "PP_BLAS_DETECTED=Core2 $BIN/pp-generate -v -m ../shared/models/stories260K --raw --greedy --max-new-tokens 3 Once > /dev/null"
    expect blas_same_text_after_reexec 0 '' "a=\$($BIN/pp-generate -q -m ../shared/models/stories260K --raw --greedy --max-new-tokens 20 Once) &&
        b=\$(PP_BLAS_DETECTED=Prescott $BIN/pp-generate -q -m ../shared/models/stories260K --raw --greedy --max-new-tokens 20 Once) && [ \"\$a\" = \"\$b\" ]"
fi
expect blas_user_coretype_stands 0 '^$' "OPENBLAS_CORETYPE=Prescott PP_BLAS_DETECTED=Prescott $BIN/pp-train --version | grep -q 'kernels Prescott (OPENBLAS_CORETYPE=Prescott)'"

# pp-generate's default threads: the CPUs that no other program keeps busy
# (here every CPU is: one thread); -t still decides; the text is the same
n=$(getconf _NPROCESSORS_ONLN)
if [ "$n" -ge 2 ]; then
    pids=""
    i=0
    while [ $i -lt "$n" ]; do sh -c 'while :; do :; done' & pids="$pids $!"; i=$((i + 1)); done
    sleep 0.3
    expect threads_default_leaves_busy_cpus 0 'cpu backend, 1 thread,' "$BIN/pp-generate -v -m ../shared/models/stories260K --raw --greedy --max-new-tokens 20 Once > $T/t1.txt"
    expect threads_given_stand 0 'cpu backend, 2 threads,' "$BIN/pp-generate -v -t 2 -m ../shared/models/stories260K --raw --greedy --max-new-tokens 20 Once > $T/t2.txt"
    kill $pids 2>/dev/null
    wait 2>/dev/null
    expect threads_same_text 0 '' "cmp $T/t1.txt $T/t2.txt && test -s $T/t1.txt"
fi
