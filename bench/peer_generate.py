#!/usr/bin/env python3
"""The peer for bench/generate.sh: greedy generation with transformers on the
CPU, from the same Hugging Face directory and prompt as pp-generate.

usage: peer_generate.py --threads T --new N --runs R MODEL_DIR PROMPT_FILE

The prompt (PROMPT_FILE, stripped of surrounding whitespace) is encoded with
the directory's tokenizer.model through the sentencepiece package, with BOS
in front, exactly as pp-generate --raw does; the ids go to the model as they
are. The model is LlamaForCausalLM.from_pretrained(MODEL_DIR, dtype=float32),
eval(), under torch.inference_mode(), torch.set_num_threads(T). One untimed
warm-up (a prefill and a 4-token generate), then R timed runs, each:

  prefill  one forward of the prompt, model(ids, use_cache=True,
           logits_to_keep=1) (generate's own prefill also computes only the
           last position's logits); prompt tok/s = prompt tokens / its time.
  decode   model.generate(ids, attention_mask=1s, do_sample=False,
           max_new_tokens=N, min_new_tokens=N, streamer=S): S records the
           time each new token arrives. decode tok/s = N / (time from the
           first new token to the end of generate()): the first token is
           the product of the prefill, the other N - 1 each of one decoding
           forward. pp-generate reports N / (time from the end of its prefill
           to its last token), which covers the same N - 1 forwards and N
           samples. (N / (generate time - prefill time) is also given.)

With --nf4-blocksize B, after the timed runs the seven linear weights of
every decoder layer are replaced in place by their NF4 round trip (absmax per
block of B values of the row-major flattened weight, each value scaled by
1/absmax in float32 and mapped to the nearest of bitsandbytes' 16 NF4 codes,
code * absmax back), which is what pp-quantize's NF4 file holds (embeddings,
norms and lm_head untouched), and one more greedy generate (untimed) gives
nf4_text: the output pp's NF4 model should reproduce. This is a correctness
reference only; its speed means nothing.

Prints one JSON object: versions, prompt_tokens, new_tokens, per-run lists
prefill_s, decode_tps, decode_tps_sub, and the generated ids and text of the
last run. The text is the continuation as it reads after the prompt:
decode(prompt + new) with decode(prompt) cut off the front, so a first word
that starts with a space keeps it (sp.decode(new) alone would drop it).
"""
import argparse
import json
import os
import sys
import time
import warnings

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
warnings.filterwarnings("ignore")


# bitsandbytes' NF4 code (get_4bit_type("nf4")), float32
NF4 = [-1.0, -0.6961928009986877, -0.5250730514526367, -0.39491748809814453, -0.28444138169288635,
       -0.18477343022823334, -0.09105003625154495, 0.0, 0.07958029955625534, 0.16093020141124725,
       0.24611230194568634, 0.33791524171829224, 0.44070982933044434, 0.5626170039176941,
       0.7229568362236023, 1.0]


def nf4_roundtrip(w, bs):
    import torch
    code = torch.tensor(NF4, dtype=torch.float32)
    flat = w.detach().reshape(-1).to(torch.float32)
    n = flat.numel()
    pad = (-n) % bs
    blocks = torch.cat([flat, flat.new_zeros(pad)]).reshape(-1, bs)
    absmax = blocks.abs().amax(dim=1, keepdim=True)
    scaled = blocks * (1.0 / absmax)
    idx = (scaled.unsqueeze(-1) - code).abs().argmin(dim=-1)
    out = (code[idx] * absmax).reshape(-1)[:n].reshape(w.shape)
    return torch.nan_to_num(out, nan=0.0)  # an all-zero block stays zero


class TimingStreamer:
    """transformers' streamer protocol: put() gets the prompt first, then each new token."""

    def __init__(self):
        self.times = []
        self.ids = []
        self.seen_prompt = False

    def put(self, value):
        t = time.perf_counter()
        if not self.seen_prompt:
            self.seen_prompt = True
            return
        for v in value.reshape(-1).tolist():
            self.times.append(t)
            self.ids.append(int(v))

    def end(self):
        self.t_end = time.perf_counter()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--threads", type=int, required=True)
    ap.add_argument("--new", type=int, required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--nf4-blocksize", type=int, default=0)
    ap.add_argument("model")
    ap.add_argument("prompt")
    a = ap.parse_args()

    import sentencepiece as spm
    import torch
    import transformers
    from transformers import LlamaForCausalLM
    from transformers.utils import logging as tlog

    tlog.set_verbosity_error()
    tlog.disable_progress_bar()
    torch.set_num_threads(a.threads)

    sp = spm.SentencePieceProcessor(model_file=os.path.join(a.model, "tokenizer.model"))
    text = open(a.prompt, encoding="utf-8").read().strip()
    ids = [sp.bos_id()] + sp.encode(text)
    model = LlamaForCausalLM.from_pretrained(a.model, dtype=torch.float32)
    model.eval()
    x = torch.tensor([ids], dtype=torch.long)
    mask = torch.ones_like(x)
    eos = sp.eos_id()

    def prefill():
        t0 = time.perf_counter()
        model(input_ids=x, attention_mask=mask, use_cache=True, logits_to_keep=1)
        return time.perf_counter() - t0

    def continuation(new):
        full, head = sp.decode(ids + new), sp.decode(ids)
        return full[len(head):] if full.startswith(head) else sp.decode(new)

    def generate(n):
        s = TimingStreamer()
        t0 = time.perf_counter()
        out = model.generate(input_ids=x, attention_mask=mask, do_sample=False, max_new_tokens=n, min_new_tokens=n,
                             streamer=s, pad_token_id=eos, eos_token_id=eos, bos_token_id=sp.bos_id())
        t1 = time.perf_counter()
        return s, t0, t1, out[0, len(ids):].tolist()

    res = {"prefill_s": [], "decode_tps": [], "decode_tps_sub": []}
    with torch.inference_mode():
        prefill()
        generate(4)
        for _ in range(a.runs):
            tp = prefill()
            s, t0, t1, new = generate(a.new)
            if len(s.times) != a.new or new != s.ids:
                sys.exit("peer: expected %d new tokens, got %d" % (a.new, len(s.times)))
            res["prefill_s"].append(tp)
            res["decode_tps"].append(a.new / (t1 - s.times[0]))
            res["decode_tps_sub"].append(a.new / max(t1 - t0 - tp, 1e-9))
        if a.nf4_blocksize:
            for layer in model.model.layers:
                for lin in (layer.self_attn.q_proj, layer.self_attn.k_proj, layer.self_attn.v_proj,
                            layer.self_attn.o_proj, layer.mlp.gate_proj, layer.mlp.up_proj, layer.mlp.down_proj):
                    lin.weight.copy_(nf4_roundtrip(lin.weight, a.nf4_blocksize))
            res["nf4_text"] = continuation(generate(a.new)[3])
    res.update({
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "blas": "MKL" if torch.backends.mkl.is_available() else "?",
        "threads": torch.get_num_threads(),
        "prompt_tokens": len(ids),
        "new_tokens": a.new,
        "ids": new,
        "text": continuation(new),
    })
    json.dump(res, sys.stdout)
    sys.stdout.write("\n")


if __name__ == "__main__":
    main()
