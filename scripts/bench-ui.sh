#!/usr/bin/env bash
# The page's speed in a real browser (headless Chromium, scripts/setup.sh installs it) against a
# real box recording the test RTSP server: click-on-the-timeline to playing, and a sensor change
# from the box's state bus to the page. Release build; about a minute and a half.
#
#   scripts/bench-ui.sh [SEEKS] [EDGES]     (default 30 and 20)
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet --workspace --bins
echo "machine: $(nproc) cores, $(uname -m), $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)"
echo "browser: $(chromium --version 2>/dev/null | tail -1)"
log=$(mktemp)
trap 'rm -f "$log"' EXIT
# The box's log goes to a file, shown only when the run fails.
EDGENVR_BIN_DIR="$PWD/target/release" target/release/bench-ui "$@" 2>"$log" || {
    tail -n 60 "$log" >&2
    exit 1
}
