#!/bin/sh
# The CUDA emulator (cuda/emu/): first its own checks (tests/gpu/emu_check),
# then the GPU self-test's program in both thread orders (PP_EMU_ORDER) and
# the tools with --device cuda, running the real kernels on it, against the
# CPU backend.
. tests/cli/lib.sh
EMU=${EMU_DIR:-build/emu}
export PP_CUDA_LIB=$EMU/libppcuda.so
"$EMU/emu_check"
# the faults it must catch: a kernel writing past an allocation and host code
# reading device memory fault (as on a GPU); a host pointer given to a kernel
# and a deadlocked block are named, exit 70
# (a fault: killed by SIGSEGV, or under ASan its report of a deadly signal, SEGV or, when the fault lands
# near a thread's stack, "stack-overflow", and exit 1)
for c in overflow hostread; do
    expect "emu_catches_$c" 0 '' "$EMU/emu_check $c 2>$T/$c.err; rc=\$?; [ \$rc -ge 128 ] || { [ \$rc = 1 ] && grep -q DEADLYSIGNAL $T/$c.err; }"
done
expect emu_catches_tail 70 'wrote past the end of a 40-byte allocation' "$EMU/emu_check tail"
expect emu_catches_exited_lane 70 'reads lane 5 of warp 0, which has returned' "$EMU/emu_check exitedlane"
expect emu_catches_hostarg 70 'pointer argument 0 is not device memory' "$EMU/emu_check hostarg"
expect emu_catches_deadlock 70 'kernel bad_shuffle deadlocked' "$EMU/emu_check deadlock"
check emu_defer_holds_a_stream_back "[ \"\$($EMU/emu_check streams)\" = '7 7' ] && [ \"\$(PP_EMU_DEFER=2 $EMU/emu_check streams)\" = '0 7' ]"
check emu_order_changes_a_race "[ \"\$($EMU/emu_check race)\" != \"\$(PP_EMU_ORDER=reverse $EMU/emu_check race)\" ]"

# every kernel of the self-test against the CPU backend, on the emulator (llama3/tiny: Llama 3's
# scaled RoPE, head_dim 48 apart from dim / heads)
GT=${GPU_TEST:-build/gpu/test_cuda}
M=../shared/models/stories260K
expect gpu_selftest_on_the_emulator 0 '' "$GT tests/fixtures/llama/tiny tests/fixtures/llama/tiny-bf16 $M tests/fixtures/llama3/tiny > $T/g.out; tail -n 1 $T/g.out | grep -Eq '^[0-9]+ checks, 0 failed\$' || { grep FAIL $T/g.out >&2; exit 1; }"
# (reversed, with weights widened 5000 values at a time: products in blocks of rows, and every
# operand's 16-bit copy held between products, however small)
expect gpu_selftest_on_the_emulator_reversed 0 '' "PP_EMU_ORDER=reverse PP_CUDA_WIDEN_MAX=5000 PP_CUDA_HOLD_MIN=1 $GT tests/fixtures/llama/tiny > $T/r.out; tail -n 1 $T/r.out | grep -Eq '^[0-9]+ checks, 0 failed\$' || { grep FAIL $T/r.out >&2; exit 1; }"

# (each stream held back in turn, PP_EMU_DEFER: the side stream that widens weights for the
# products (backend_cuda.cu) and the stream of the products wait for each other where they must)
for d in 1 2; do
    expect gpu_selftest_on_the_emulator_stream_${d}_deferred 0 '' "PP_EMU_DEFER=$d PP_CUDA_WIDEN_MAX=5000 $GT tests/fixtures/llama/tiny $M > $T/d$d.out; tail -n 1 $T/d$d.out | grep -Eq '^[0-9]+ checks, 0 failed\$' || { grep FAIL $T/d$d.out >&2; exit 1; }"
done

# the tools with --device cuda (tests/gpu/tools.sh, which the GPU self-test runs too)
BIN=$BIN M=$M sh tests/gpu/tools.sh
