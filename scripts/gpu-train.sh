#!/usr/bin/env bash
# Training on an NVIDIA GPU in one call: builds `isola` with CUDA, then either trains a
# config on the GPU or, with no config, measures training throughput there.
#
#   scripts/gpu-train.sh                          # throughput probe (about 5 min after the build)
#   scripts/gpu-train.sh CONFIG [ISOLA TRAIN ARGS...]
#       e.g. scripts/gpu-train.sh assets/weights/worker.toml --out runs/worker-gpu
#
# The probe needs no data: it synthesises a small set (isola data synth), trains the light
# and the worker model 60 steps each with the shipped configs' batch (12 x 2 s) on cuda:0,
# and prints seconds of audio trained per second (the second half of the steps) from each run's
# log.csv.
# A config trains exactly as `isola train CONFIG --device cuda:0 ...` would; --resume works.
#
# Needs: an NVIDIA driver (nvidia-smi), the CUDA toolkit (nvcc; candle compiles its kernels
# at build time), a Rust toolchain (rustup.rs) and the crates (fetched by cargo; on a machine
# without internet run `cargo fetch` beforehand and set CARGO_NET_OFFLINE=true).
# The build goes to target/cuda, apart from the CPU build. Environment: ISOLA_GPU_STEPS
# (probe steps per model, default 60), CUDA_COMPUTE_CAP (default: read from nvidia-smi).
set -euo pipefail
if [ "${1:-}" = "-h" ] || [ "${1:-}" = "--help" ]; then
  sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'
  exit 0
fi
cd "$(dirname "$0")/.."

die() { echo "gpu-train: $*" >&2; exit 1; }
if [ $# -gt 0 ] && [ ! -f "$1" ]; then
  die "no config file $1
usage: scripts/gpu-train.sh [CONFIG [ISOLA TRAIN ARGS...]]   (--help for details)"
fi
command -v nvidia-smi >/dev/null || die "no nvidia-smi: this machine has no NVIDIA driver (or GPU)"
command -v nvcc >/dev/null || die "no nvcc: install the CUDA toolkit (candle builds its CUDA kernels with it)"
command -v cargo >/dev/null || die "no cargo: install Rust from https://rustup.rs"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader
if [ -z "${CUDA_COMPUTE_CAP:-}" ]; then
  cap=$(nvidia-smi --query-gpu=compute_cap --format=csv,noheader | head -1 | tr -d '. ')
  [ -n "$cap" ] || die "cannot read the GPU's compute capability; set CUDA_COMPUTE_CAP (e.g. 90)"
  export CUDA_COMPUTE_CAP=$cap
fi

export CARGO_TARGET_DIR=target/cuda
start=$(date +%s)
cargo build --release -p isola-trainer --features cuda
isola=target/cuda/release/isola
echo "built in $(($(date +%s) - start)) s (compute capability $CUDA_COMPUTE_CAP)"

if [ $# -gt 0 ]; then
  config=$1
  shift
  [ -f "$config" ] || die "$config: no such config file"
  exec "$isola" train --config "$config" --device cuda:0 "$@"
fi

steps=${ISOLA_GPU_STEPS:-60}
[ "$steps" -ge 10 ] || die "ISOLA_GPU_STEPS must be at least 10"
probe=runs/gpu-probe
rm -rf "$probe"
"$isola" data synth "$probe/data" --train 8 --test 2 --seconds 20
for model in default worker; do
  # Two epochs: log.csv times each epoch's steps alone, and the first holds CUDA's start-up.
  "$isola" train --config "assets/weights/$model.toml" --data "$probe/data" --out "$probe/$model" \
    --device cuda:0 --cache "$probe/cache" --epochs 2 --steps-per-epoch $((steps / 2)) \
    --checkpoint-every 100000 --quiet
done
echo "throughput on $(nvidia-smi --query-gpu=name --format=csv,noheader | head -1), seconds of audio per second:"
for model in default worker; do
  printf '  %-8s %s\n' "$model" "$(tail -1 "$probe/$model/log.csv" | awk -F, '{print $NF}')"
done
