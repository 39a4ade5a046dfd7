#!/usr/bin/env bash
# Benchmark of issue 3: edgenvr against the ffmpeg segment one-liner it replaces.
#
#   scripts/bench-record.sh [--n "1 8 32"] [--seconds 30] [--loop-seconds 120] [--floor]
#                           [--bitrate 4M] [--gop 50] [--quick] [--no-cpu] [--no-loop]
#                           [--work-dir DIR] [--keep]
#
# 1. CPU and memory. One local RTSP camera (scripts/rtsp-server.py, one shared pipeline on one
#    path) serves a pre-encoded 1080p25 H.264 clip of ~4 Mbit/s (libx264, no B-frames, a key
#    frame every 2 s; encoded once and cached in the work dir). For each N, at the same time and
#    from the same server: ONE `edgenvr run` process recording N cameras (a generated config; a
#    store initialised beforehand so each camera's share holds the whole run), and N processes of
#        ffmpeg -rtsp_transport tcp -i URL -c:v copy -f segment -segment_time 10 -segment_wrap 10 %d.mp4
#    for --seconds of real time. With --floor, a third recorder runs beside them: the floor,
#    `examples/bench_floor.rs` (one process, N bare retina sessions writing access units through
#    a 1 MiB buffered file: what receiving the stream costs, without anything a recorder adds).
#    CPU seconds (user+sys) and peak RSS of every process come from
#    wait4() (summed over the ffmpeg processes); beside them, the steady-state CPU rate after a
#    5 s warm-up (ffmpeg's start-up dominates a short run) and the anonymous RSS before the stop
#    (without shared libraries). The server's CPU over the same window is shown apart so it is
#    attributed to neither.
# 2. Write amplification. Two ext4 loop devices, one per recorder, one camera each, at the same
#    time for --loop-seconds of real time: `edgenvr record URL --dir STORE` (the store initialised
#    before the first counter read: provisioning is a one-time cost, reported separately) and the
#    ffmpeg one-liner. Fields 5, 7 and 16 of /sys/block/loopN/stat (write requests, sectors
#    written, flushes) are read after a `sync` before and after; device bytes are divided by the
#    video payload each recorder stored (edgenvr: ffprobe packet sizes of the slot files; ffmpeg:
#    its own `video:` total, since its wrap overwrites files). Needs root (losetup, mount).
# 3. A table with ratios and whether each target of issue 3 is met (CPU <= 1/4 of ffmpeg's,
#    memory <= 1/10 at N = 8, device bytes per video byte <= 1.02). Nothing is asserted: this is
#    a benchmark, and on a shared machine CPU figures are noisy.
#
# Options (each also as an environment variable: N_LIST, SECONDS_CPU, SECONDS_LOOP, WORK_DIR):
#   --n LIST            camera counts, default "1 8 32"
#   --seconds S         real time per CPU/memory run, default 30
#   --loop-seconds S    real time of the loop-device run, default 120 (DESIGN.md measured 120)
#   --floor             also run the floor (bench_floor) side by side, and report against it
#   --bitrate B         the clip's bitrate (ffmpeg syntax), default 4M
#   --gop F             frames per GOP (25 fps), default 50 (2 s); e.g. --bitrate 8M --gop 100
#   --quick             --n "1 8" --seconds 10 --loop-seconds 20: a smoke run, figures not for use
#   --no-cpu, --no-loop skip a part
#   --work-dir DIR      clip cache, stores, logs and results (default /tmp/edgenvr-bench)
#   --keep              keep the recordings (default: only logs and results are kept)
# EDGENVR_BIN=PATH uses that binary instead of building `cargo build --release -p edgenvr`;
# FLOOR_BIN=PATH likewise for `cargo build --release -p edgenvr --example bench_floor`.
# On a Raspberry Pi: build both for its target elsewhere (README, "On a Raspberry Pi"), copy them
# and this repository's scripts/ over, install Debian's ffmpeg and GStreamer RTSP server packages,
# and run with EDGENVR_BIN and FLOOR_BIN set (no cargo needed there).
# MOUNT_OPTIONS=OPTS mounts both loop file systems with them (e.g. noatime,lazytime,commit=60).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

