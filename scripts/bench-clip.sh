#!/usr/bin/env bash
# Clip assembly benchmark: synthesise a store (4 Mbit/s, 2 s GOPs, 10 s segments) and download
# a 1-minute and a 1-hour clip through the real HTTP API on loopback, reporting throughput from
# the page cache and peak memory per download. Needs ~4 GB free under BENCH_DIR (zero-filled
# slots plus the video) and a few minutes.
#
#   scripts/bench-clip.sh [BENCH_DIR]     (default: a temporary directory, removed afterwards)
set -euo pipefail
cd "$(dirname "$0")/.."

MBIT=${MBIT:-4}
if [[ $# -ge 1 ]]; then
    dir=$1
    keep=1
else
    dir=$(mktemp -d)
    keep=0
fi
cleanup() { [[ $keep == 1 ]] || rm -rf "$dir"; }
trap cleanup EXIT

cargo build --release -p edgenvr --example bench_clip
bin=target/release/examples/bench_clip

store="$dir/store"
if [[ ! -e "$store/edgenvr-store.json" ]]; then
    "$bin" synth "$store" 61 "$MBIT"
fi
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
# One process per clip, so each peak is its own.
"$bin" clip "$store" 1
"$bin" clip "$store" 60
