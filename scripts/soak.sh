#!/usr/bin/env bash
# The soak (issue 12): CAMERAS cameras from the test RTSP server recorded by one release-built
# `edgenvr run`: first the store is filled to its steady state (PIR held on, ~15 minutes), then
# SECONDS with a simulated PIR event every minute and a clip pulled every five minutes; reports
# memory (RSS, `[heap]` and glibc's thread arenas in target/soak/rss.csv; the report's
# `allocator_kb` is both: RssAnon without the video in flight and the stacks), CPU,
# errors/warnings/panics from the box's log and every GOP's fate (target/soak/soak-report.json).
# Runs niced: on a 2-core machine it competes with everything else, so quote its CPU figure with
# the load.
#
#   scripts/soak.sh [SECONDS] [CAMERAS]      (default 3600 16)
#   GLIBC_TUNABLES=glibc.malloc.tcache_count=7 scripts/soak.sh ...   (glibc's per-thread caches
#   on, as before 19ff713: the box inherits the environment and keeps a tcache_count it is given)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
seconds=${1:-3600}
cameras=${2:-16}
out=${SOAK_OUT:-target/soak}
cargo build --release --quiet --locked --workspace --bins
mkdir -p "$out"
echo "soak: ${seconds}s, ${cameras} cameras, $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg)"
# The harness echoes the box's log; it is saved whole to $out/box.log instead.
EDGENVR_BIN_DIR="$PWD/target/release" nice -n 5 target/release/soak "$seconds" "$cameras" "$out" \
    2> >(grep -v '^  |' >&2)
