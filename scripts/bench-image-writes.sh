#!/usr/bin/env bash
# What the SD image's operating system writes to the card while the box records nothing: boots a
# copy of the image under qemu-system-aarch64 -M virt (as tests/tests/image_boot.rs does), lets
# the first boot finish (store partition made and provisioned), then reads the guest's own
# block-device counters (/sys/block/vda/vdaN/stat, field 7: sectors written) at the start and
# the end of the idle period, with a sync before each reading so everything dirtied in the
# period is counted. The box runs with one camera it cannot reach (a refused port on the host),
# so it records nothing.
#
# Usage: scripts/bench-image-writes.sh --image IMG [--minutes N]
#   --image IMG   a raw image from `scripts/image.sh --no-xz` (or an .img.xz, unpacked first)
#   --minutes N   the idle period (default 20; the README's figure needs at least 10)
#
# Needs root (none of it needs root but the image test's tools are installed by setup.sh),
# qemu-system-aarch64, mtools, ssh, socat. The two SSH logins that read the counters are part
# of what is measured (sshd logs to the RAM journal; login records go to /var/log/wtmp).
set -euo pipefail
cd "$(dirname "$0")/.."

image=""
minutes=20
while (($#)); do
  case "$1" in
    --image) image=${2:?--image needs a file}; shift 2 ;;
    --minutes) minutes=${2:?--minutes needs a number}; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench-image-writes: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
[ -n "$image" ] && [ -f "$image" ] || { echo "bench-image-writes: --image IMG is required" >&2; exit 2; }

work=$(mktemp -d)
qemu_pid=""
cleanup() {
  [ -n "$qemu_pid" ] && kill "$qemu_pid" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
say() { printf 'bench-image-writes: %s\n' "$*"; }

card=$work/card.img
case "$image" in
  *.xz) xz -dc "$image" >"$card" ;;
  *) cp --sparse=always "$image" "$card" ;;
esac
# A card 256 MiB larger than the image: the store's partition, made on first boot.
truncate -s +256M "$card"
fat="$card@@4M"

ssh-keygen -q -t ed25519 -N '' -C bench -f "$work/key"
mcopy -o -i "$fat" "$work/key.pub" ::/authorized_keys
# A box that records nothing: one camera on a host port where nothing listens.
dead_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
mtype -i "$fat" ::/edgenvr.toml |
  sed "s|^url = .*|url = \"rtsp://10.0.2.100:554/none\"|; s|^name = \"edgenvr\" |name = \"bench-box\" |" \
    >"$work/edgenvr.toml"
mcopy -o -i "$fat" "$work/edgenvr.toml" ::/edgenvr.toml
kernel=$(mdir -b -i "$fat" ::/ | sed -n 's|^::/\(vmlinuz-.*\)|\1|p' | head -n 1)
initrd=$(mdir -b -i "$fat" ::/ | sed -n 's|^::/\(initrd.img-.*\)|\1|p' | head -n 1)
mcopy -i "$fat" "::/$kernel" "::/$initrd" "$work/"

ssh_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
qemu-system-aarch64 -M virt -cpu cortex-a72 -smp 2 -m 1024 -display none -monitor none \
  -serial "file:$work/console.log" -no-reboot \
  -kernel "$work/$kernel" -initrd "$work/$initrd" \
  -append "root=LABEL=edgenvr-root rootwait ro console=ttyAMA0 net.ifnames=0" \
  -drive "file=$card,format=raw,if=none,id=card" -device virtio-blk-pci,drive=card \
  -netdev "user,id=net0,restrict=on,hostfwd=tcp:127.0.0.1:$ssh_port-:22,guestfwd=tcp:10.0.2.100:554-cmd:socat - TCP:127.0.0.1:$dead_port" \
  -device virtio-net-pci,netdev=net0,romfile= &
qemu_pid=$!

guest() {
  ssh -i "$work/key" -p "$ssh_port" -o BatchMode=yes -o StrictHostKeyChecking=no \
    -o UserKnownHostsFile=/dev/null -o LogLevel=ERROR -o ConnectTimeout=30 root@127.0.0.1 "$@"
}
say "booting (first boot: the store's partition is made and provisioned)"
for _ in $(seq 600); do
  guest true 2>/dev/null && break
  kill -0 "$qemu_pid" 2>/dev/null || { cat "$work/console.log"; exit 1; }
  sleep 1
done
state=$(guest systemctl is-system-running --wait || true)
[ "$state" = running ] || { say "boot ended $state"; guest systemctl --failed; exit 1; }

# sectors written by vda1 (boot), vda2 (root), vda3 (store), after a sync.
counters() { guest 'sync; for p in vda1 vda2 vda3; do awk "{ print \$7 }" /sys/block/vda/$p/stat; done' | paste -sd' '; }
read -r boot0 root0 store0 < <(counters)
say "idle for $minutes minutes"
sleep $((minutes * 60))
read -r boot1 root1 store1 < <(counters)

kib() { echo $(((($2 - $1) * 512) / 1024)); }
per_hour() { awk -v kib="$1" -v m="$minutes" 'BEGIN { printf "%.1f", kib * 60 / m }'; }
boot_kib=$(kib "$boot0" "$boot1")
root_kib=$(kib "$root0" "$root1")
store_kib=$(kib "$store0" "$store1")
os_kib=$((boot_kib + root_kib))
printf '\nwritten to the card in %s idle minutes (KiB):\n' "$minutes"
printf '  boot partition (vda1)  %8d\n  root (vda2)            %8d\n  store (vda3)           %8d\n' \
  "$boot_kib" "$root_kib" "$store_kib"
printf 'OS writes outside the store: %d KiB = %s KiB per hour\n' "$os_kib" "$(per_hour "$os_kib")"
