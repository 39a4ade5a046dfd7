#!/usr/bin/env bash
# Instructions retired per camera-second of video: the recorder's CPU cost as a count that does
# not move with the machine's load (CPU seconds on a shared machine do), so each change to the
# record path shows its gain. `perf stat` hardware counters are not available on every machine
# (virtual machines often hide them); this counts with valgrind's callgrind instead (user-space
# instructions, like `perf stat -e instructions:u`; the kernel's share is not in it).
#
#   scripts/bench-instructions.sh [--n N] [--short S] [--long S] [--work-dir DIR] [--profile]
#                                 [--floor]
#
# One local RTSP camera (scripts/rtsp-server.py) serves the recording benchmark's clip (1080p25
# H.264, ~4 Mbit/s, a key frame every 2 s) in real time. `edgenvr run` records N cameras of it
# under `valgrind --tool=callgrind` twice, for --short and for --long seconds of real time, each
# into a fresh store. Start-up, connection and shutdown cost the same in both runs, so
#     (instructions of the long run - of the short run) / (camera-seconds recorded in the long
#      run - in the short run)
# is the steady-state cost of one camera-second of video. Camera-seconds come from
# `edgenvr store ls --json` (frames / 25). The RTSP server runs outside valgrind and is not counted.
# --profile also prints the long run's top functions (callgrind_annotate, self cost), the place
# to look for what to cut next. --floor measures examples/bench_floor.rs (N bare retina sessions
# writing access units, see bench-record.sh) the same way instead: the RTSP client's own share.
#
# Options (also as environment variables N, SHORT_S, LONG_S, WORK_DIR):
#   --n N            cameras, default 1
#   --short S        seconds of the short run, default 10
#   --long S         seconds of the long run, default 40
#   --work-dir DIR   clip cache, stores, callgrind files (default /tmp/edgenvr-bench-instructions)
# EDGENVR_BIN=PATH (FLOOR_BIN=PATH with --floor) measures that binary instead of building it
# (a binary built with CARGO_PROFILE_RELEASE_STRIP=false names its functions in the profile).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
PY=/usr/bin/python3
# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"

N=${N:-1}
SHORT_S=${SHORT_S:-10}
LONG_S=${LONG_S:-40}
WORK_DIR=${WORK_DIR:-/tmp/edgenvr-bench-instructions}
PROFILE=0
FLOOR=0
while [ $# -gt 0 ]; do
  case "$1" in
    --n) N=$2; shift 2 ;;
    --short) SHORT_S=$2; shift 2 ;;
    --long) LONG_S=$2; shift 2 ;;
    --work-dir) WORK_DIR=$2; shift 2 ;;
    --profile) PROFILE=1; shift ;;
    --floor) FLOOR=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-instructions: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "bench-instructions: $*" >&2; exit 1; }
for tool in valgrind ffmpeg "$PY"; do command -v "$tool" >/dev/null || die "$tool not found"; done
[ "$LONG_S" -gt "$SHORT_S" ] || die "--long must be longer than --short"
mkdir -p "$WORK_DIR"

if [ "$FLOOR" = 1 ]; then
  if [ -n "${FLOOR_BIN:-}" ]; then
    BIN=$FLOOR_BIN
  else
    echo "== building examples/bench_floor.rs (release)"
    cargo build --release -p edgenvr --example bench_floor --quiet
    BIN=$ROOT/target/release/examples/bench_floor
  fi
elif [ -n "${EDGENVR_BIN:-}" ]; then
  BIN=$EDGENVR_BIN
else
  echo "== building edgenvr (release)"
  cargo build --release -p edgenvr --quiet
  BIN=$ROOT/target/release/edgenvr
fi
[ -x "$BIN" ] || die "no binary at $BIN"

