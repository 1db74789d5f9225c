#!/usr/bin/env python3
"""The peer for bench/train.sh: LoRA training with transformers + PEFT on the
CPU, on the same model directory and the same token dataset as pp-train.

usage: peer_train.py --threads T --steps S --targets q,v|all-linear
                     [--rank 16 --alpha 32 --lr 2e-4 --seed 0] MODEL_DIR DATASET

DATASET is a pp token dataset (pp-files(5)), zstd-compressed or plain; it is
decompressed with the zstd CLI and read with safetensors.numpy. Every record
must have the same length (bench/train.sh makes records of exactly 256
tokens), so a batch needs no padding.

What it runs, as pp-train does with the same options:
  - LlamaForCausalLM.from_pretrained(MODEL_DIR, dtype=float32), train();
    peft.get_peft_model with LoraConfig(r, lora_alpha, target_modules
    ["q_proj", "v_proj"] or "all-linear" (PEFT leaves lm_head out, as pp
    does), lora_dropout 0, bias "none"); torch.set_num_threads(T).
  - Records in pp-train's order: its xorshift shuffle of the record indices
    for epoch 1 with --seed (copied from tools/pp-train.c), cut into batches
    of 2; S optimizer steps (S * 2 records at most).
  - Each step: one forward of the (2, L) batch with labels = the ids, the
    prompt_lens[r] leading tokens of each record (BOS included) set to -100,
    so the loss is the mean cross-entropy over the step's response tokens,
    as pp-train's; backward; torch.nn.utils.clip_grad_norm_(1.0);
    torch.optim.AdamW(lr, betas (0.9, 0.999), eps 1e-8, weight_decay 0);
    linear decay of the learning rate to 0 over S steps (LambdaLR), as
    pp-train's default schedule; zero_grad(set_to_none=True).

After each step it writes one JSON line, {"step", "loss", "grad_norm",
"tokens"} (tokens: all tokens of the step's records, cumulative, like
pp-train's log) to file descriptor 3 when that is open (bench/train_util.py
run timestamps the lines as they arrive, for pp-train's --log as well), else
to stderr. At the end it prints one JSON object to stdout: versions, the
LoRA parameter count, and rss_after_imports_kb (VmRSS once torch,
transformers and peft are imported, before the model is loaded: the part of
the peak that is the interpreter and its libraries).
"""
import argparse
import json
import os
import subprocess
import sys
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore")

M64 = (1 << 64) - 1


def pp_order(n, seed):
    """tools/pp-train.c's shuffle of epoch 1 (a Fisher-Yates with xorshift64*)."""
    rng = (seed * 0x9E3779B97F4A7C15 + 0x632BE59BD9B4E019) & M64
    order = list(range(n))
    for i in range(n - 1, 0, -1):
        rng ^= rng >> 12
        rng ^= (rng << 25) & M64
        rng ^= rng >> 27
        j = ((rng * 0x2545F4914F6CDD1D) & M64) % (i + 1)
        order[i], order[j] = order[j], order[i]
    return order


def vm_rss_kb():
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return -1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--steps", type=int, required=True)
    ap.add_argument("--targets", required=True)
    ap.add_argument("--rank", type=int, default=16)
    ap.add_argument("--alpha", type=float, default=32)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--batch-size", type=int, default=2)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("model")
    ap.add_argument("data")
    a = ap.parse_args()

    try:
        log = os.fdopen(3, "w", buffering=1)
    except OSError:
        log = sys.stderr

    import numpy as np
    import peft
    import torch
    import transformers
    from peft import LoraConfig, get_peft_model
    from safetensors.numpy import load as st_load
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    torch.set_num_threads(a.threads)
    rss_imports = vm_rss_kb()
    torch.manual_seed(a.seed)

    raw = subprocess.run(["zstd", "-dcq", a.data], check=True, stdout=subprocess.PIPE).stdout
    t = st_load(raw)
    off, tok, plen = t["offsets"].astype(np.int64), t["tokens"].astype(np.int64), t["prompt_lens"].astype(np.int64)
    n = len(plen)
    lens = set((off[1:] - off[:-1]).tolist())
    if len(lens) != 1:
        sys.exit("peer: records of different lengths %s: this peer does not pad" % sorted(lens))
    L = lens.pop()
    order = pp_order(n, a.seed)

    model = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    tm = ["q_proj", "v_proj"] if a.targets == "q,v" else "all-linear" if a.targets == "all-linear" else a.targets.split(",")
    cfg = LoraConfig(r=a.rank, lora_alpha=a.alpha, target_modules=tm, lora_dropout=0.0, bias="none",
                     task_type="CAUSAL_LM")
    model = get_peft_model(model, cfg)
    model.train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=a.lr, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    S = a.steps
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: max(0.0, (S - s) / S))

    tokens = 0
    B = a.batch_size
    for step in range(S):
        pick = order[step * B:step * B + B]  # epoch 1 only: pp reshuffles after it
        if len(pick) < B:
            sys.exit("peer: %d records are too few for %d steps of %d" % (n, S, B))
        ids = torch.tensor(np.stack([tok[off[r]:off[r + 1]] for r in pick]), dtype=torch.long)
        labels = ids.clone()
        for i, r in enumerate(pick):
            labels[i, :max(int(plen[r]), 1)] = -100
        out = model(input_ids=ids, labels=labels)
        out.loss.backward()
        norm = torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        tokens += B * L
        log.write(json.dumps({"step": step + 1, "loss": float(out.loss), "grad_norm": float(norm),
                              "tokens": tokens}) + "\n")
        log.flush()

    n_lora = sum(p.numel() for p in params)
    json.dump({"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__,
               "threads": torch.get_num_threads(), "lora_params": n_lora, "record_len": L, "rss_after_imports_kb": rss_imports,
               "attn_implementation": getattr(model.config, "_attn_implementation", "?")}, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
