#!/usr/bin/env python3
"""bench/gpu_peer.py: the GPU side of bench/gpu-generate.sh.

  gpu_peer.py make DIR LAYERS      a random model with Llama-2-7B's layer shape
                                   (hidden 4096, intermediate 11008, 32 heads,
                                   vocab 32000) and LAYERS layers, bf16, saved
                                   with save_pretrained (torch.manual_seed(0))
  gpu_peer.py bandwidth            device-to-device copy of 2 GiB, median of
                                   10: prints GB/s (bytes read + written / s)
  gpu_peer.py generate DIR P N     transformers' generate on cuda, bf16, the
                                   same prompt ids pp uses (1 + (i*7919) %
                                   31999 for i < P), greedy, N new tokens
                                   (min_new_tokens=N); prints prefill and
                                   decode tokens/s (median of 3) and peak
                                   device memory
  gpu_peer.py train DIR B T TARGETS CKPT
                                   transformers + PEFT LoRA (r 16, alpha 32,
                                   TARGETS "q,v" or "all-linear"), bf16 base,
                                   batch B x T random tokens, AdamW lr 2e-4,
                                   gradient checkpointing when CKPT is 1;
                                   3 warm-up steps, then the median step time
                                   of 10: tokens/s and peak device memory
  gpu_peer.py matmul               the bf16 matrix-product rate of the GPU:
                                   8192^3 products, median of 10, TFLOP/s

PEER_DEVICE=cpu and BENCH_SHAPE=small (set by EMU=1 in bench/gpu-lib.sh):
the same on the CPU with a small model (hidden 256) and small sizes, so
that the GPU benchmarks can be run through on the CUDA emulator before a
GPU session; their figures then mean nothing.
"""
import json
import os
import statistics
import sys
import time

import torch

DEV = os.environ.get("PEER_DEVICE", "cuda")
SMALL = os.environ.get("BENCH_SHAPE") == "small"


def sync():
    if DEV == "cuda":
        torch.cuda.synchronize()


def reset_peak():
    if DEV == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_mib():
    return torch.cuda.max_memory_allocated() / 2**20 if DEV == "cuda" else 0.0


def make(d, layers):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    dim, hid, heads = (256, 688, 4) if SMALL else (4096, 11008, 32)
    cfg = LlamaConfig(hidden_size=dim, intermediate_size=hid, num_hidden_layers=layers, num_attention_heads=heads,
                      num_key_value_heads=heads, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    with torch.device(DEV):
        m = LlamaForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(d, safe_serialization=True)


def bandwidth():
    n = (64 << 20) if SMALL else (2 << 30)
    a = torch.empty(n, dtype=torch.uint8, device=DEV)
    b = torch.empty_like(a)
    times = []
    for _ in range(12):
        sync()
        t = time.perf_counter()
        b.copy_(a)
        sync()
        times.append(time.perf_counter() - t)
    print(json.dumps({"bandwidth_gbs": 2 * n / statistics.median(times[2:]) / 1e9}))


def generate(d, p, n):
    from transformers import LlamaForCausalLM
    m = LlamaForCausalLM.from_pretrained(d, dtype=torch.bfloat16).to(DEV).eval()
    ids = torch.tensor([[1 + (i * 7919) % 31999 for i in range(p)]], device=DEV)
    pre, dec = [], []
    with torch.no_grad():
        m.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)  # warm-up
        reset_peak()
        for _ in range(3):
            sync()
            t = time.perf_counter()
            m(ids)
            sync()
            pre.append(p / (time.perf_counter() - t))
            t = time.perf_counter()
            m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
            sync()
            total = time.perf_counter() - t
            dec.append(n / max(total - p / pre[-1], 1e-9))  # generate's own prefill taken out
    print(json.dumps({"prefill_tps": statistics.median(pre), "decode_tps": statistics.median(dec),
                      "peak_mib": peak_mib()}))


def train(d, b, t, targets, ckpt):
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM
    m = LlamaForCausalLM.from_pretrained(d, dtype=torch.bfloat16).to(DEV)
    if ckpt:
        m.gradient_checkpointing_enable()
        m.enable_input_require_grads()
    mods = ["q_proj", "v_proj"] if targets == "q,v" else "all-linear"
    m = get_peft_model(m, LoraConfig(r=16, lora_alpha=32, target_modules=mods, lora_dropout=0.0, task_type="CAUSAL_LM"))
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], lr=2e-4)
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(3, 32000, (b, t), generator=g).to(DEV)
    times = []
    reset_peak()
    for i in range(13):
        sync()
        t0 = time.perf_counter()
        loss = m(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        if i >= 3:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"tokens_per_s": b * t / statistics.median(times),
                      "peak_mib": peak_mib()}))


def matmul():
    n = 512 if SMALL else 8192
    a = torch.randn(n, n, dtype=torch.bfloat16, device=DEV)
    b = torch.randn(n, n, dtype=torch.bfloat16, device=DEV)
    times = []
    for _ in range(12):
        sync()
        t = time.perf_counter()
        a @ b
        sync()
        times.append(time.perf_counter() - t)
    print(json.dumps({"bf16_tflops": 2 * n**3 / statistics.median(times[2:]) / 1e12}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "bandwidth":
        bandwidth()
    elif sys.argv[1] == "train":
        train(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]), sys.argv[5], sys.argv[6] == "1")
    elif sys.argv[1] == "matmul":
        matmul()
    else:
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
