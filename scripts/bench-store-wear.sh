#!/usr/bin/env bash
# What the store costs the card: bytes that reach the block device per byte of video, write
# requests and flushes, measured on an ext4 loop device in real time (DESIGN.md, storage).
# Needs root (losetup, mount). Usage: scripts/bench-store-wear.sh [SECONDS] [KBIT/S] [SYNC_MS]
set -euo pipefail
seconds=${1:-60}
kbps=${2:-4000}
sync_ms=${3:-2000}
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
cargo build --quiet -p edgenvr --bin edgenvr --example store_wear
bin=target/debug/edgenvr
example=target/debug/examples/store_wear

work=$(mktemp -d)
image=$work/disk.img
mnt=$work/mnt
loop=""
cleanup() {
    mountpoint -q "$mnt" && umount "$mnt"
    [ -n "$loop" ] && losetup -d "$loop"
    rm -rf "$work"
}
trap cleanup EXIT

truncate -s 512M "$image"
loop=$(losetup -f --show "$image")
# No lazy init: the kernel would zero inode tables and the journal in the background, during
# the measurement.
mkfs.ext4 -q -E lazy_itable_init=0,lazy_journal_init=0 "$loop"
mkdir -p "$mnt"
mount ${MOUNT_OPTIONS:+-o "$MOUNT_OPTIONS"} "$loop" "$mnt"
"$bin" store init "$mnt/store" --size 384MiB >/dev/null 2>&1
dev=$(basename "$loop")

# Fields 5, 7 and 16 of /sys/block/DEV/stat: write requests, sectors written, flushes.
read_stat() { sync; awk '{print $5, $7, $16}' "/sys/block/$dev/stat"; }
read -r w0 s0 f0 < <(read_stat)
result=$("$example" "$mnt/store" "$seconds" "$kbps" "$sync_ms")
read -r w1 s1 f1 < <(read_stat)

video=$(echo "$result" | sed -E 's/.*"video_bytes":([0-9]+).*/\1/')
device=$(( (s1 - s0) * 512 ))
echo "$result"
echo "mount options: ${MOUNT_OPTIONS:-defaults}; ${seconds}s at ${kbps} kbit/s, sync every ${sync_ms} ms"
echo "device bytes: $device for $video video bytes: $(awk -v d="$device" -v v="$video" 'BEGIN{printf "%.3f", d/v}') per video byte"
echo "write requests: $((w1 - w0)), flushes: $((f1 - f0))"
