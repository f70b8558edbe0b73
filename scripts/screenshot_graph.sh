#!/usr/bin/env bash
# Look at `rayflow draw`'s HTML page as a person would: draw a workflow, render the page in headless Chromium,
# and save a PNG.
#
#   scripts/screenshot_graph.sh examples/branching.py:TriageWorkflow /tmp/draw_branching.png
#
# Needs a `chromium` (or $CHROMIUM) on PATH; Debian: `apt-get install -y chromium`. Not part of CI.
set -euo pipefail
target="${1:?usage: $0 MODULE:WORKFLOW OUTPUT.png [WIDTHxHEIGHT]}"
png="${2:?usage: $0 MODULE:WORKFLOW OUTPUT.png [WIDTHxHEIGHT]}"
size="${3:-1200x900}"
browser="${CHROMIUM:-chromium}"
page="$(mktemp --suffix=.html)"
trap 'rm -f "$page"' EXIT
python -m rayflow.cli draw "$target" -o "$page"
"$browser" --headless --no-sandbox --disable-gpu --hide-scrollbars --screenshot="$(realpath -m "$png")" \
    --window-size="${size/x/,}" "file://$page" 2>/dev/null
echo "$png"
