#!/bin/sh
# plot-loss.sh LOG PNG [TITLE]: the training and eval loss of a pp-train --log
# file (JSON Lines) as a PNG, with gnuplot. Without gnuplot it says so and
# exits 0: the plot is a convenience, not a stage (make deps installs it).
set -eu
[ $# -ge 2 ] || { echo "usage: plot-loss.sh LOG PNG [TITLE]" >&2; exit 64; }
log=$1 png=$2 title=${3:-pp-train}
if ! command -v gnuplot >/dev/null 2>&1; then
    echo "plot-loss.sh: gnuplot not found (make deps installs it); no $png" >&2
    exit 0
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# one "step value" line per point; a field's number follows '"name": '
field() { sed -n "s/.*\"step\": \([0-9]*\),.*\"$1\": \([-0-9.eE+]*\).*/\1 \2/p" "$log"; }
field loss >"$tmp/train"
field eval_loss >"$tmp/eval"
[ -s "$tmp/train" ] || { echo "plot-loss.sh: $log: no training steps" >&2; exit 65; }
evalplot=""
[ -s "$tmp/eval" ] && evalplot=", '$tmp/eval' using 1:2 with linespoints lw 2 pt 7 lc rgb '#d95f02' title 'eval loss'"
gnuplot <<GP
set terminal png size 900,540 font ",11"
set output "$png.tmp"
set title "$title"
set xlabel "optimizer step"
set ylabel "loss (cross-entropy, nats per token)"
set grid
set key below
plot '$tmp/train' using 1:2 with lines lw 1 lc rgb '#1b9e77' title 'training loss'$evalplot
GP
mv "$png.tmp" "$png"