N_LIST=${N_LIST:-"1 8 32"}
SECONDS_CPU=${SECONDS_CPU:-30}
SECONDS_LOOP=${SECONDS_LOOP:-120}
WORK_DIR=${WORK_DIR:-/tmp/edgenvr-bench}
DO_CPU=1
DO_LOOP=1
DO_FLOOR=0
KEEP=0
BITRATE=${BITRATE:-4M} # the stream DESIGN.md's figures were measured with
GOP_FRAMES=${GOP_FRAMES:-50} # a key frame every 2 s: inside the 1-2 s most cameras use
while [ $# -gt 0 ]; do
  case "$1" in
    --n) N_LIST=$2; shift 2 ;;
    --seconds) SECONDS_CPU=$2; shift 2 ;;
    --loop-seconds) SECONDS_LOOP=$2; shift 2 ;;
    --quick) N_LIST="1 8"; SECONDS_CPU=10; SECONDS_LOOP=20; shift ;;
    --no-cpu) DO_CPU=0; shift ;;
    --no-loop) DO_LOOP=0; shift ;;
    --floor) DO_FLOOR=1; shift ;;
    --bitrate) BITRATE=$2; shift 2 ;;
    --gop) GOP_FRAMES=$2; shift 2 ;;
    --work-dir) WORK_DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-record: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

PY=/usr/bin/python3 # Debian's Python: the one with GStreamer's `gi` bindings
HELPER="$PY $ROOT/scripts/bench_record.py"
# shellcheck source=scripts/bench-common.sh
. "$ROOT/scripts/bench-common.sh"
FPS=$BENCH_FPS
SEGMENT_S=10        # both recorders cut 10 s segments, as in the one-liner
SLOT_MIB=16         # edgenvr's default slot size (holds a 10 s segment up to ~12 Mbit/s)
FFMPEG_WRAP=10      # the one-liner's -segment_wrap

die() { echo "bench-record: $*" >&2; exit 1; }
for tool in ffmpeg ffprobe "$PY"; do command -v "$tool" >/dev/null || die "$tool not found"; done
"$PY" -c 'import gi; gi.require_version("GstRtspServer", "1.0")' 2>/dev/null ||
  die "GStreamer RTSP server bindings missing (scripts/setup.sh installs them)"
if [ "$DO_LOOP" = 1 ]; then
  [ "$(id -u)" = 0 ] || die "the loop-device part needs root (or pass --no-loop)"
  for tool in losetup mkfs.ext4 mount umount; do command -v "$tool" >/dev/null || die "$tool not found"; done
fi
mkdir -p "$WORK_DIR"

# --- cleanup: the server we started, mounts and loop devices we attached -------------------------
SERVER_PID=
MOUNTS=()
LOOPS=()
cleanup() {
  local m d
  if [ -n "$SERVER_PID" ]; then kill "$SERVER_PID" 2>/dev/null || true; wait "$SERVER_PID" 2>/dev/null || true; fi
  for m in "${MOUNTS[@]}"; do umount "$m" 2>/dev/null || umount -l "$m" 2>/dev/null || true; done
  for d in "${LOOPS[@]}"; do losetup -d "$d" 2>/dev/null || true; done
  MOUNTS=(); LOOPS=(); SERVER_PID=
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# --- the binary ----------------------------------------------------------------------------------
if [ -n "${EDGENVR_BIN:-}" ]; then
  BIN=$EDGENVR_BIN
else
  echo "== building edgenvr (release; fat LTO takes a few minutes on 2 cores)"
  cargo build --release -p edgenvr --quiet
  BIN=$ROOT/target/release/edgenvr
fi
[ -x "$BIN" ] || die "no edgenvr binary at $BIN"
FLOOR=
if [ "$DO_FLOOR" = 1 ]; then
  if [ -n "${FLOOR_BIN:-}" ]; then
    FLOOR=$FLOOR_BIN
  else
    echo "== building the floor (examples/bench_floor.rs)"
    cargo build --release -p edgenvr --example bench_floor --quiet
    FLOOR=$ROOT/target/release/examples/bench_floor
  fi
  [ -x "$FLOOR" ] || die "no bench_floor binary at $FLOOR"
fi

# --- the clip, encoded once, and the camera ----------------------------------------------------------
CLIP=$(bench_clip "$WORK_DIR" "$BITRATE" "$GOP_FRAMES")
CLIP_KBPS=$(bench_clip_kbps "$CLIP")
bench_server "$WORK_DIR" "/cam=$CLIP" || die "no RTSP server"
SERVER_PID=$BENCH_SERVER_PID
URL=rtsp://127.0.0.1:$BENCH_PORT/cam

FFMPEG_ONE_LINER=(ffmpeg -hide_banner -nostats -rtsp_transport tcp -i "$URL" -c:v copy -f segment
  -segment_time "$SEGMENT_S" -segment_wrap "$FFMPEG_WRAP" %d.mp4)

# Slots per camera that hold a whole run without wrapping: the run's segments, the one in flight,
# and one for a segment cut early at a reconnect.
slots_for() { echo $(( ($1 + SEGMENT_S - 1) / SEGMENT_S + 2 )); }

{
  echo "edgenvr recording benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
  echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), $(uname -sr), $(nproc) CPUs ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //'))"
  echo "stream: $CLIP_KBPS kbit/s 1080p$FPS H.264, GOP $GOP_FRAMES frames, served by scripts/rtsp-server.py (one shared pipeline)"
  echo "edgenvr: $BIN"
  [ -z "$FLOOR" ] || echo "floor: $FLOOR"
  echo "ffmpeg: $(ffmpeg -version | head -1)"
  echo "load average at start: $(cut -d' ' -f1-3 /proc/loadavg)"
} | tee "$WORK_DIR/header.txt"