CLIP=$(bench_clip "$WORK_DIR" 4M 50)
BENCH_SERVER_PID=
trap '[ -n "$BENCH_SERVER_PID" ] && kill "$BENCH_SERVER_PID" 2>/dev/null; wait 2>/dev/null || true' EXIT
bench_server "$WORK_DIR" "/cam=$CLIP" || die "no RTSP server"
URL=rtsp://127.0.0.1:$BENCH_PORT/cam

SEGMENT_S=10
SLOT_MIB=16
# One run under callgrind: prints "instructions camera-seconds".
run_once() {
  local seconds=$1 run=$WORK_DIR/run-${1}s slots pid
  rm -rf "$run"
  mkdir -p "$run"
  if [ "$FLOOR" = 1 ]; then
    mkdir -p "$run/out"
    valgrind --tool=callgrind --callgrind-out-file="$run/callgrind.out" \
      "$BIN" "$URL" "$N" "$run/out" >"$run/floor.log" 2>"$run/valgrind.log" &
    pid=$!
    sleep "$seconds"
    kill -INT "$pid"
    wait "$pid" || die "bench_floor exited with $? (see $run/floor.log)"
    echo "$(awk '/^(summary|totals):/{print $2; exit}' "$run/callgrind.out") $(awk -v fps="$BENCH_FPS" '/^frames /{printf "%.2f", $2 / fps}' "$run/floor.log")"
    return
  fi
  slots=$(( N * ((seconds + SEGMENT_S - 1) / SEGMENT_S + 2) ))
  "$BIN" store init "$run/store" --size "$(( slots * SLOT_MIB ))MiB" >"$run/store-init.log" 2>&1 ||
    die "store init failed: $(tail -3 "$run/store-init.log")"
  bench_config "$run/store" "$SEGMENT_S" "$N" "$URL" >"$run/config.toml"
  sync
  valgrind --tool=callgrind --callgrind-out-file="$run/callgrind.out" \
    "$BIN" run --config "$run/config.toml" >"$run/edgenvr.log" 2>&1 &
  pid=$!
  sleep "$seconds"
  kill -INT "$pid"
  wait "$pid" || die "edgenvr run exited with $? (see $run/edgenvr.log)"
  "$BIN" store ls "$run/store" --json >"$run/ls.json"
  echo "$(awk '/^(summary|totals):/{print $2; exit}' "$run/callgrind.out") $(bench_video_seconds "$run/ls.json")"
}

echo "$( [ "$FLOOR" = 1 ] && echo "floor (bench_floor)" || echo edgenvr) instructions per camera-second, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), $(uname -m), $(valgrind --version)"
echo "stream: $(bench_clip_kbps "$CLIP") kbit/s 1080p$BENCH_FPS H.264, GOP 50 frames; $N camera(s); runs of $SHORT_S s and $LONG_S s"
read -r short_ir short_video <<<"$(run_once "$SHORT_S")"
read -r long_ir long_video <<<"$(run_once "$LONG_S")"
"$PY" - "$short_ir" "$short_video" "$long_ir" "$long_video" <<'EOF'
import sys
short_ir, short_video, long_ir, long_video = int(sys.argv[1]), float(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
print(f"short run: {short_ir:>14,} instructions, {short_video:7.1f} camera-s of video")
print(f"long run:  {long_ir:>14,} instructions, {long_video:7.1f} camera-s of video")
if long_video <= short_video:
    sys.exit("bench-instructions: the long run recorded no more video than the short one")
per = (long_ir - short_ir) / (long_video - short_video)
print(f"steady state: {per / 1e6:.3f} M instructions per camera-second "
      f"({per / 1e6 / 4.0:.3f} M per Mbit of a 4 Mbit/s stream)")
EOF
if [ "$PROFILE" = 1 ]; then
  echo "== top functions of the long run (self instructions)"
  callgrind_annotate --inclusive=no "$WORK_DIR/run-${LONG_S}s/callgrind.out" 2>/dev/null | sed -n '1,40p' | cut -c1-160
fi
