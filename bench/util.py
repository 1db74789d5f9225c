#!/usr/bin/env python3
"""Helpers for bench/tokenize.sh (python3, standard library only).

  util.py time FILE -- CMD [ARG]...
      run CMD (stdin, stdout, stderr inherited), append its wall time in
      seconds to FILE; exit with CMD's status.
  util.py stinfo < DATASET.safetensors
      read a pp token dataset (already decompressed: zstd -dc) and print JSON:
      metadata records and tokens, tensor lengths, prompt tokens, and the
      sha256 of the tokens and prompt_lens tensors.
  util.py check PP_STINFO PP_SUMMARY_LINE PEER_JSON
      compare pp's counts with the peer's; exit 1 with the differences if any.
  util.py report BYTES RECORDS PP_TIMES PEER_TIMES|- LABEL...
      print medians and the table.

Also imported by the other benchmarks' reports: markdown_table().
"""
import hashlib
import json
import re
import statistics
import struct
import subprocess
import sys
import time


def cmd_time(argv):
    out, sep, cmd = argv[0], argv[1], argv[2:]
    if sep != "--" or not cmd:
        sys.exit("util.py time FILE -- CMD...")
    t0 = time.perf_counter()
    rc = subprocess.call(cmd)
    dt = time.perf_counter() - t0
    if rc == 0:
        with open(out, "a") as f:
            f.write(f"{dt:.6f}\n")
    sys.exit(rc)


def read_exact(f, n):
    b = f.read(n)
    if len(b) != n:
        sys.exit(f"util.py stinfo: truncated dataset (wanted {n} bytes, got {len(b)})")
    return b


def cmd_stinfo(argv):
    f = sys.stdin.buffer
    (hlen,) = struct.unpack("<Q", read_exact(f, 8))
    header = json.loads(read_exact(f, hlen))
    meta = header.pop("__metadata__", {})
    tensors = sorted(header.items(), key=lambda kv: kv[1]["data_offsets"][0])
    info = {"meta_records": int(meta["records"]), "meta_tokens": int(meta["tokens"])}
    pos = 0
    for name, t in tensors:
        a, b = t["data_offsets"]
        if a > pos:
            read_exact(f, a - pos)
        h = hashlib.sha256()
        left = b - a
        prompt_sum = 0
        while left:
            chunk = read_exact(f, min(left, 1 << 22))
            left -= len(chunk)
            h.update(chunk)
            if name == "prompt_lens":
                prompt_sum += sum(struct.unpack(f"<{len(chunk) // 4}I", chunk))
        pos = b
        info[name + "_len"] = t["shape"][0]
        info[name + "_sha256"] = h.hexdigest()
        if name == "prompt_lens":
            info["prompt_tokens"] = prompt_sum
    print(json.dumps(info))


def cmd_check(argv):
    st = json.loads(argv[0])
    m = re.search(r"(\d+) records, (\d+) tokens", argv[1])
    peer = json.loads(argv[2]) if len(argv) > 2 and argv[2] else None
    bad = []
    if not m:
        bad.append(f"no 'N records, N tokens' line from pp-tokenize -v: {argv[1]!r}")
    else:
        rec, tok = int(m.group(1)), int(m.group(2))
        if (rec, tok) != (st["meta_records"], st["meta_tokens"]):
            bad.append(f"pp-tokenize said {rec} records, {tok} tokens; its dataset says "
                       f"{st['meta_records']}, {st['meta_tokens']}")
    if st["tokens_len"] != st["meta_tokens"] or st["prompt_lens_len"] != st["meta_records"]:
        bad.append("pp dataset: metadata and tensor shapes differ")
    if peer:
        for what, a, b in (("records", st["meta_records"], peer["records"]),
                           ("tokens", st["meta_tokens"], peer["tokens"]),
                           ("prompt tokens", st["prompt_tokens"], peer["prompt_tokens"])):
            if a != b:
                bad.append(f"{what}: pp {a}, python sentencepiece {b}")
        if "tokens_sha256" in peer:
            if peer["tokens_sha256"] != st["tokens_sha256"]:
                bad.append("token ids differ (sha256 of the token arrays)")
            if peer["prompt_lens_sha256"] != st["prompt_lens_sha256"]:
                bad.append("prompt lengths differ (sha256 of the prompt_lens arrays)")
    if bad:
        print("bench: TOKEN COUNTS DISAGREE:", file=sys.stderr)
        for b in bad:
            print("  " + b, file=sys.stderr)
        sys.exit(1)
    if peer:
        ids = " and token ids" if "tokens_sha256" in peer else ""
        print(f"token counts agree: {st['meta_records']} records, {st['meta_tokens']} tokens "
              f"({st['prompt_tokens']} prompt){ids} identical in pp and python sentencepiece")
    else:
        print(f"pp: {st['meta_records']} records, {st['meta_tokens']} tokens "
              f"(no peer to compare with)")


def times(path):
    with open(path) as f:
        return [float(x) for x in f.read().split()]


def cmd_report(argv):
    nbytes, nrec, pp_path, peer_path = int(argv[0]), int(argv[1]), argv[2], argv[3]
    labels = argv[4:6]
    rows = []
    for label, path in zip(labels, (pp_path, peer_path)):
        if path == "-":
            continue
        ts = times(path)
        med = statistics.median(ts)
        print(f"{label}: wall s per run: {' '.join(f'{t:.2f}' for t in ts)}; median {med:.2f}")
        rows.append((label, nbytes / 1e6 / med, nrec / med))
    peer_mbs = rows[1][1] if len(rows) > 1 else None
    print()
    w = max([4] + [len(r[0]) for r in rows])
    print(f"{'tool':<{w}} | {'MB/s':>7} | {'records/s':>9} | ratio vs python sentencepiece")
    print(f"{'-' * w}-|-{'-' * 7}-|-{'-' * 9}-|-{'-' * 29}")
    for label, mbs, rps in rows:
        ratio = f"{mbs / peer_mbs:.2f}x" if peer_mbs else "n/a (peer unavailable)"
        print(f"{label:<{w}} | {mbs:7.2f} | {rps:9.0f} | {ratio}")


def markdown_table(head, rows, left):
    """Prints a Markdown table, a blank line before it: the first `left`
    columns aligned left, the others right."""
    w = [max(len(r[i]) for r in list(rows) + [head]) for i in range(len(head))]
    print()
    print("| " + " | ".join(h.ljust(w[i]) for i, h in enumerate(head)) + " |")
    print("|" + "|".join("-" * (w[i] + 2) for i in range(len(head))) + "|")
    for r in rows:
        print("| " + " | ".join(c.ljust(w[i]) if i < left else c.rjust(w[i]) for i, c in enumerate(r)) + " |")


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, argv = sys.argv[1], sys.argv[2:]
    {"time": cmd_time, "stinfo": cmd_stinfo, "check": cmd_check, "report": cmd_report}[cmd](argv)


if __name__ == "__main__":
    main()
