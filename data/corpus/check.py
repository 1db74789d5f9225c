#!/usr/bin/env python3
"""data/corpus/check.py: checks the corpus files against the novel's text.

    python3 data/corpus/check.py NOVEL.txt [FILE...]   (default: data/corpus/*.md)

NOVEL.txt is Pride and Prejudice as plain text (from Debian's
r-cran-janeaustenr: Rscript -e 'library(janeaustenr);
writeLines(prideprejudice, "pp.txt")'); it is not kept in the repository.
For each file: its word count, and every run of 8 or more consecutive words it
shares with the novel (case and punctuation ignored), which the corpus must
not have: the prose is the project's own. Exit status 1 when a file shares
such a run, else 0. The total word count is printed last.
"""
import glob
import re
import sys

N = 8


def words(text):
    return re.findall(r"[a-z0-9]+(?:'[a-z]+)?", text.lower())


def main():
    novel = words(open(sys.argv[1], encoding="utf-8").read())
    grams = {tuple(novel[i:i + N]) for i in range(len(novel) - N + 1)}
    files = sys.argv[2:] or sorted(glob.glob("data/corpus/*.md"))
    bad, total = 0, 0
    for f in files:
        w = words(open(f, encoding="utf-8").read())
        total += len(w)
        hits = [i for i in range(len(w) - N + 1) if tuple(w[i:i + N]) in grams]
        print(f"{f}: {len(w)} words, {len(hits)} shared {N}-word runs")
        shown = -N
        for i in hits:
            if i >= shown + N:
                print("   ", " ".join(w[max(0, i - 2):i + N + 2]))
                shown = i
        bad += bool(hits)
    print(f"total: {total} words in {len(files)} files")
    return 1 if bad else 0


if __name__ == "__main__":
    sys.exit(main())
