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
"""
import json
import statistics
import sys
import time

import torch


def make(d, layers):
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    cfg = LlamaConfig(hidden_size=4096, intermediate_size=11008, num_hidden_layers=layers, num_attention_heads=32,
                      num_key_value_heads=32, vocab_size=32000, max_position_embeddings=4096, rms_norm_eps=1e-5,
                      tie_word_embeddings=False, bos_token_id=1, eos_token_id=2)
    with torch.device("cuda"):
        m = LlamaForCausalLM(cfg).to(torch.bfloat16)
    m.save_pretrained(d, safe_serialization=True)


def bandwidth():
    n = 2 << 30
    a = torch.empty(n, dtype=torch.uint8, device="cuda")
    b = torch.empty_like(a)
    times = []
    for _ in range(12):
        torch.cuda.synchronize()
        t = time.perf_counter()
        b.copy_(a)
        torch.cuda.synchronize()
        times.append(time.perf_counter() - t)
    print(json.dumps({"bandwidth_gbs": 2 * n / statistics.median(times[2:]) / 1e9}))


def generate(d, p, n):
    from transformers import LlamaForCausalLM
    m = LlamaForCausalLM.from_pretrained(d, dtype=torch.bfloat16).cuda().eval()
    ids = torch.tensor([[1 + (i * 7919) % 31999 for i in range(p)]], device="cuda")
    pre, dec = [], []
    with torch.no_grad():
        m.generate(ids, max_new_tokens=4, min_new_tokens=4, do_sample=False)  # warm-up
        torch.cuda.reset_peak_memory_stats()
        for _ in range(3):
            torch.cuda.synchronize()
            t = time.perf_counter()
            m(ids)
            torch.cuda.synchronize()
            pre.append(p / (time.perf_counter() - t))
            t = time.perf_counter()
            m.generate(ids, max_new_tokens=n, min_new_tokens=n, do_sample=False)
            torch.cuda.synchronize()
            total = time.perf_counter() - t
            dec.append(n / max(total - p / pre[-1], 1e-9))  # generate's own prefill taken out
    print(json.dumps({"prefill_tps": statistics.median(pre), "decode_tps": statistics.median(dec),
                      "peak_mib": torch.cuda.max_memory_allocated() / 2**20}))


if __name__ == "__main__":
    if sys.argv[1] == "make":
        make(sys.argv[2], int(sys.argv[3]))
    elif sys.argv[1] == "bandwidth":
        bandwidth()
    else:
        generate(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
