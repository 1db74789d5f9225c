"""The peer for bench/tokenize_hf.sh: the work of pp-tokenize with a
tokenizer.json, done the usual way in Python with Hugging Face `tokenizers`.
Also generates the benchmark's input and checks pp's ids against the peer's.

usage:
  peer_tokenize_hf.py gen OUT SIZE_BYTES SEED RARE
      (standard library only) JSON Lines {"prompt", "response"} as pp-format
      writes them (default template), made from data/pride_prejudice_ift.json
      and the paragraphs of data/corpus/*.md, repeated and varied: a fraction
      RARE of the words is rewritten (pseudo-words from random syllables,
      numbers glued on, case changes, swapped letters) so that a per-word
      cache cannot hide the cost of BPE. Deterministic for given arguments.
  peer_tokenize_hf.py run [--pre IDS] [--post IDS] [--digest] [--api NAME] DATA.jsonl TOKENIZER.json
      Tokenizer.from_file, then reads the JSONL in batches of at most 8 MB /
      65536 records (as pp-tokenize does), json.loads each line, encodes
      prompts and responses with Tokenizer.encode_batch(list,
      add_special_tokens=False) (Rust, rayon thread pool: RAYON_NUM_THREADS),
      and builds what pp-tokenize builds: one flat uint32 array of
      PRE + prompt + response + POST per record (PRE/POST: comma-separated
      ids, what pp puts around each record), offsets and prompt lengths.
      Prints one JSON line: records, tokens, prompt_tokens, threads, versions,
      read_to_ids_s; --digest adds sha256 of the token array and the prompt lengths.
      --api encode_batch (default) or encode_batch_fast (no offsets; tokenizers >= 0.21).
  peer_tokenize_hf.py check PP_DATASET.safetensors DATA.jsonl TOKENIZER.json
      reads pp's (decompressed) token dataset, infers from record 1 the ids pp
      puts before and after each record, encodes everything with the peer and
      compares every id and prompt length. Prints "PRE POST" (comma-separated,
      "-" for none) on stdout for the timed runs; exits 1 on a difference.
  peer_tokenize_hf.py report BYTES RECORDS DIR THREADS...
      (standard library only) reads DIR/times.{pp,peer}.N (one wall time in
      seconds a line) and prints the medians and the table: a row per thread
      count, MB/s of pp and of tokenizers and their ratio.
"""
import json
import os
import random
import struct
import sys
import time

BATCH_BYTES = 8 << 20
BATCH_RECORDS = 65536
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TEMPLATE = "### Instruction:\n{q}\n\n### Response:\n"

# ---------------------------------------------------------------- generate

SYLLABLES = [c + v for c in "bcdfghjklmnprstvwxz" for v in ("a", "e", "i", "o", "u", "ae", "ou", "y")]
ASKS = ["Continue the passage: \"{s}\"", "What happens after this? {s}", "Retell in your own words: {s}",
        "Who is speaking, and why? \"{s}\"", "Summarise the scene that begins: {s}"]


def vary_word(r, w):
    k = r.random()
    core = w.strip(".,;:!?\"'()")
    if not core:
        return w
    if k < 0.35:
        new = "".join(r.choice(SYLLABLES) for _ in range(r.randint(1, 4)))
        if core[:1].isupper():
            new = new.capitalize()
    elif k < 0.5:
        new = core + str(r.randint(0, 9999))
    elif k < 0.65:
        new = core.upper() if r.random() < 0.5 else core.lower().capitalize()
    elif k < 0.85 and len(core) > 3:
        i = r.randrange(len(core) - 1)
        new = core[:i] + core[i + 1] + core[i] + core[i + 2:]
    else:
        new = core + r.choice(["-like", "ish", "ness", "'s", "ed", "ing"])
    return w.replace(core, new, 1)


def vary(r, text, rare):
    out = []
    for line in text.split("\n"):
        ws = line.split(" ")
        out.append(" ".join(vary_word(r, w) if w and r.random() < rare else w for w in ws))
    return "\n".join(out)


def sources():
    with open(os.path.join(ROOT, "data", "pride_prejudice_ift.json"), encoding="utf-8") as f:
        qa = [(d["question"], d["answer"]) for d in json.load(f)]
    paras = []
    cdir = os.path.join(ROOT, "data", "corpus")
    for name in sorted(os.listdir(cdir)):
        if not name.endswith(".md"):
            continue
        with open(os.path.join(cdir, name), encoding="utf-8") as f:
            for p in f.read().split("\n\n"):
                p = p.strip()
                if len(p) > 80 and not p.startswith("#"):
                    paras.append(p)
    return qa, paras