# --- 1. CPU and memory -------------------------------------------------------------------------------
CPU_RESULTS=()
if [ "$DO_CPU" = 1 ]; then
  for n in $N_LIST; do
    run=$WORK_DIR/cpu-n$n
    rm -rf "$run"
    mkdir -p "$run/logs"
    slots=$(( n * $(slots_for "$SECONDS_CPU") ))
    echo "== N = $n: store of $slots slots × ${SLOT_MIB} MiB, then $SECONDS_CPU s of recording"
    "$BIN" store init "$run/store" --size "$(( slots * SLOT_MIB ))MiB" >"$run/logs/store-init.log" 2>&1 ||
      die "store init failed: $(tail -3 "$run/logs/store-init.log")"
    bench_config "$run/store" "$SEGMENT_S" "$n" "$URL" >"$run/config.toml"
    "$BIN" check-config --config "$run/config.toml" >/dev/null
    {
      printf 'edgenvr\tint\t%s\t%s\t%s\n' "$run" "$run/logs/edgenvr.log" \
        "$(printf '%q ' "$BIN" run --config "$run/config.toml")"
      for i in $(seq -w 1 "$n"); do
        mkdir -p "$run/ffmpeg/$i"
        printf 'ffmpeg\tq\t%s\t%s\t%s\n' "$run/ffmpeg/$i" "$run/logs/ffmpeg-$i.log" \
          "$(printf '%q ' "${FFMPEG_ONE_LINER[@]}")"
      done
      if [ -n "$FLOOR" ]; then
        mkdir -p "$run/floor"
        printf 'floor\tint\t%s\t%s\t%s\n' "$run/floor" "$run/logs/floor.log" \
          "$(printf '%q ' "$FLOOR" "$URL" "$n" "$run/floor")"
      fi
    } >"$run/spec.tsv"
    sync # the zero-fill's dirty pages must not be written back during the measured window
    echo "   load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
    $HELPER measure --spec "$run/spec.tsv" --duration "$SECONDS_CPU" --n "$n" \
      --watch "server=$SERVER_PID" --out "$run/result.json"
    echo "   load average after:  $(cut -d' ' -f1-3 /proc/loadavg)"
    "$BIN" store ls "$run/store" --json >"$run/ls.json" 2>"$run/logs/store-ls.log"
    $HELPER annotate "$run/result.json" --ls "$run/ls.json"
    if [ "$KEEP" = 0 ]; then rm -rf "$run/store" "$run/ffmpeg" "$run/floor"; fi
    CPU_RESULTS+=("$run/result.json")
  done
fi

