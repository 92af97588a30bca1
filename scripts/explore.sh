#!/usr/bin/env bash
# Runs the short exploration runs of docs/exploration/*.toml (or the ones named) and scores
# each final checkpoint on the held-out full-band track with `isola eval`; the summaries go
# to runs/explore/<name>/eval/eval.md, collected into runs/explore/summary.md.
#
#   scripts/split-shared-data.sh            # once: the symlinked split in ../isola-split
#   scripts/explore.sh [NAME...]            # e.g. scripts/explore.sh baseline fft2048
#
# Needs a release `isola` (cargo build --release -p isola-trainer).
set -euo pipefail
usage="usage: scripts/explore.sh [NAME...]   (NAME: a docs/exploration/NAME.toml; none: all)"
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."
isola=${ISOLA:-target/release/isola}
track=../isola-split/tracks/valid/evr-francium
names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for f in docs/exploration/*.toml; do names+=("$(basename "$f" .toml)"); done
fi
for name in "${names[@]}"; do
  [ -f "docs/exploration/$name.toml" ] || { echo "error: no docs/exploration/$name.toml" >&2; echo "$usage" >&2; exit 2; }
done
[ -x "$isola" ] || { echo "error: no isola at $isola (cargo build --release -p isola-trainer, or set ISOLA)" >&2; exit 2; }
[ -d "$track" ] || { echo "error: no held-out track at $track (run scripts/split-shared-data.sh first)" >&2; exit 2; }
mkdir -p runs/explore
for name in "${names[@]}"; do
  run=runs/explore/$name
  "$isola" train --config "docs/exploration/$name.toml" --quiet
  "$isola" export "$run/checkpoint.safetensors" -o "$run/final.safetensors"
  "$isola" eval --weights "$run/final.safetensors" --data "$track" -o "$run/eval" --cache runs/.cache --quiet
done
for name in "${names[@]}"; do
  echo "## $name"
  sed -n '/^| method/,/^$/p' "runs/explore/$name/eval/eval.md"
done > runs/explore/summary.md
cat runs/explore/summary.md
