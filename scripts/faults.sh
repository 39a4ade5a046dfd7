#!/usr/bin/env bash
# The long fault runs, beyond what scripts/test.sh runs at small counts: the RTSP server
# restarted 20 times under a recording box, 50 kill -9 crashes and 20 simulated power cuts of
# `edgenvr run`, the storage faults, 400 cases of the recovery property test, every fuzz target
# for FUZZ_SECONDS (default 300) each, and with SOAK_SECONDS set the soak (scripts/soak.sh).
# Figures go to the README (Hardening). Needs root (loop devices, mounts, FUSE).
# Usage: [SOAK_SECONDS=3600] scripts/faults.sh [FUZZ_SECONDS]
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

step "crashes: 50 kill -9 and 20 power cuts of edgenvr run at random moments"
time EDGENVR_CRASH_KILLS=50 EDGENVR_POWER_CUTS=20 cargo test --locked -p edgenvr-tests \
  --test run_crashes -- --test-threads=1 --nocapture 2>&1 | grep -E '^(figure|crash moments|test )'

step "storage faults: renamed, lazily unmounted, full, EIO"
cargo test --locked -p edgenvr-tests --test store_faults -- --test-threads=1

step "recovery against its reference model, 400 cases of random power-cut damage"
EDGENVR_RECOVERY_CASES=400 cargo test --locked -p edgenvr --lib store::recovery_tests

step "fuzzing, ${fuzz_seconds}s per target"
scripts/fuzz.sh "$fuzz_seconds"

if [ -n "${SOAK_SECONDS:-}" ]; then
  step "soak: ${SOAK_SECONDS}s, 16 cameras"
  scripts/soak.sh "$SOAK_SECONDS" 16
fi

step "fault runs passed"
