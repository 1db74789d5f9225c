#!/usr/bin/env python3
"""bench/zero_model.py DIR [LAYERS]: a Hugging Face Llama directory with
Llama-2-7B's shape (LAYERS of its 32 layers, default all) whose weights are
all zero, written as a sparse file: 13 GB that take no disk and no time.
Quantized (pp-quantize --double-quant) it becomes a 7B NF4 model file of
well under a megabyte once compressed, small enough to carry to a GPU
session, where pp-train measures the device memory of 7B QLoRA with it
(the memory does not depend on the values; the speed may, so it is not
timed). Needs nothing beyond the standard library; copy a tokenizer.model
into DIR before quantizing."""
import json
import os
import struct
import sys

CONFIG = {
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": 4096,
    "intermediate_size": 11008, "num_attention_heads": 32, "num_hidden_layers": 32,
    "num_key_value_heads": 32, "vocab_size": 32000, "rms_norm_eps": 1e-05, "rope_theta": 10000.0,
    "max_position_embeddings": 4096, "tie_word_embeddings": False, "bos_token_id": 1,
    "eos_token_id": 2, "torch_dtype": "bfloat16", "hidden_act": "silu",
}


def tensors(c):
    d, h, v = c["hidden_size"], c["intermediate_size"], c["vocab_size"]
    yield "model.embed_tokens.weight", [v, d]
    for i in range(c["num_hidden_layers"]):
        p = f"model.layers.{i}."
        yield p + "input_layernorm.weight", [d]
        for m in ("q", "k", "v", "o"):
            yield p + f"self_attn.{m}_proj.weight", [d, d]
        yield p + "post_attention_layernorm.weight", [d]
        yield p + "mlp.gate_proj.weight", [h, d]
        yield p + "mlp.up_proj.weight", [h, d]
        yield p + "mlp.down_proj.weight", [d, h]
    yield "model.norm.weight", [d]
    yield "lm_head.weight", [v, d]


def main():
    if len(sys.argv) not in (2, 3):
        sys.exit(__doc__)
    out = sys.argv[1]
    c = dict(CONFIG)
    if len(sys.argv) == 3:
        c["num_hidden_layers"] = int(sys.argv[2])
    os.makedirs(out, exist_ok=True)
    with open(os.path.join(out, "config.json"), "w") as f:
        json.dump(c, f)
    header, at = {"__metadata__": {"format": "pt"}}, 0
    for name, shape in tensors(c):
        n = 2
        for s in shape:
            n *= s
        header[name] = {"dtype": "BF16", "shape": shape, "data_offsets": [at, at + n]}
        at += n
    hb = json.dumps(header).encode()
    hb += b" " * (-len(hb) % 8)
    with open(os.path.join(out, "model.safetensors"), "wb") as f:
        f.write(struct.pack("<Q", len(hb)) + hb)
        f.truncate(8 + len(hb) + at)


if __name__ == "__main__":
    main()