def gen(out, size, seed, rare):
    r = random.Random(seed)
    qa, paras = sources()
    tmp = out + ".tmp"
    written = records = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as f:
        buf = []
        while written < size:
            if r.random() < 0.5:
                q, a = r.choice(qa)
                if r.random() < 0.3:  # a longer answer: the record's own plus a passage
                    a = a + "\n\n" + r.choice(paras)
            else:
                i = r.randrange(len(paras))
                p = paras[i]
                cut = p.find(". ", 40)
                first = p[:cut + 1] if cut > 0 else p[:120]
                q = r.choice(ASKS).format(s=first)
                a = "\n\n".join(paras[i:i + r.randint(1, 3)])
            line = json.dumps({"prompt": TEMPLATE.format(q=vary(r, q, rare)), "response": vary(r, a, rare)},
                              ensure_ascii=False) + "\n"
            buf.append(line)
            written += len(line.encode("utf-8"))
            records += 1
            if len(buf) >= 4096:
                f.write("".join(buf))
                buf.clear()
        f.write("".join(buf))
    os.replace(tmp, out)
    print(f"{records} records, {written} bytes")


# ---------------------------------------------------------------- the peer

def ids_arg(s):
    return [int(x) for x in s.split(",")] if s and s != "-" else []


def encode_all(tok, data, api, pre, post):
    """All records of data as numpy arrays: tokens, per-record lengths, prompt lengths."""
    import numpy as np
    enc = getattr(tok, api)
    tok_chunks, len_chunks, plen_chunks = [], [], []
    npre, npost = len(pre), len(post)

    def flush(prompts, responses):
        p = [e.ids for e in enc(prompts, add_special_tokens=False)]
        q = [e.ids for e in enc(responses, add_special_tokens=False)]
        plens = np.fromiter(map(len, p), dtype=np.uint32, count=len(p)) + npre
        rlens = np.fromiter(map(len, q), dtype=np.uint32, count=len(q)) + npost
        total = int(plens.sum(dtype=np.uint64) + rlens.sum(dtype=np.uint64))
        flat = [None] * (4 * len(p))      # PRE p0 r0 POST PRE p1 r1 POST ...: record order
        flat[0::4] = [pre] * len(p)
        flat[1::4] = p
        flat[2::4] = q
        flat[3::4] = [post] * len(p)
        tok_chunks.append(np.fromiter((t for ids in flat for t in ids), dtype=np.uint32, count=total))
        len_chunks.append(plens + rlens)
        plen_chunks.append(plens)

    prompts, responses, nbytes = [], [], 0
    with open(data, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            prompts.append(rec["prompt"])
            responses.append(rec["response"])
            nbytes += len(line)
            if len(prompts) >= BATCH_RECORDS or nbytes >= BATCH_BYTES:
                flush(prompts, responses)
                prompts, responses, nbytes = [], [], 0
    if prompts:
        flush(prompts, responses)
    cat = lambda c: np.concatenate(c) if c else np.zeros(0, np.uint32)  # noqa: E731
    return cat(tok_chunks), cat(len_chunks), cat(plen_chunks)


def load(path):
    from tokenizers import Tokenizer
    return Tokenizer.from_file(path)


def threads():
    if os.environ.get("TOKENIZERS_PARALLELISM", "true").lower() in ("0", "false", "off", "no"):
        return 1
    n = os.environ.get("RAYON_NUM_THREADS")
    return int(n) if n else os.cpu_count()


def run(args):
    import hashlib
    import numpy as np
    import tokenizers
    opts = {"--pre": "", "--post": "", "--api": "encode_batch"}
    digest = "--digest" in args
    args = [a for a in args if a != "--digest"]
    for k in list(opts):
        if k in args:
            i = args.index(k)
            opts[k] = args[i + 1]
            del args[i:i + 2]
    data, path = args
    tok = load(path)
    t0 = time.perf_counter()
    toks, lens, plens = encode_all(tok, data, opts["--api"], ids_arg(opts["--pre"]), ids_arg(opts["--post"]))
    offsets = np.zeros(len(lens) + 1, dtype=np.uint64)
    np.cumsum(lens, out=offsets[1:])
    seconds = time.perf_counter() - t0
    assert offsets[-1] == len(toks)
    out = {"records": int(len(lens)), "tokens": int(len(toks)), "prompt_tokens": int(plens.sum(dtype=np.uint64)),
           "threads": threads(), "api": opts["--api"], "tokenizers": tokenizers.__version__,
           "read_to_ids_s": round(seconds, 3)}
    if digest:
        out["tokens_sha256"] = hashlib.sha256(toks.astype("<u4").tobytes()).hexdigest()
        out["prompt_lens_sha256"] = hashlib.sha256(plens.astype("<u4").tobytes()).hexdigest()
    print(json.dumps(out))


def read_dataset(path):
    import numpy as np
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        body = f.read()
    header.pop("__metadata__", None)
    kinds = {"U32": "<u4", "U64": "<u8", "I32": "<i4", "I64": "<i8"}
    out = {}
    for name, t in header.items():
        a, b = t["data_offsets"]
        out[name] = np.frombuffer(body[a:b], dtype=kinds[t["dtype"]])
    return out


def check(args):
    import numpy as np
    dataset, data, path = args
    d = read_dataset(dataset)
    tokens, offs, plens = d["tokens"], d["offsets"].astype(np.int64), d["prompt_lens"]
    tok = load(path)
    with open(data, "rb") as f:
        first = json.loads(f.readline())
    p0 = tok.encode(first["prompt"], add_special_tokens=False).ids
    r0 = tok.encode(first["response"], add_special_tokens=False).ids
    rec0 = tokens[offs[0]:offs[1]].tolist()
    body = p0 + r0
    pre = post = None
    for k in range(0, len(rec0) - len(body) + 1):
        if rec0[k:k + len(body)] == body:
            pre, post = rec0[:k], rec0[k + len(body):]
            break
    if pre is None:
        sys.exit(f"check: pp's first record {rec0[:20]}... does not hold the peer's ids {body[:20]}...")
    ptoks, lens, pplens = encode_all(tok, data, "encode_batch", pre, post)
    bad = []
    if len(lens) != len(plens):
        bad.append(f"records: pp {len(plens)}, tokenizers {len(lens)}")
    elif not np.array_equal(np.diff(offs), lens.astype(np.int64)):
        i = int(np.nonzero(np.diff(offs) != lens)[0][0])
        bad.append(f"record {i + 1}: pp {int(offs[i + 1] - offs[i])} tokens, tokenizers {int(lens[i])}")
    elif not np.array_equal(tokens, ptoks):
        i = int(np.nonzero(tokens != ptoks)[0][0])
        r = int(np.searchsorted(offs, i, side="right")) - 1
        bad.append(f"token {i} (record {r + 1}): pp {int(tokens[i])}, tokenizers {int(ptoks[i])}")
    if len(lens) == len(plens) and not np.array_equal(plens, pplens):
        bad.append("prompt lengths differ")
    if bad:
        print("bench: pp AND tokenizers DISAGREE:", file=sys.stderr)
        for b in bad:
            print("  " + b, file=sys.stderr)
        sys.exit(1)
    print(f"bench: ids agree: {len(lens)} records, {len(tokens)} tokens ({int(plens.sum(dtype=np.uint64))} prompt), "
          f"each record {pre} + prompt + response + {post}, identical in pp and tokenizers", file=sys.stderr)
    fmt = lambda v: ",".join(map(str, v)) if v else "-"  # noqa: E731
    print(fmt(pre), fmt(post))


def report(args):
    import statistics
    nbytes, nrec, d, counts = int(args[0]), int(args[1]), args[2], args[3:]

    def med(tool, n):
        try:
            with open(os.path.join(d, f"times.{tool}.{n}")) as f:
                ts = [float(x) for x in f.read().split()]
        except OSError:
            return None
        if not ts:
            return None
        m = statistics.median(ts)
        print(f"{tool} -j {n}: wall s per run: {' '.join(f'{t:.2f}' for t in ts)}; median {m:.2f}")
        return m

    rows = []
    for n in counts:
        a, b = med("pp", n), med("peer", n)
        mb = lambda t: nbytes / 1e6 / t if t else None  # noqa: E731
        rows.append((n, mb(a), mb(b)))
    fmt = lambda v: f"{v:.2f}" if v else "n/a"  # noqa: E731
    print()
    print(f"{'threads':>7} | {'MB/s pp':>8} | {'MB/s tokenizers':>15} | {'ratio pp/tokenizers':>19}")
    print(f"{'-' * 7}-|-{'-' * 8}-|-{'-' * 15}-|-{'-' * 19}")
    for n, a, b in rows:
        ratio = f"{a / b:.2f}x" if a and b else "n/a"
        print(f"{n:>7} | {fmt(a):>8} | {fmt(b):>15} | {ratio:>19}")
    print(f"({nbytes / 1e6:.1f} MB, {nrec} records; MB/s = 10^6 input bytes of the JSONL per second of wall time)")


def main():
    if len(sys.argv) < 2 or sys.argv[1] not in ("gen", "run", "check", "report"):
        sys.exit(__doc__)
    cmd, args = sys.argv[1], sys.argv[2:]
    if cmd == "gen":
        gen(args[0], int(args[1]), int(args[2]), float(args[3]))
    elif cmd == "run":
        run(args)
    elif cmd == "report":
        report(args)
    else:
        check(args)


if __name__ == "__main__":
    main()
