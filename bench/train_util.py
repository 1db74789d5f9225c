#!/usr/bin/env python3
"""Helpers for bench/train.sh (python3, standard library only).

  train_util.py data OUT.jsonl RECORDS SEED
      write RECORDS lines of {"prompt": ..., "response": ...}: a prompt of
      12-30 words and a response of 600 words, English-ish text from
      bench/gen.py's word list, so that every record is longer than 256
      tokens with either tokenizer and pp-tokenize --max-len cuts it to
      exactly that (the prompt kept whole, no EOS).
  train_util.py check DATASET.safetensors LEN
      a plain (zstd -dc) pp token dataset: exit 1 unless every record has
      exactly LEN tokens; print "RECORDS PROMPT_MIN PROMPT_MAX".
  train_util.py run OUT.json -- CMD [ARG]...
      run CMD with a pipe on its file descriptor 3 (pp-train --log /dev/fd/3,
      bench/peer_train.py writes there by itself) and stdout captured; stamp
      each line that arrives on the pipe with time.perf_counter(); then
      os.wait4 gives the child's own rusage (ru_maxrss: its peak RSS, its
      alone, as this process starts nothing else). Writes OUT.json:
      {"t": [seconds since start per line], "lines": [parsed lines],
       "maxrss_kb", "wall_s", "utime_s", "stime_s", "stdout"}; exits with
      CMD's status.
  train_util.py report DIR WARMUP "CONFIG..." LINE...
      print the per-run details, the table of medians, then the LINEs.
      CONFIG is MODEL/TARGETS/STEPS; DIR holds MODEL.TARGETS.{pp,peer}.N.json.
"""
import fcntl
import json
import os
import random
import statistics
import struct
import subprocess
import sys
import time

from util import markdown_table


def cmd_data(argv):
    out, n, seed = argv[0], int(argv[1]), int(argv[2])
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    import gen  # bench/gen.py: its word list only

    words = list(gen.WORDS)
    r = random.Random(seed)

    def sentence(k):
        s = " ".join(r.choice(words) for _ in range(k))
        return s[0].upper() + s[1:] + "."

    def text(nwords):
        parts, left = [], nwords
        while left > 0:
            k = min(left, r.randint(6, 18))
            parts.append(sentence(k))
            left -= k
        return " ".join(parts)

    with open(out + ".tmp", "w") as f:
        for _ in range(n):
            q = text(r.randint(12, 30))
            f.write(json.dumps({"prompt": "### Instruction:\n%s\n\n### Response:\n" % q,
                                "response": text(600)}) + "\n")
    os.rename(out + ".tmp", out)