# --- 2. Write amplification on ext4 loop devices --------------------------------------------------
LOOP_RESULT=
if [ "$DO_LOOP" = 1 ]; then
  loopdir=$WORK_DIR/loop
  rm -rf "$loopdir"
  mkdir -p "$loopdir/logs"
  store_mib=$(( $(slots_for "$SECONDS_LOOP") * SLOT_MIB ))
  image_mib=$(( store_mib + 256 )) # room for the fs's own metadata; same size for both recorders
  declare -A DEV MNT
  for who in edgenvr ffmpeg; do
    truncate -s "${image_mib}M" "$loopdir/$who.img"
    DEV[$who]=$(losetup -f --show "$loopdir/$who.img")
    LOOPS+=("${DEV[$who]}")
    # Without lazy init off, the kernel zeroes inode tables and the journal in the background
    # after mount (ext4lazyinit): ~20 MB on this size that would land inside the measured window.
    mkfs.ext4 -q -F -E lazy_itable_init=0,lazy_journal_init=0 "${DEV[$who]}"
    MNT[$who]=$loopdir/mnt-$who
    mkdir -p "${MNT[$who]}"
    mount ${MOUNT_OPTIONS:+-o "$MOUNT_OPTIONS"} "${DEV[$who]}" "${MNT[$who]}"
    MOUNTS+=("${MNT[$who]}")
  done
  stat_of() { sync; $HELPER disk-stat "$(basename "${DEV[$1]}")" "$loopdir/$2"; }

  echo "== loop devices: edgenvr on ${DEV[edgenvr]}, ffmpeg on ${DEV[ffmpeg]} (ext4, ${image_mib} MiB, mount options: ${MOUNT_OPTIONS:-defaults})"
  stat_of edgenvr provision-before.json
  "$BIN" store init "${MNT[edgenvr]}/store" --size "${store_mib}MiB" >"$loopdir/logs/store-init.log" 2>&1 ||
    die "store init failed: $(tail -3 "$loopdir/logs/store-init.log")"
  stat_of edgenvr provision-after.json

  stat_of edgenvr edgenvr-before.json
  stat_of ffmpeg ffmpeg-before.json
  {
    printf 'edgenvr\tint\t%s\t%s\t%s\n' "$loopdir" "$loopdir/logs/edgenvr.log" \
      "$(printf '%q ' "$BIN" record "$URL" --dir "${MNT[edgenvr]}/store" --segment "${SEGMENT_S}s" --name cam)"
    printf 'ffmpeg\tq\t%s\t%s\t%s\n' "${MNT[ffmpeg]}" "$loopdir/logs/ffmpeg.log" \
      "$(printf '%q ' "${FFMPEG_ONE_LINER[@]}")"
  } >"$loopdir/spec.tsv"
  echo "   $SECONDS_LOOP s of recording; load average before: $(cut -d' ' -f1-3 /proc/loadavg)"
  $HELPER measure --spec "$loopdir/spec.tsv" --duration "$SECONDS_LOOP" --n 1 --out "$loopdir/measure.json"
  stat_of edgenvr edgenvr-after.json
  stat_of ffmpeg ffmpeg-after.json
  $HELPER store-video "${MNT[edgenvr]}/store" >"$loopdir/edgenvr-video.json"
  $HELPER ffmpeg-video "$loopdir/logs/ffmpeg.log" >"$loopdir/ffmpeg-video.json"
  ls -li "${MNT[ffmpeg]}" >"$loopdir/logs/ffmpeg-files.txt"
  "$BIN" store ls "${MNT[edgenvr]}/store" >"$loopdir/logs/store-ls.txt" 2>&1 || true

  j() { cat "$loopdir/$1"; }
  cat >"$loopdir/loop.json" <<EOF
{"duration_s": $SECONDS_LOOP,
 "edgenvr": {"label": "edgenvr record (store preallocated)", "before": $(j edgenvr-before.json),
             "after": $(j edgenvr-after.json), "video": $(j edgenvr-video.json)},
 "ffmpeg": {"label": "ffmpeg -f segment -segment_wrap $FFMPEG_WRAP", "before": $(j ffmpeg-before.json),
            "after": $(j ffmpeg-after.json), "video": $(j ffmpeg-video.json)},
 "provisioning": {"size": "${store_mib}MiB", "before": $(j provision-before.json),
                  "after": $(j provision-after.json)},
 "measure": $(j measure.json)}
EOF
  LOOP_RESULT=$loopdir/loop.json
  cleanup_loops() {
    local m d
    for m in "${MOUNTS[@]}"; do umount "$m"; done
    for d in "${LOOPS[@]}"; do losetup -d "$d"; done
    MOUNTS=(); LOOPS=()
  }
  cleanup_loops
  rm -f "$loopdir"/*.img
fi

# --- 3. The table ----------------------------------------------------------------------------------
{
  cat "$WORK_DIR/header.txt"
  echo "CPU figures are from a machine shared with other jobs (compilers): noisy; compare ratios."
  $HELPER report --fps "$FPS" ${CPU_RESULTS[@]+--cpu "${CPU_RESULTS[@]}"} ${LOOP_RESULT:+--loop "$LOOP_RESULT"}
} | tee "$WORK_DIR/report.txt"
echo "(results, logs and this report: $WORK_DIR)"
