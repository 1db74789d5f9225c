#!/bin/sh
# tests/gpu/session.sh: what a GPU session runs, most important first, each
# part only when the time left allows it, within BUDGET seconds (default
# 540: one device call of 10 minutes, less a margin). Run here first
# `sh tests/gpu/pack.sh`; then on the device, carrying build/gpu-pack:
#
#   sh tests/gpu/session.sh
#
# 1. tests/gpu/selftest.sh (the GPU self-test);
# 2. bench/gpu-train.sh at batch 2, with the profiles and Llama-2-7B QLoRA's
#    whole memory;
# 3. bench/gpu-generate.sh (8 layers);
# 4. bench/gpu-train.sh at batch 8.
# Each part's logs go to $OUT/PART/ (default build/gpu-logs); its table is
# printed as it ends, so a session stopped short still returns what ran.
set -u
cd "$(dirname "$0")/../.."
OUT=${OUT:-build/gpu-logs}
BUDGET=${BUDGET:-540}
mkdir -p "$OUT"
t0=$(date +%s)
# part NAME SECONDS COMMAND...: runs COMMAND with OUT=$OUT/NAME when SECONDS are left, for at most what is left
part() {
    name=$1 want=$2
    shift 2
    left=$((BUDGET - ($(date +%s) - t0)))
    if [ "$left" -lt "$want" ]; then
        echo "== $name: not run ($left s left, it wants about $want)"
        return
    fi
    echo "== $name"
    mkdir -p "$OUT/$name"
    s=$(date +%s)
    OUT="$OUT/$name" timeout "$left" "$@"
    echo "== $name: exit $? after $(($(date +%s) - s)) s"
}
part selftest 150 sh tests/gpu/selftest.sh
part train-batch2 200 env BATCHES=2 LAYERS=4 sh bench/gpu-train.sh
part generate 90 env LAYERS=8 sh bench/gpu-generate.sh
part train-batch8 120 env BATCHES=8 LAYERS=4 EXTRAS=0 sh bench/gpu-train.sh
echo "== session: $(($(date +%s) - t0)) s of $BUDGET"
