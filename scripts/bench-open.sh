#!/usr/bin/env bash
# How long a full store takes to open: time to ready-to-record for `edgenvr run` and to a listing
# for `edgenvr store ls`, warm (page cache full) and cold (page cache dropped), for stores of
# several slot counts with every slot written.
#
#   scripts/bench-open.sh [--slots "512 1024 4096"] [--slot-kib 512] [--runs 3] [--work-dir DIR]
#
# For each slot count, `examples/bench_open.rs synth` initialises a store of that many slots of
# --slot-kib KiB (small slots so thousands fit this disk; a 64 GiB card holds 4,096 slots of
# 16 MiB) and writes synthetic video until every slot holds a 4-fragment segment. Then, --runs
# times each: `bench_open time` starts `edgenvr run` with one camera (pointing at a closed local
# port: recording readiness does not wait for the camera) and reports the milliseconds to its
# `recording` log line (store opened, recovery done, writer open), stops it with SIGINT, and
# times `edgenvr store ls` to its exit. Warm runs follow one untimed open; cold runs drop the page
# cache first (`sync; echo 3 > /proc/sys/vm/drop_caches`, root only; skipped otherwise).
# The median of the runs is reported. The stores need slots × slot-kib of disk (2 GiB at 4,096 ×
# 512 KiB) under the work dir and are removed afterwards unless --keep.
# EDGENVR_BIN / OPEN_BIN use those binaries instead of building them.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD

SLOT_COUNTS=${SLOT_COUNTS:-"512 1024 4096"}
SLOT_KIB=${SLOT_KIB:-512}
RUNS=${RUNS:-3}
WORK_DIR=${WORK_DIR:-/tmp/edgenvr-bench-open}
KEEP=0
while [ $# -gt 0 ]; do
  case "$1" in
    --slots) SLOT_COUNTS=$2; shift 2 ;;
    --slot-kib) SLOT_KIB=$2; shift 2 ;;
    --runs) RUNS=$2; shift 2 ;;
    --work-dir) WORK_DIR=$2; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-open: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
die() { echo "bench-open: $*" >&2; exit 1; }
mkdir -p "$WORK_DIR"

if [ -z "${EDGENVR_BIN:-}" ] || [ -z "${OPEN_BIN:-}" ]; then
  echo "== building edgenvr and examples/bench_open.rs (release)"
  cargo build --release -p edgenvr --bin edgenvr --example bench_open --quiet
fi
BIN=${EDGENVR_BIN:-$ROOT/target/release/edgenvr}
OPEN=${OPEN_BIN:-$ROOT/target/release/examples/bench_open}

COLD=0
if [ "$(id -u)" = 0 ] && [ -w /proc/sys/vm/drop_caches ]; then COLD=1; fi
drop_caches() { sync; echo 3 >/proc/sys/vm/drop_caches; }
median() { tr ' ' '\n' | grep . | sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "edgenvr store open benchmark, $(date -u '+%Y-%m-%d %H:%M UTC')"
echo "commit $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown), $(uname -sr), $(nproc) CPUs"
echo "work dir on: $(df -P "$WORK_DIR" | awk 'NR==2 {print $1}') ($(findmnt -no FSTYPE -T "$WORK_DIR" 2>/dev/null || echo '?'))"
echo "slots of $SLOT_KIB KiB, every slot written (4 fragments each); median of $RUNS runs"
[ "$COLD" = 1 ] || echo "(not root: cold figures skipped)"
echo
printf '%7s | %12s %11s | %12s %11s\n' slots "run warm ms" "ls warm ms" "run cold ms" "ls cold ms"
echo "-----------------------------------------------------------------"
for slots in $SLOT_COUNTS; do
  store=$WORK_DIR/store-$slots
  if [ ! -e "$store/edgenvr-store.json" ]; then
    rm -rf "$store"
    "$OPEN" synth "$store" "$slots" "$SLOT_KIB" >"$WORK_DIR/synth-$slots.log" 2>&1 ||
      die "synth failed: $(tail -3 "$WORK_DIR/synth-$slots.log")"
  fi
  printf '[box]\nname = "bench"\n\n[storage]\ndir = "%s"\n\n[[camera]]\nname = "cam01"\nurl = "rtsp://127.0.0.1:9/none"\n' \
    "$store" >"$WORK_DIR/config-$slots.toml"
  "$OPEN" time "$BIN" "$WORK_DIR/config-$slots.toml" "$store" >/dev/null # warms the cache
  declare -A ms=([run_warm]="" [ls_warm]="" [run_cold]="" [ls_cold]="")
  for _ in $(seq "$RUNS"); do
    while read -r what value; do
      ms[${what%_ms}_warm]+=" $value"
    done < <("$OPEN" time "$BIN" "$WORK_DIR/config-$slots.toml" "$store")
    if [ "$COLD" = 1 ]; then
      # Each of the two is timed on its own dropped cache: run first, then ls.
      drop_caches
      run_line=$("$OPEN" time "$BIN" "$WORK_DIR/config-$slots.toml" "$store" | awk '/^run_ms/{print $2}')
      ms[run_cold]+=" $run_line"
      drop_caches
      start=$(date +%s%N)
      "$BIN" store ls "$store" >/dev/null 2>&1
      ms[ls_cold]+=" $(( ($(date +%s%N) - start) / 1000000 ))"
    fi
  done
  printf '%7s | %12s %11s | %12s %11s\n' "$slots" \
    "$(echo "${ms[run_warm]}" | median)" "$(echo "${ms[ls_warm]}" | median)" \
    "$(echo "${ms[run_cold]}" | median)" "$(echo "${ms[ls_cold]}" | median)"
  [ "$KEEP" = 1 ] || rm -rf "$store"
done
