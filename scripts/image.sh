#!/usr/bin/env bash
# Builds the flashable Raspberry Pi image (Pi 3, 4, 400, CM4, Zero 2 W; arm64) from Debian's
# packages and our arm64 .deb alone, as root on a Debian machine, without Docker and without loop
# mounts:
#
#   OUT/edgenvr-<version>-rpi-arm64.img.xz         write it to a card (README "Flashing")
#   OUT/edgenvr-<version>-rpi-arm64.img.xz.sha256
#
# Two stages:
#   base   an arm64 root file system made by mmdebstrap (packaging/image/packages on minbase,
#          plus the files under packaging/image/base/), through qemu-user and binfmt_misc, which
#          this script mounts and registers when they are missing. Cached as a tar under
#          --cache, named by a hash of its inputs: a cold build takes many minutes under
#          emulation, a warm one nothing.
#   image  the base unpacked, edgenvr's .deb installed in it, packaging/image/overlay/ laid on
#          top (first boot, card-friendly settings), then the partitions assembled from files:
#          a FAT boot partition (mkfs.vfat -C + mtools) holding the Pi firmware, Debian's kernel
#          and initrd and the card files of packaging/image/card/ (edgenvr.toml, authorized_keys,
#          wpa_supplicant.conf), and the ext4 root (mke2fs -d), put together with sfdisk and dd.
#          The store's partition is made on the box's first boot, filling the card.
#
# Usage: scripts/image.sh [--deb FILE] [--out DIR] [--cache DIR] [--no-xz] [--base-only]
#   --deb FILE    edgenvr's arm64 package (default: dist/edgenvr_<version>_arm64.deb, built
#                 with scripts/package.sh when missing)
#   --out DIR     where the image goes (default dist/)
#   --cache DIR   where the base tar is kept (default $EDGENVR_IMAGE_CACHE or
#                 /var/cache/edgenvr-image)
#   --no-xz       leave the raw .img (and its .sha256) instead of compressing: for tests
#   --base-only   only make sure the cached base exists (scripts/test.sh starts this early)
#   --mirror URL, --security URL   Debian mirrors (default: the first ones in this machine's
#                 apt sources)
#
# Needs: mmdebstrap, qemu-user (qemu-aarch64 with a binfmt_misc registration file), dosfstools,
# mtools, fdisk (sfdisk), e2fsprogs, xz-utils, dpkg; scripts/setup.sh installs them.
set -euo pipefail
shopt -s inherit_errexit
cd "$(dirname "$0")/.."

deb=""
out=dist
cache=${EDGENVR_IMAGE_CACHE:-/var/cache/edgenvr-image}
xz=1
base_only=0
mirror=""
security=""
while (($#)); do
  case "$1" in
    --deb) deb=${2:?--deb needs a file}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    --cache) cache=${2:?--cache needs a directory}; shift 2 ;;
    --no-xz) xz=0; shift ;;
    --base-only) base_only=1; shift ;;
    --mirror) mirror=${2:?--mirror needs a URL}; shift 2 ;;
    --security) security=${2:?--security needs a URL}; shift 2 ;;
    -h|--help) sed -n '2,36p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "image: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done

say() { printf 'image: %s (%ds)\n' "$*" "$SECONDS"; }
die() { echo "image: $*" >&2; exit 1; }

[ "$(id -u)" -eq 0 ] || die "run as root (mmdebstrap, chroot and file ownership in the image need it)"
for tool in mmdebstrap mkfs.vfat mcopy mmd sfdisk mke2fs dpkg-deb xz sha256sum flock systemctl; do
  command -v "$tool" >/dev/null || die "$tool not found; scripts/setup.sh installs what is needed"
done

image_dir=packaging/image
suite=bookworm
components="main non-free-firmware"

# Sizes chosen for the card: the FAT partition holds the firmware, two kernels and initrds (the
# running one and an upgrade) with room to spare; the root gets a fifth of its contents free for
# upgrades and logs that outlive the RAM journal.
partition_start_mib=4
fat_mib=256
root_slack_mib=192

# ensure_binfmt: qemu-aarch64 through binfmt_misc, so mmdebstrap and chroot run arm64 programs.
ensure_binfmt() {
  local dir=/proc/sys/fs/binfmt_misc conf=/usr/lib/binfmt.d/qemu-aarch64.conf
  [ -e "$dir/register" ] || mount -t binfmt_misc binfmt_misc "$dir"
  if [ ! -e "$dir/qemu-aarch64" ]; then
    [ -r "$conf" ] || die "no $conf: install qemu-user-binfmt (scripts/setup.sh)"
    say "registering qemu-aarch64 with binfmt_misc"
    # The registration file is already in the kernel's register format (:name:type:...:flags).
    cat "$conf" >"$dir/register"
  fi
  grep -qx enabled "$dir/qemu-aarch64" || die "binfmt_misc entry qemu-aarch64 is disabled"
}

