#!/usr/bin/env python3
"""Random Llama models for bench/generate.sh, in Hugging Face layout.

usage: gen_models.py OUTDIR TOKENIZER.model NAME [NAME]...

NAME is stories15M or stories110M (the shapes of Karpathy's tinyllamas
checkpoints, vocab 32000 = the Llama 2 tokenizer, max_position_embeddings
1024). Each model is written to OUTDIR/NAME-random/ as config.json,
model.safetensors (float32), generation_config.json and a copy of
TOKENIZER.model, then OUTDIR/NAME-random/.stamp, which holds a key of
this file's checksum and the shape: a directory whose stamp matches is kept as
it is, anything else is rebuilt (written to NAME-random.tmp, then renamed).

Weights: every matrix (embeddings, the seven projections per layer and an
untied lm_head) ~ N(0, 0.02) from a torch.Generator seeded with SEED + the
parameter's index in name order, norms 1.0. Deterministic for a given torch
version (CPU normal_ with an explicit generator). The weights have no meaning;
they only make greedy generation well defined and costly like the real
models. transformers 5 writes rope_theta inside "rope_parameters"; a
top-level "rope_theta" is added as well, so that readers of either
convention see it.

Needs torch, transformers (5.x) and safetensors; no network.
"""
import hashlib
import json
import os
import shutil
import sys

SEED = 20240601
SHAPES = {
    # name: dim, hidden, layers, heads, kv heads
    "stories15M": (288, 768, 6, 6, 6),
    "stories110M": (768, 2048, 12, 12, 12),
}
VOCAB = 32000
MAX_POS = 1024


def key(name):
    with open(__file__, "rb") as f:
        h = hashlib.sha256(f.read()).hexdigest()[:16]
    return "%s %s %r vocab=%d max_pos=%d seed=%d" % (h, name, SHAPES[name], VOCAB, MAX_POS, SEED)


def build(outdir, tokenizer, name):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    dim, hidden, layers, heads, kv = SHAPES[name]
    final = os.path.join(outdir, name + "-random")
    stamp = os.path.join(final, ".stamp")
    want = key(name)
    if os.path.exists(stamp) and open(stamp).read().strip() == want:
        print("%s: cached" % final)
        return
    tmp = final + ".tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    cfg = LlamaConfig(
        vocab_size=VOCAB, hidden_size=dim, intermediate_size=hidden, num_hidden_layers=layers,
        num_attention_heads=heads, num_key_value_heads=kv, max_position_embeddings=MAX_POS,
        rms_norm_eps=1e-5, rope_parameters={"rope_type": "default", "rope_theta": 10000.0},
        hidden_act="silu", tie_word_embeddings=False, bos_token_id=1, eos_token_id=2,
        attention_bias=False, mlp_bias=False, initializer_range=0.02,
    )
    torch.manual_seed(SEED)
    model = LlamaForCausalLM(cfg).to(torch.float32)
    with torch.no_grad():
        for i, (pname, p) in enumerate(sorted(model.named_parameters())):
            if p.ndim == 1:
                p.fill_(1.0)
            else:
                g = torch.Generator().manual_seed(SEED + i)
                p.normal_(0.0, 0.02, generator=g)
    model.save_pretrained(tmp, safe_serialization=True)
    cpath = os.path.join(tmp, "config.json")
    with open(cpath) as f:
        c = json.load(f)
    rp = c.get("rope_parameters") or {}
    c["rope_theta"] = float(rp.get("rope_theta", 10000.0))
    c["torch_dtype"] = "float32"
    with open(cpath, "w") as f:
        json.dump(c, f, indent=2, sort_keys=True)
        f.write("\n")
    shutil.copyfile(tokenizer, os.path.join(tmp, "tokenizer.model"))
    with open(os.path.join(tmp, ".stamp"), "w") as f:
        f.write(want + "\n")
    shutil.rmtree(final, ignore_errors=True)
    os.rename(tmp, final)
    n = sum(p.numel() for p in model.parameters())
    print("%s: built, %d parameters" % (final, n))


def main():
    if len(sys.argv) < 4 or any(n not in SHAPES for n in sys.argv[3:]):
        sys.exit(__doc__.split("\n\n")[1])
    os.makedirs(sys.argv[1], exist_ok=True)
    for name in sys.argv[3:]:
        build(sys.argv[1], sys.argv[2], name)


if __name__ == "__main__":
    main()
