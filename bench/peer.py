"""The peer for bench/tokenize.sh: the same work as pp-format | pp-tokenize,
done the usual way in Python with the sentencepiece package.

usage: peer.py [--digest] [--threads N] DATA.jsonl TOKENIZER.model

Reads {"question", "answer"} JSON Lines, renders each record with pp's default
template (prompt = "### Instruction:\n{question}\n\n### Response:\n",
response = answer), encodes prompts and responses with the batch API
sp.encode(list_of_str) (C++ thread pool, num_threads=-1 = all CPUs unless
--threads), and builds what pp-tokenize builds: one flat uint32 array of
BOS + prompt + response + EOS per record, record offsets and prompt lengths.
Input is taken in batches of at most 8 MB / 65536 records, as pp-tokenize does.

Prints one JSON line on stdout: records, tokens, prompt_tokens, threads,
sentencepiece version, seconds from start of reading to having all ids (the
benchmark itself times the whole process), and with --digest the sha256 of
the token array (little-endian uint32) and of the prompt lengths.
"""
import json
import sys
import time

import numpy as np
import sentencepiece as spm

BATCH_BYTES = 8 << 20
BATCH_RECORDS = 65536


def main():
    args = sys.argv[1:]
    digest = "--digest" in args
    threads = -1
    if "--threads" in args:
        i = args.index("--threads")
        threads = int(args[i + 1])
        del args[i:i + 2]
    args = [a for a in args if a != "--digest"]
    data, model = args

    sp = spm.SentencePieceProcessor(model_file=model, num_threads=threads)
    bos, eos = sp.bos_id(), sp.eos_id()
    assert bos >= 0 and eos >= 0

    t0 = time.perf_counter()
    tok_chunks, len_chunks, plen_chunks = [], [], []
    n_records = 0

    def flush(prompts, responses):
        # Batch calls: C++ encodes the list on a thread pool, GIL released.
        p_ids = sp.encode(prompts, add_bos=True)      # BOS + prompt
        r_ids = sp.encode(responses, add_eos=True)    # response + EOS
        plens = np.fromiter(map(len, p_ids), dtype=np.uint32, count=len(p_ids))
        rlens = np.fromiter(map(len, r_ids), dtype=np.uint32, count=len(r_ids))
        total = int(plens.sum(dtype=np.uint64) + rlens.sum(dtype=np.uint64))
        flat = [None] * (2 * len(p_ids))               # p0 r0 p1 r1 ...: record order
        flat[0::2] = p_ids
        flat[1::2] = r_ids
        toks = np.fromiter((t for ids in flat for t in ids), dtype=np.uint32, count=total)
        tok_chunks.append(toks)
        len_chunks.append(plens + rlens)
        plen_chunks.append(plens)

    prompts, responses, nbytes = [], [], 0
    with open(data, "rb") as f:
        for line in f:
            if not line.strip():
                continue
            rec = json.loads(line)
            prompts.append(f"### Instruction:\n{rec['question']}\n\n### Response:\n")
            responses.append(rec["answer"])
            nbytes += len(line)
            if len(prompts) >= BATCH_RECORDS or nbytes >= BATCH_BYTES:
                n_records += len(prompts)
                flush(prompts, responses)
                prompts, responses, nbytes = [], [], 0
    if prompts:
        n_records += len(prompts)
        flush(prompts, responses)

    tokens = np.concatenate(tok_chunks) if tok_chunks else np.zeros(0, np.uint32)
    lens = np.concatenate(len_chunks) if len_chunks else np.zeros(0, np.uint32)
    prompt_lens = np.concatenate(plen_chunks) if plen_chunks else np.zeros(0, np.uint32)
    offsets = np.zeros(len(lens) + 1, dtype=np.uint64)
    np.cumsum(lens, out=offsets[1:])
    seconds = time.perf_counter() - t0
    assert offsets[-1] == len(tokens) and len(prompt_lens) == n_records

    out = {
        "records": n_records,
        "tokens": int(len(tokens)),
        "prompt_tokens": int(prompt_lens.sum(dtype=np.uint64)),
        "threads": spm.ThreadPool(threads).num_threads(),
        "num_threads_arg": threads,
        "sentencepiece": spm.__version__,
        "read_to_ids_s": round(seconds, 3),
    }
    if digest:
        import hashlib
        out["tokens_sha256"] = hashlib.sha256(tokens.astype("<u4").tobytes()).hexdigest()
        out["prompt_lens_sha256"] = hashlib.sha256(prompt_lens.astype("<u4").tobytes()).hexdigest()
    print(json.dumps(out))


if __name__ == "__main__":
    main()
