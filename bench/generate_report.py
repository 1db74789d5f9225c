#!/usr/bin/env python3
"""The report of bench/generate.sh (python3, standard library only).

usage: generate_report.py DIR PROMPT_FILE "MODEL..." LINE...

DIR holds, per MODEL: MODEL.times and MODEL-nf4.times (pp: one line "P X G Y"
per run: prompt tokens, prompt tok/s, generated tokens, generation tok/s),
MODEL.out.N and MODEL-nf4.out.N (pp's text per run), MODEL.peer.json
(bench/peer_generate.py) and MODEL.sgemm (bench/sgemm_probe). Model shapes
are read from each model's config.json. Prints the details, then the table,
then the LINEs.

FLOPs: a prompt forward costs 2 * (decoder-layer linear weights) * P
multiply-adds counted as 2 FLOPs each, for q, k, v, o, gate, up and down;
attention (about 2 * P^2 * dim per layer), norms and the one lm_head row
are left out, so the rate slightly understates the work done.
"""
import json
import os
import statistics
import sys

from util import markdown_table


def config_dir(model):
    if model == "stories260K":
        return "../shared/models/stories260K"
    return "build/bench/models/%s-random" % model


def layer_params(cfg):
    d = cfg["hidden_size"]
    h = cfg["num_attention_heads"]
    k = cfg.get("num_key_value_heads") or h
    hd = cfg.get("head_dim") or d // h
    qd, kvd = h * hd, k * hd
    return cfg["num_hidden_layers"] * (d * qd + 2 * d * kvd + qd * d + 3 * d * cfg["intermediate_size"])


def read_times(path):
    rows = []
    with open(path) as f:
        for line in f:
            p, x, g, y = line.split()
            rows.append((int(p), float(x), int(g), float(y)))
    return rows


def common_prefix(a, b):
    n = 0
    for x, y in zip(a, b):
        if x != y:
            break
        n += 1
    return n


def agreement(pp_text, hf_text, what):
    if hf_text is None:
        return "no reference"
    if pp_text == hf_text:
        return "same text as %s (%d chars)" % (what, len(hf_text))
    if pp_text.strip() == hf_text.strip():
        return "same text as %s apart from surrounding whitespace (%r vs %r at the start)" % (
            what, pp_text[:3], hf_text[:3])
    k = common_prefix(pp_text, hf_text)
    return "differs from %s after %d of %d chars" % (what, k, len(hf_text))


def fmt(v):
    if v >= 100:
        return "%.0f" % v
    if v >= 10:
        return "%.1f" % v
    return "%.2f" % v


def main():
    d, prompt_file, models = sys.argv[1], sys.argv[2], sys.argv[3].split()
    lines = sys.argv[4:]
    table = []
    print("details:")
    for m in models:
        cfg = json.load(open(os.path.join(config_dir(m), "config.json")))
        lp = layer_params(cfg)
        peer = json.load(open(os.path.join(d, m + ".peer.json")))
        sg = open(os.path.join(d, m + ".sgemm")).read().split()
        sgemm_gflops, core = float(sg[7]), sg[8]
        hf_prompt = [peer["prompt_tokens"] / t for t in peer["prefill_s"]]
        hf_pt, hf_dec = statistics.median(hf_prompt), statistics.median(peer["decode_tps"])
        hf_text = peer["text"]
        for kind in ("f32", "nf4"):
            base = os.path.join(d, m if kind == "f32" else m + "-nf4")
            runs = read_times(base + ".times")
            texts = []
            for i in range(1, len(runs) + 1):
                with open("%s.out.%d" % (base, i), encoding="utf-8", errors="replace") as f:
                    t = f.read()
                texts.append(t[:-1] if t.endswith("\n") else t)
            P, G = runs[0][0], runs[0][2]
            pp_pt = statistics.median(r[1] for r in runs)
            pp_dec = statistics.median(r[3] for r in runs)
            gflops = 2.0 * lp * P * pp_pt / P / 1e9  # 2 * params * P / (P / rate)
            frac = gflops / sgemm_gflops
            notes = []
            if P != peer["prompt_tokens"]:
                notes.append("PROMPT TOKENS DIFFER: pp %d, transformers %d" % (P, peer["prompt_tokens"]))
            if any(r[2] != G for r in runs) or G != peer["new_tokens"]:
                notes.append("pp generated %s tokens (stops at EOS), transformers %d"
                             % ("/".join(str(r[2]) for r in runs), peer["new_tokens"]))
            if len(set(texts)) > 1:
                notes.append("PP TEXT DIFFERS BETWEEN RUNS")
            print("  %s %s: prompt %d tokens, %d new; pp prompt %s tok/s, decode %s tok/s (runs: %s)"
                  % (m, kind, P, G, fmt(pp_pt), fmt(pp_dec), ", ".join("%s/%s" % (fmt(r[1]), fmt(r[3])) for r in runs)))
            print("    pp prefill %.1f GFLOP/s (2 x %.2fM layer weights x %d tokens) = %.1f%% of OpenBLAS sgemm %.1f GFLOP/s (%s, M=%d)"
                  % (gflops, lp / 1e6, P, 100 * frac, sgemm_gflops, core, P))
            if kind == "f32":
                print("    transformers prompt %s tok/s, decode %s tok/s (runs: %s; N/(generate - prefill): %s)"
                      % (fmt(hf_pt), fmt(hf_dec),
                         ", ".join("%s/%s" % (fmt(a), fmt(b)) for a, b in zip(hf_prompt, peer["decode_tps"])),
                         ", ".join(fmt(x) for x in peer["decode_tps_sub"])))
            if kind == "f32":
                out = agreement(texts[0], hf_text, "transformers")
            else:
                out = agreement(texts[0], peer.get("nf4_text"), "transformers on NF4-round-tripped weights")
                out += "; " + agreement(texts[0], hf_text, "fp32 transformers")
            print("    output: %s%s" % (out, "".join("; " + n for n in notes)))
            table.append((m + ("" if m == "stories260K" else " (random)"), kind if kind == "f32" else "nf4 *",
                          fmt(pp_pt), fmt(hf_pt), fmt(pp_dec), fmt(hf_dec), "%.2fx" % (pp_dec / hf_dec),
                          "%.1f%%" % (100 * frac)))
    head = ("model", "weights", "pp prompt tok/s", "HF prompt tok/s", "pp decode tok/s", "HF decode tok/s",
            "decode ratio", "prefill % of sgemm")
    markdown_table(head, table, 2)
    print("* nf4: pp runs the pp-quantize NF4 file (blocksize 64; embeddings, norms and lm_head stay fp32); the HF"
          " column is the same fp32 model, since bitsandbytes' 4-bit layers do not run on this CPU")
    print("decode ratio = pp decode / HF decode (target >= 3x); prefill % of sgemm = pp's prefill FLOP rate over"
          " cblas_sgemm's on the same layer shapes and threads (target >= 50%)")
    peer = json.load(open(os.path.join(d, models[0] + ".peer.json")))
    sg = open(os.path.join(d, models[0] + ".sgemm")).read().split()
    for line in lines:
        print(line)
    print("peer: torch %s (CPU ops through %s, %d threads), transformers %s; sgemm: %s (core %s)"
          % (peer["torch"], peer["blas"], peer["threads"], peer["transformers"], " ".join(sg[9:]), sg[8]))


if __name__ == "__main__":
    main()