# mirror_of SUITE: the first URI of this machine's apt sources that serves SUITE.
mirror_of() {
  local want=$1
  local f
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -r "$f" ] && cat "$f" && echo
  done | awk -v want="$want" '
    /^[[:space:]]*$/ { if (uri != "" && found && !done) { print uri; done = 1 } uri = ""; found = 0; next }
    $1 == "URIs:" { uri = $2 }
    $1 == "Suites:" { for (i = 2; i <= NF; i++) if ($i == want) found = 1 }
  '
  grep -hs '^deb ' /etc/apt/sources.list /etc/apt/sources.list.d/*.list |
    awk -v want="$want" '$3 == want && !done { print $2; done = 1 }' || true
}

base_packages() { sed 's/#.*//' "$image_dir/packages" | tr -s ' \n' '\n' | grep -v '^$' | sort -u; }

# base_key: a hash of everything the base is made from. The mirrors are left out: the same
# packages from another mirror are the same base.
base_key() {
  {
    echo "format 1 $suite arm64 minbase $components"
    base_packages
    # The mmdebstrap call below, as text: changing an option changes the key.
    sed -n '/^build_base() {/,/^}/p' "$0"
    (cd "$image_dir/base" && find . -type f -print0 | sort -z | xargs -0 sha256sum)
  } | sha256sum | cut -c1-16
}

build_base() {
  local tar=$1
  local packages
  packages=$(base_packages | paste -sd, -)
  [ -n "$mirror" ] || { mirror=$(mirror_of "$suite"); mirror=${mirror%%$'\n'*}; }
  [ -n "$security" ] || { security=$(mirror_of "$suite-security"); security=${security%%$'\n'*}; }
  [ -n "$mirror" ] || die "no Debian mirror for $suite in /etc/apt/sources*: pass --mirror URL"
  local sources=("deb $mirror $suite $components" "deb $mirror $suite-updates $components")
  [ -n "$security" ] && sources+=("deb $security $suite-security $components")
  say "building the arm64 base with mmdebstrap (cold: many minutes under qemu-user)"
  # Install without recommends and without documentation, man pages and translations; the files
  # of packaging/image/base go in before any package (force-confold keeps them where a package
  # ships the same conffile). The customize hook leaves a base every card can share: no SSH host
  # keys (made on first boot), no machine id (first boot), no apt lists.
  mmdebstrap --mode=root --arch=arm64 --variant=minbase --components="$components" \
    --aptopt='APT::Install-Recommends "false"' \
    --dpkgopt='force-confold' --dpkgopt='force-confdef' \
    --dpkgopt='path-exclude=/usr/share/man/*' --dpkgopt='path-exclude=/usr/share/info/*' \
    --dpkgopt='path-exclude=/usr/share/locale/*' --dpkgopt='path-include=/usr/share/locale/locale.alias' \
    --dpkgopt='path-exclude=/usr/share/doc/*' --dpkgopt='path-include=/usr/share/doc/*/copyright' \
    --include="$packages" \
    --setup-hook="tar -C '$PWD/$image_dir/base' --owner=0 --group=0 -c . | tar -C \"\$1\" -x" \
    --customize-hook='rm -f "$1"/etc/ssh/ssh_host_*' \
    --customize-hook='echo uninitialized >"$1"/etc/machine-id; rm -f "$1"/var/lib/dbus/machine-id' \
    --customize-hook='rm -rf "$1"/var/lib/apt/lists/* "$1"/var/cache/apt/*.bin' \
    "$suite" "$tar" "${sources[@]}"
}

# ensure_base: prints the cached base tar's path, building it first when missing. One build at a
# time: a second caller (the image test while scripts/test.sh's background build runs) waits.
ensure_base() {
  mkdir -p "$cache"
  local key tar
  key=$(base_key)
  tar=$cache/base-$key.tar
  exec 9>"$cache/base.lock"
  flock 9
  if [ ! -s "$tar" ]; then
    ensure_binfmt
    rm -f "$tar.partial.tar"
    build_base "$tar.partial.tar" >&2
    mv "$tar.partial.tar" "$tar"
    # Older bases are of no further use; each is hundreds of MB.
    find "$cache" -maxdepth 1 -name 'base-*.tar' ! -name "base-$key.tar" -delete
    say "base ready: $tar" >&2
  fi
  flock -u 9
  echo "$tar"
}

base_tar=$(ensure_base)
((base_only)) && { say "base: $base_tar"; exit 0; }

# --- the image ---

