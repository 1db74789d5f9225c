# bench/gpu-lib.sh: the GPU benchmarks' shared preamble, sourced with OUT,
# W and LAYERS set (and EMU=1 for a dry run, below). Sets BIN
# (build/gpu-pack's tools when the pack is there, else bin/) and LD_LIBRARY_PATH (the pack's libraries, cuBLAS from torch's
# wheels when there is no toolkit), and makes M: a random model with
# Llama-2-7B's layer shape and LAYERS layers (bf16, bench/gpu_peer.py), the
# Llama 2 tokenizer beside it, and its NF4 file M.nf4 (QLoRA's: double quantization).
mkdir -p "$OUT" "$W"
BIN=bin
# EMU=1: a dry run of the benchmark on the CUDA emulator and the CPU peer,
# with a small model (bench/gpu_peer.py), to check the scripts before a GPU
# session; its figures mean nothing
if [ "${EMU:-0}" = 1 ]; then
    make -j2 all build/emu/libppcuda.so >/dev/null
    export PP_CUDA_LIB=build/emu/libppcuda.so PEER_DEVICE=cpu BENCH_SHAPE=small
    [ -x /opt/ppvenv/bin/python3 ] && export PATH="/opt/ppvenv/bin:$PATH"
fi
if [ "${EMU:-0}" != 1 ] && [ -x build/gpu-pack/bin/pp-train ]; then
    BIN=build/gpu-pack/bin
    export LD_LIBRARY_PATH="build/gpu-pack/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
fi
d=$(python3 -c 'import nvidia.cublas, os; print(os.path.join(list(nvidia.cublas.__path__)[0], "lib"))' 2>/dev/null || true)
[ -n "$d" ] && export LD_LIBRARY_PATH="$d:${LD_LIBRARY_PATH:-}"
M=$W/llama7b-shape-$LAYERS${BENCH_SHAPE:+-$BENCH_SHAPE}
[ -s "$M/config.json" ] || python3 bench/gpu_peer.py make "$M" "$LAYERS" 2> "$OUT/make.err"
# the tools want a tokenizer: the Llama 2 one (carried in the pack, or from ../shared)
for t in build/gpu-pack/models/llama2-tokenizer.model ../shared/models/llama2-tokenizer/tokenizer.model; do
    [ -s "$M/tokenizer.model" ] || { [ -r "$t" ] && cp "$t" "$M/tokenizer.model"; }
done
[ -s "$M.nf4" ] || "$BIN/pp-quantize" -q -t nf4 --double-quant -o "$M.nf4" "$M" 2> "$OUT/quantize.err"
