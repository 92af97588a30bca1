#!/usr/bin/env bash
# The README's latency-mode table (issue 18). For each Latency mode of the built-in weights:
# its latency at 44.1 and 48 kHz (`isola info default`), the oracle-mask ceiling and the
# model's held-out vocals SDR on 16-bit input (`isola eval --latency MODE` on evr-francium and
# the 24 held-out remixes of scripts/split-shared-data.sh), the same with Quality = Worker
# (`--worker-weights default`: the mode's built-in worker, on the same 16-bit input), and the
# audio thread's load (`cargo bench -p isola-engine --bench paced`: 48 kHz stereo, 64-sample
# blocks, the default mixed precision, plain schedule) at real-time pace and back to back.
#
#   scripts/latency-modes.sh [OUT]      # OUT defaults to ../isola-runs/latency-modes
#
# Environment: ISOLA (default target/release/isola), SPLIT (default ../isola-split), CACHE
# (decoded-audio cache, default: none), PACED_SECONDS (per mode and pace, default 60), REUSE=1
# (only re-render the table from what an earlier run left in OUT). The load
# columns are shares of one core: stop other heavy work first. Prints the table and writes it to
# OUT/table.md, beside each mode's eval folder (and its report, MODE.log) and paced.txt.
set -euo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
usage="usage: scripts/latency-modes.sh [OUT]   (--help for details)"
[ $# -le 1 ] || { echo "$usage" >&2; exit 2; }
out=${1:-../isola-runs/latency-modes}
isola=${ISOLA:-target/release/isola}
split=${SPLIT:-../isola-split}
seconds=${PACED_SECONDS:-60}
modes=(23ms 12ms 6ms)
[ -x "$isola" ] || { echo "error: $isola is not an executable isola (set ISOLA)" >&2; echo "$usage" >&2; exit 2; }
for d in "$split/tracks/valid/evr-francium" "$split/remix"; do
  [ -d "$d" ] || { echo "error: $d does not exist (run scripts/split-shared-data.sh or set SPLIT)" >&2; echo "$usage" >&2; exit 2; }
done
cache=()
[ -n "${CACHE:-}" ] && cache=(--cache "$CACHE")
mkdir -p "$out"

if [ "${REUSE:-0}" != 1 ]; then
  "$isola" info default > "$out/info.txt"
  # One eval per mode scores the light network (float and 16-bit input) and the worker path (16-bit).
  for mode in "${modes[@]}"; do
    "$isola" eval --latency "$mode" --worker-weights default --data "$split/tracks/valid/evr-francium" \
      --data "$split/remix" --input-bits 16 -o "$out/$mode" "${cache[@]}" --quiet > "$out/$mode.log"
  done
  bench=(--seconds "$seconds" --precision mixed --schedule plain --speed 1 --speed max)
  for mode in "${modes[@]}"; do bench+=(--latency "$mode"); done
  cargo bench -q -p isola-engine --bench paced -- "${bench[@]}" > "$out/paced.txt"
fi

# Column N (1-based, after the leading "|") of the row named $2 in the first table after the
# line matching $1 in eval.md file $3.
cell() {
  awk -v start="$1" -v row="$2" -v col="$4" -F'|' '
    index($0, start) { on = 1; next }
    on && $2 == " " row " " { gsub(/ /, "", $(col + 1)); print $(col + 1); exit }' "$3"
}
# Mean block time, % of one core (column 7 of the bench's table), of mode $1 at pace $2.
load() {
  awk -F'|' -v m=" $1 " -v p=" $2 " '$2 == m && $5 == p { gsub(/ /, "", $7); print $7; exit }' "$out/paced.txt"
}
# The section of `isola info default` about a mode's light weights, one field.
info() {
  awk -v mode="Latency = $1" -v key="$2" '
    index($0, "file:") && index($0, mode) { on = 1; next }
    on && index($0, "file:") { exit }
    on && index($0, key) == 1 { sub(/^[a-z ]+: */, ""); print; exit }' "$out/info.txt"
}

{
  echo "| Latency | latency at 44.1 / 48 kHz | STFT at 44.1 kHz | parameters | oracle IRM vocals SDR: francium / all 25 | vocals SDR, francium: median / global | vocals SDR, all 25: median / global | Quality = Worker: vocals SDR, all 25: median / global | load at 48 kHz stereo, % of one core: real-time pace / back to back | network step, µs per frame |"
  echo "|---|---|---|---:|---:|---:|---:|---:|---:|---:|"
  for mode in "${modes[@]}"; do
    name="${mode%ms} ms"
    md="$out/$mode/eval.md"
    lat=$(info "$name" latency | sed -E 's/ samples \(([0-9.]+) ms\) at ([0-9]+) Hz/ (\1 ms)/g; s/, Quality = Light//; s/, / \/ /')
    stft=$(info "$name" stft | sed -E 's/^[0-9]+ Hz, fft ([0-9]+), hop ([0-9]+), window [a-z-]+/\1\/\2/; s/, synthesis window ([0-9]+).*/, synthesis \1/')
    params=$(info "$name" parameters)
    oracle_f=$(cell "evr-francium" "oracle IRM" "$md" 3)
    oracle_all=$(cell "| method |" "oracle IRM" "$md" 3)
    sdr_f=$(cell "evr-francium" "isola, 16-bit input" "$md" 3)
    glob_f=$(cell "evr-francium" "isola, 16-bit input" "$md" 7)
    sdr_all=$(cell "| method |" "isola, 16-bit input" "$md" 3)
    glob_all=$(cell "| method |" "isola, 16-bit input" "$md" 7)
    worker_all="$(cell "| method |" "isola worker, 16-bit input" "$md" 3) / $(cell "| method |" "isola worker, 16-bit input" "$md" 7)"
    step=$(sed -nE "s/^network step \\(back to back\\), Latency = $name: .* rt mixed ([0-9.]+) µs\\/frame.*/\\1/p" "$out/paced.txt")
    echo "| $name | $lat | $stft | $params | $oracle_f / $oracle_all | $sdr_f / $glob_f | $sdr_all / $glob_all | $worker_all | $(load "$name" "real time") / $(load "$name" "back to back") | $step |"
  done
} | tee "$out/table.md"