if [ -z "$deb" ]; then
  version=$(awk '
    /^\[/ { in_section = ($0 == "[workspace.package]") }
    in_section && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
  ' Cargo.toml)
  deb=dist/edgenvr_${version}_arm64.deb
  [ -f "$deb" ] || scripts/package.sh --out dist
fi
[ -f "$deb" ] || die "no package $deb"
[ "$(dpkg-deb -f "$deb" Package)" = edgenvr ] && [ "$(dpkg-deb -f "$deb" Architecture)" = arm64 ] ||
  die "$deb is not edgenvr for arm64"
version=$(dpkg-deb -f "$deb" Version)
name=edgenvr-$version-rpi-arm64
ensure_binfmt
mkdir -p "$out"

work=$(mktemp -d /var/tmp/edgenvr-image.XXXXXX)
trap 'rm -rf "$work"' EXIT
root=$work/root
mkdir "$root"
say "unpacking the base $(basename "$base_tar")"
tar -C "$root" --numeric-owner --xattrs --xattrs-include='*' -xpf "$base_tar"

say "installing $(basename "$deb")"
# The group owning /dev/gpiochip* (overlay's udev rule); edgenvr's postinst adds its user to it.
chroot "$root" groupadd --system gpio
cp "$deb" "$root/tmp/edgenvr.deb"
chroot "$root" dpkg -i /tmp/edgenvr.deb >"$work/dpkg.log" 2>&1 || { cat "$work/dpkg.log" >&2; die "dpkg -i failed"; }
rm "$root/tmp/edgenvr.deb"

say "laying the overlay"
tar -C "$image_dir/overlay" --owner=0 --group=0 -c . | tar -C "$root" -x
ln -sfn ../run/systemd/resolve/stub-resolv.conf "$root/etc/resolv.conf"
systemctl --root="$root" --quiet enable edgenvr.service edgenvr-card.service edgenvr-store.service \
  systemd-networkd.service systemd-resolved.service systemd-timesyncd.service ssh.service
# Not needed on the box, or writing to the card on a timer: waiting for the network before
# edgenvr starts (edgenvr reconnects its cameras by itself), apt's daily downloads, dpkg's daily
# database backup, e2scrub (it needs LVM), and wpa_supplicant's D-Bus service (Wi-Fi runs as
# wpa_supplicant@wlan0, started by edgenvr-card when the card names a network).
systemctl --root="$root" --quiet mask systemd-networkd-wait-online.service apt-daily.timer \
  apt-daily-upgrade.timer dpkg-db-backup.timer e2scrub_all.timer e2scrub_reap.service \
  wpa_supplicant.service

# The boot partition: what raspi-firmware put under /boot/firmware, plus the card files. On the
# box it is mounted over /boot/firmware, so the root keeps no copy.
say "assembling the FAT boot partition"
[ -f "$root/boot/firmware/config.txt" ] || die "raspi-firmware left no config.txt in /boot/firmware"
rm -f "$work/fat.img"
mkfs.vfat -F 32 -n EDGENVR -C "$work/fat.img" $((fat_mib * 1024)) >/dev/null
mcopy -i "$work/fat.img" -s -p -m "$root"/boot/firmware/* "$image_dir"/card/* ::/
rm -rf "${root:?}"/boot/firmware/*

say "assembling the ext4 root partition"
used_mib=$(du -s -B1M "$root" | cut -f1)
root_mib=$((used_mib + used_mib / 5 + root_slack_mib))
mke2fs -q -t ext4 -L edgenvr-root -d "$root" "$work/root.img" "${root_mib}M" >/dev/null

say "assembling the disk image (FAT ${fat_mib} MiB, root ${root_mib} MiB)"
img=$out/$name.img
rm -f "$img" "$img.xz" "$img.sha256" "$img.xz.sha256"
total_mib=$((partition_start_mib + fat_mib + root_mib))
truncate -s "${total_mib}M" "$img"
# MBR: every Pi's boot ROM reads it. Partition 3 (the store) is added on first boot.
sfdisk --quiet "$img" <<EOF
label: dos
unit: sectors
start=$((partition_start_mib * 2048)), size=$((fat_mib * 2048)), type=c, bootable
start=$(((partition_start_mib + fat_mib) * 2048)), size=$((root_mib * 2048)), type=83
EOF
dd if="$work/fat.img" of="$img" bs=1M seek="$partition_start_mib" conv=notrunc,sparse status=none
dd if="$work/root.img" of="$img" bs=1M seek=$((partition_start_mib + fat_mib)) conv=notrunc,sparse status=none

result=$img
if ((xz)); then
  say "compressing with xz"
  xz -T0 -6 --force "$img"
  result=$img.xz
fi
(cd "$out" && sha256sum "$(basename "$result")" >"$(basename "$result").sha256")
say "done: $result ($(du -h --apparent-size "$result" | cut -f1))"
