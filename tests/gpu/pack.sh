#!/bin/sh
# tests/gpu/pack.sh: run here (the build machine), before a GPU session:
# builds everything and gathers what the GPU self-test needs into
# build/gpu-pack/ (stripped tools, the CUDA backend library, the test
# program, the shared libraries the GPU machine may lack, the stories260K
# model and its NF4 file, Llama-2-7B of zeros in NF4), small enough to
# travel as one carried path:
#
#   sh tests/gpu/pack.sh
#   then on the GPU machine, carrying build/gpu-pack:
#   sh tests/gpu/session.sh     (the self-test, then the benchmarks, in a time budget)
set -eu
cd "$(dirname "$0")/../.."
make -j2 all cuda >/dev/null
P=build/gpu-pack
rm -rf "$P"
mkdir -p "$P/bin" "$P/lib" "$P/models"
for t in bin/pp-*; do strip -o "$P/bin/$(basename "$t")" "$t"; done
strip -o "$P/bin/test_cuda" build/gpu/test_cuda
strip -o "$P/bin/cuda_probe" build/cuda_probe
cp build/lib/libppcuda.so "$P/lib/"
# the libraries beyond glibc that the binaries load (cuBLAS comes from the GPU machine's CUDA or torch)
ldd "$P"/bin/* 2>/dev/null | awk '/=>/ {print $3}' | sort -u | while read -r lib; do
    case $(basename "$lib") in
    libc.so*|libm.so*|libdl.so*|librt.so*|libpthread.so*|ld-linux*) ;;
    *) cp -L "$lib" "$P/lib/" ;;
    esac
done
M=../shared/models/stories260K
if [ -r "$M/model.safetensors" ]; then
    mkdir -p "$P/models/stories260K"
    cp "$M"/config.json "$M"/model.safetensors "$M"/tokenizer.model "$P/models/stories260K/"
    bin/pp-quantize -q -o "$P/models/stories260K.nf4" "$M"
fi
T=../shared/models/llama2-tokenizer/tokenizer.model
[ -r "$T" ] && cp "$T" "$P/models/llama2-tokenizer.model"
# Llama-2-7B of zeros, NF4 with double quantization: under a megabyte compressed, for
# bench/gpu-train.sh's 7B QLoRA memory (a sparse 13 GB directory first; 1.5 min here)
if [ -r "$T" ]; then
    Z=$(mktemp -d /tmp/pp-zero7b-XXXXXX)
    python3 bench/zero_model.py "$Z" && cp "$T" "$Z/" &&
        bin/pp-quantize -q --double-quant -o "$P/models/llama2-7b-zero.nf4dq" "$Z"
    rm -rf "$Z"
fi
du -sh "$P"
