#!/usr/bin/env bash
# Scores a training run's final checkpoint on the held-out validation sets (the full-band
# track and the remixes of scripts/split-shared-data.sh), on float and 16-bit inputs:
#
#   scripts/score-run.sh RUN_DIR [EVAL_OUT]      # EVAL_OUT defaults to RUN_DIR/eval
#
# Environment: ISOLA (default target/release/isola), SPLIT (default ../isola-split),
# CACHE (decoded-audio cache, default: none).
set -euo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,8p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
usage="usage: scripts/score-run.sh RUN_DIR [EVAL_OUT]   (--help for details)"
[ $# -ge 1 ] || { echo "$usage" >&2; exit 2; }
[ -f "$1/checkpoint.safetensors" ] || { echo "error: $1 holds no checkpoint.safetensors" >&2; echo "$usage" >&2; exit 2; }
run=$1
out=${2:-$run/eval}
isola=${ISOLA:-target/release/isola}
split=${SPLIT:-../isola-split}
[ -f "$run/checkpoint.safetensors" ] || { echo "$run: no checkpoint.safetensors" >&2; exit 1; }
cache=()
[ -n "${CACHE:-}" ] && cache=(--cache "$CACHE")
"$isola" export "$run/checkpoint.safetensors" -o "$run/final.safetensors"
"$isola" eval --weights "$run/final.safetensors" --data "$split/tracks/valid/evr-francium" \
  --data "$split/remix" --input-bits 16 -o "$out" "${cache[@]}" --quiet
