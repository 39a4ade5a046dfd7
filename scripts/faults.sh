#!/usr/bin/env bash
# The long fault runs, beyond what scripts/test.sh runs at small counts: the RTSP server
# restarted 20 times under a recording box, and every fuzz target for FUZZ_SECONDS (default 300)
# each. Figures go to the README (Hardening). Usage: scripts/faults.sh [FUZZ_SECONDS]
# (part B of issue 12 adds crashes, power cuts, storage faults and the soak here).
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"
fuzz_seconds=${1:-300}

step() { printf '\n==> %s\n' "$*"; }

step "build"
cargo build --workspace --bins --locked

step "camera faults: the RTSP server restarted 20 times"
time EDGENVR_FAULT_RESTARTS=20 cargo test --locked -p edgenvr-tests --test camera_faults \
  -- --test-threads=1 --nocapture rtsp_server_restarts_are_survived 2>&1 | grep -v '^  |'

step "camera faults and hostile HTTP clients at the suite's counts"
cargo test --locked -p edgenvr-tests --test camera_faults --test http_hostile -- --test-threads=1

step "fuzzing, ${fuzz_seconds}s per target"
scripts/fuzz.sh "$fuzz_seconds"

step "fault runs passed"