def cmd_check(argv):
    path, want = argv[0], int(argv[1])
    with open(path, "rb") as f:
        (hlen,) = struct.unpack("<Q", f.read(8))
        header = json.loads(f.read(hlen))
        base = 8 + hlen

        def tensor(name, fmt, size):
            a, b = header[name]["data_offsets"]
            f.seek(base + a)
            return struct.unpack("<%d%s" % ((b - a) // size, fmt), f.read(b - a))

        off = tensor("offsets", "Q", 8)
        plen = tensor("prompt_lens", "I", 4)
    lens = [off[i + 1] - off[i] for i in range(len(off) - 1)]
    bad = [i for i, n in enumerate(lens) if n != want]
    if bad:
        sys.exit("train_util.py check: %d of %d records are not %d tokens long (record %d: %d)"
                 % (len(bad), len(lens), want, bad[0], lens[bad[0]]))
    print(len(lens), min(plen), max(plen))


def cmd_run(argv):
    out, sep, cmd = argv[0], argv[1], argv[2:]
    if sep != "--" or not cmd:
        sys.exit("train_util.py run OUT.json -- CMD...")
    r, w = os.pipe()
    r2 = fcntl.fcntl(r, fcntl.F_DUPFD_CLOEXEC, 10)  # out of the way of 3
    os.close(r)
    r = r2
    if w != 3:
        os.dup2(w, 3)
        os.close(w)
    t0 = time.perf_counter()
    p = subprocess.Popen(cmd, pass_fds=(3,), stdout=subprocess.PIPE)
    os.close(3)
    stamps, lines = [], []
    with os.fdopen(r, "r") as f:
        for line in f:
            stamps.append(time.perf_counter() - t0)
            try:
                lines.append(json.loads(line))
            except ValueError:
                lines.append({"raw": line.rstrip("\n")})
    stdout = p.stdout.read().decode("utf-8", "replace")
    _, status, ru = os.wait4(p.pid, 0)
    wall = time.perf_counter() - t0
    rc = os.waitstatus_to_exitcode(status)
    p.returncode = rc
    if rc == 0:
        with open(out, "w") as f:
            json.dump({"t": stamps, "lines": lines, "maxrss_kb": ru.ru_maxrss, "wall_s": wall,
                       "utime_s": ru.ru_utime, "stime_s": ru.ru_stime, "stdout": stdout}, f)
    sys.exit(rc if rc >= 0 else 128 - rc)


def timed(run, warm):
    """(tokens/s, seconds per step) over the steps after the first `warm`."""
    t, lines = run["t"], run["lines"]
    if len(t) <= warm:
        raise SystemExit("train_util.py report: %d step lines, fewer than warm-up %d + 1" % (len(t), warm))
    toks = lines[-1]["tokens"] - (lines[warm - 1]["tokens"] if warm else 0)
    dt = t[-1] - (t[warm - 1] if warm else 0.0)
    return toks / dt, dt / (len(t) - warm), toks


def fmt(v):
    return "%.0f" % v if v >= 100 else "%.1f" % v if v >= 10 else "%.2f" % v


def cmd_report(argv):
    d, warm, configs, extra = argv[0], int(argv[1]), argv[2].split(), argv[3:]
    table = []
    print("details:")
    for c in configs:
        model, targets, steps = c.split("/")
        base = os.path.join(d, "%s.%s" % (model, targets.replace(",", "")))
        res = {}
        for who in ("pp", "peer"):
            runs = []
            i = 1
            while os.path.exists("%s.%s.%d.json" % (base, who, i)):
                runs.append(json.load(open("%s.%s.%d.json" % (base, who, i))))
                i += 1
            res[who] = runs
        row = {}
        for who, runs in res.items():
            tps = [timed(r, warm)[0] for r in runs]
            sps = [timed(r, warm)[1] for r in runs]
            rss = [r["maxrss_kb"] / 1024.0 for r in runs]
            row[who] = (statistics.median(tps), statistics.median(rss))
            toks = timed(runs[0], warm)[2]
            print("  %s %s %s: tok/s %s (median %s; %d steps timed after %d, %d tokens, s/step %s);"
                  " peak RSS MB %s; CPU s user+sys %s; wall s %s"
                  % (model, targets, who, " ".join(fmt(x) for x in tps), fmt(row[who][0]), len(runs[0]["t"]) - warm,
                     warm, toks, " ".join("%.3f" % x for x in sps), " ".join("%.0f" % x for x in rss),
                     " ".join("%.1f" % (r["utime_s"] + r["stime_s"]) for r in runs),
                     " ".join("%.1f" % r["wall_s"] for r in runs)))
        pr = [timed(x, warm)[0] / timed(y, warm)[0] for x, y in zip(res["pp"], res["peer"])]
        print("    pp / peer tok/s within each run (they ran back to back): %s; median %.2fx; best of each: %s / %s = %.2fx"
              % (" ".join("%.2fx" % x for x in pr), statistics.median(pr),
                 fmt(max(timed(x, warm)[0] for x in res["pp"])), fmt(max(timed(x, warm)[0] for x in res["peer"])),
                 max(timed(x, warm)[0] for x in res["pp"]) / max(timed(x, warm)[0] for x in res["peer"])))
        # step 1: B is zero in both, so the loss is the base model's on the same batch
        l_pp = res["pp"][0]["lines"][0]["loss"]
        l_peer = res["peer"][0]["lines"][0]["loss"]
        rel = abs(l_pp - l_peer) / max(abs(l_peer), 1e-9)
        last_pp = res["pp"][0]["lines"][-1]["loss"]
        last_peer = res["peer"][0]["lines"][-1]["loss"]
        note = "same batch" if rel < 1e-4 else "DIFFERENT (different tokens, masking or batches?)"
        print("    loss at step 1 (base model, same batch): pp %.6f, peer %.6f: %s; at step %d: pp %.6f, peer %.6f"
              % (l_pp, l_peer, note, len(res["pp"][0]["lines"]), last_pp, last_peer))
        table.append((model if model == "stories260K" else model + " (random)", targets, fmt(row["pp"][0]), fmt(row["peer"][0]), "%.2fx" % (row["pp"][0] / row["peer"][0]),
                      "%.0f" % row["pp"][1], "%.0f" % row["peer"][1], "%.2fx" % (row["pp"][1] / row["peer"][1])))
    head = ("model", "targets", "pp tok/s", "PEFT tok/s", "speed ratio", "pp peak RSS MB", "PEFT peak RSS MB",
            "RSS ratio")
    markdown_table(head, table, 2)
    print("speed ratio = pp tok/s / PEFT tok/s (target >= 3x); RSS ratio = pp peak RSS / PEFT peak RSS (target <= 0.5x)")
    fast = sum(1 for r in table if float(r[4][:-1]) >= 3.0)
    small = sum(1 for r in table if float(r[7][:-1]) <= 0.5)
    print("targets met: speed %d of %d rows, memory %d of %d rows" % (fast, len(table), small, len(table)))
    for line in extra:
        print(line)


def main():
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    cmd, argv = sys.argv[1], sys.argv[2:]
    {"data": cmd_data, "check": cmd_check, "run": cmd_run, "report": cmd_report}[cmd](argv)


if __name__ == "__main__":
    main()
