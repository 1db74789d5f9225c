#!/bin/sh
# Every long option a tool's --help names appears in its man page (as roff
# writes it: \-\-max\-len).
. tests/cli/lib.sh
for tool in pp-format pp-tokenize pp-quantize pp-train pp-generate pp-merge; do
    page=man/man1/$tool.1
    missing=""
    for opt in $($BIN/$tool --help | grep -o -- '--[a-z][a-z0-9-]*' | sort -u); do
        grep -qF -- "$(printf '%s' "$opt" | sed 's/-/\\-/g')" "$page" || missing="$missing $opt"
    done
    if [ -z "$missing" ]; then echo "ok ${tool}_help_options_in_man_page"; else echo "FAIL ${tool}_help_options_in_man_page:$missing"; fi
done

# every tool's page has the sections a reader looks for
for tool in pp-format pp-tokenize pp-quantize pp-train pp-generate pp-merge; do
    page=man/man1/$tool.1
    missing=""
    for sec in NAME SYNOPSIS DESCRIPTION OPTIONS 'EXIT STATUS' FILES EXAMPLES 'SEE ALSO'; do
        grep -qx ".SH $sec" "$page" || missing="$missing '$sec'"
    done
    if [ -z "$missing" ]; then echo "ok ${tool}_man_page_sections"; else echo "FAIL ${tool}_man_page_sections:$missing"; fi
done
