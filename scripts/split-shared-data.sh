#!/usr/bin/env bash
# Builds the train/validation split used for the default weights as a folder of symbolic
# links into the shared data pack (nothing is copied; the data never enters the repo).
#
#   scripts/split-shared-data.sh [DATA=../shared/data] [OUT=../isola-split]
#
# Held out for validation (never trained on):
#   - tracks/evr-francium            (full-band 48 kHz album track with lead vocals)
#   - tracks/mir1k-Kenshin_*, mir1k-ariel_*   (2 of the 16 MIR-1K singers, 92 clips, ~11 %)
# Everything else in tracks/ is training material; vocals/ and instrumental/ are used whole
# for random remixing.
set -euo pipefail
data=$(realpath "${1:-$(dirname "$0")/../../shared/data}")
out=$(realpath -m "${2:-$(dirname "$0")/../../isola-split}")
rm -rf "$out"
mkdir -p "$out/tracks/train" "$out/tracks/valid"
held_out() {
  case "$1" in
    evr-francium | mir1k-Kenshin_* | mir1k-ariel_*) return 0 ;;
    *) return 1 ;;
  esac
}
n_train=0 n_valid=0
for t in "$data"/tracks/*/; do
  name=$(basename "$t")
  if held_out "$name"; then
    ln -s "$t" "$out/tracks/valid/$name"; n_valid=$((n_valid + 1))
  else
    ln -s "$t" "$out/tracks/train/$name"; n_train=$((n_train + 1))
  fi
done
ln -s "$data/vocals" "$out/vocals"
ln -s "$data/instrumental" "$out/instrumental"
echo "$out: $n_train training tracks, $n_valid validation tracks"
