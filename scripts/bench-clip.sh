#!/usr/bin/env bash
# Clip assembly benchmark: synthesise a store (2 s GOPs, 10 s segments) at each bitrate and
# download a 1-minute and a 1-hour clip through the real HTTP API on loopback, reporting
# throughput from the page cache and peak memory per download; then, at the first bitrate,
# several 1-hour downloads at once (up to the server's limit of 8 concurrent downloads). Needs
# ~2 GB free per 4 Mbit/s under BENCH_DIR (zero-filled slots plus the video) and a few minutes.
#
#   scripts/bench-clip.sh [BENCH_DIR]     (default: a temporary directory, removed afterwards)
#
# MBIT="4 8" (bitrates, Mbit/s) and AT_ONCE="2 4 8" (concurrent downloads) change what is run.
set -euo pipefail
cd "$(dirname "$0")/.."

MBIT=${MBIT:-"4 8"}
AT_ONCE=${AT_ONCE:-"2 4 8"}
if [[ $# -ge 1 ]]; then
    dir=$1
    keep=1
else
    dir=$(mktemp -d)
    keep=0
fi
cleanup() { [[ $keep == 1 ]] || rm -rf "$dir"; }
trap cleanup EXIT

if [[ -z ${CLIP_BIN:-} ]]; then
    cargo build --release -p edgenvr --example bench_clip
fi
bin=${CLIP_BIN:-target/release/examples/bench_clip}

echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
first=
for mbit in $MBIT; do
    store="$dir/store-${mbit}mbit"
    if [[ ! -e "$store/edgenvr-store.json" ]]; then
        "$bin" synth "$store" 61 "$mbit"
    fi
    first=${first:-$store}
    echo "== $mbit Mbit/s"
    # One process per measurement, so each peak is its own.
    "$bin" clip "$store" 1
    "$bin" clip "$store" 60
done
echo "== several 1-hour downloads at once, $(basename "$first")"
for n in $AT_ONCE; do
    "$bin" clip "$first" 60 "$n"
done
