#!/bin/sh
# The base model's digest (pp-train.json's base_sha256, which pp-merge
# checks): computed once per model and remembered in $XDG_CACHE_HOME/pp,
# the same digest as without the cache, computed again when a file changes.
. tests/cli/lib.sh
S=../shared/models/stories260K
mkdir -p $T/m && cp $S/* $T/m/
$BIN/pp-format -q data/pride_prejudice_ift.json | head -n 20 | $BIN/pp-tokenize -q -t $S --max-len 64 -o $T/d.tok
# train NAME: one step into $T/NAME, then prints its base_sha256
printf '%s\n' "$BIN/pp-train -q -m $T/m -d $T/d.tok -o $T/\$1 --max-steps 1 &&" \
    "sed -n 's/.*\"base_sha256\": \"\\([0-9a-f]*\\)\".*/\\1/p' $T/\$1/pp-train.json" > $T/train.sh
expect digest_without_cache 0 '^$' "a=\$(HOME=/nonexistent XDG_CACHE_HOME= sh $T/train.sh a) && [ \${#a} -eq 64 ] && echo \$a > $T/a.sha && test ! -e $T/c"
expect digest_cached 0 '^$' "b=\$(XDG_CACHE_HOME=$T/c sh $T/train.sh b) && [ \"\$b\" = \"\$(cat $T/a.sha)\" ] && test \$(wc -l < $T/c/pp/model-sha256) -eq 1"
expect digest_from_cache 0 '^$' "c=\$(XDG_CACHE_HOME=$T/c sh $T/train.sh c) && [ \"\$c\" = \"\$(cat $T/a.sha)\" ] && test \$(wc -l < $T/c/pp/model-sha256) -eq 1"
# a cache entry is believed: a forged one shows that the second run read it
expect digest_cache_is_read 0 '^$' "sed -i 's/ [0-9a-f]*\$/ 0000000000000000000000000000000000000000000000000000000000000000/' $T/c/pp/model-sha256 &&
    d=\$(XDG_CACHE_HOME=$T/c sh $T/train.sh d) && [ \"\$d\" = 0000000000000000000000000000000000000000000000000000000000000000 ]"
# a changed file is another key: computed again
expect digest_recomputed_after_change 0 '^$' "touch $T/m/model.safetensors && e=\$(XDG_CACHE_HOME=$T/c sh $T/train.sh e) && [ \"\$e\" = \"\$(cat $T/a.sha)\" ] &&
    test \$(wc -l < $T/c/pp/model-sha256) -eq 2"
