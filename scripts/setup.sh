#!/usr/bin/env bash
# Installs what building and testing edgenvr needs on a Debian/Ubuntu machine: apt packages (cross
# compilers, qemu-user, ffmpeg, GStreamer's RTSP server for the tests, mosquitto, headless Chromium
# and its WebDriver for the page test), what building and booting the SD image needs (mmdebstrap,
# qemu-user's binfmt registration, qemu-system-arm, mtools, dosfstools; on bookworm the QEMU
# packages come from bookworm-backports, whose qemu-system-arm installs beside the machine's newer
# qemu-utils where bookworm's own conflicts) and the rustup targets. Idempotent and quiet when
# everything is already there. Needs root or sudo for apt.
set -euo pipefail

APT_PACKAGES=(
  gcc gcc-aarch64-linux-gnu gcc-arm-linux-gnueabihf libc6-dev-arm64-cross libc6-dev-armhf-cross
  pkg-config iproute2 file
  systemd  # systemd-analyze verify checks the packaged unit (nothing is started)
  ffmpeg mosquitto mosquitto-clients
  python3-gi gir1.2-gst-rtsp-server-1.0 python3-gst-1.0 gstreamer1.0-tools
  gstreamer1.0-plugins-base gstreamer1.0-plugins-good gstreamer1.0-plugins-bad gstreamer1.0-plugins-ugly
  chromium chromium-driver fonts-dejavu-core  # the page test and bench-ui drive a headless browser
  python3-fusepy  # scripts/faulty-fs.py: a disk whose writes fail with EIO (store_faults test)
  # scripts/image.sh and the booted-image test
  mmdebstrap dosfstools mtools fdisk e2fsprogs xz-utils openssh-client socat
  arch-test  # mmdebstrap refuses a foreign-architecture build without it (a Recommends)
)
# From bookworm-backports on bookworm (see above): the emulated Pi for the image test, and the
# binfmt_misc registration mmdebstrap needs to run arm64 programs.
QEMU_PACKAGES=(qemu-system-arm qemu-user qemu-user-binfmt)
RUST_TARGETS=(aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf thumbv6m-none-eabi)

missing=()
for pkg in "${APT_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing+=("$pkg")
done
missing_qemu=()
for pkg in "${QEMU_PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || missing_qemu+=("$pkg")
done
sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
backports=()
if ((${#missing_qemu[@]})) && grep -qx 'VERSION_CODENAME=bookworm' /etc/os-release; then
  backports=(-t bookworm-backports)
  list=/etc/apt/sources.list.d/edgenvr-bookworm-backports.sources
  if [ ! -e "$list" ]; then
    # The same mirror as the machine's own bookworm sources.
    mirror=$(awk '$1 == "URIs:" { print $2; exit }' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    [ -n "$mirror" ] || { echo "setup: no Debian mirror in /etc/apt/sources.list.d/debian.sources" >&2; exit 1; }
    echo "setup: adding bookworm-backports ($list)"
    printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
      "$mirror" | $sudo tee "$list" >/dev/null
  fi
fi
if ((${#missing[@]} + ${#missing_qemu[@]})); then
  echo "setup: installing apt packages: ${missing[*]} ${missing_qemu[*]}"
  $sudo apt-get update -qq
  if ((${#missing[@]})); then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
  if ((${#missing_qemu[@]})); then
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends \
      "${backports[@]}" "${missing_qemu[@]}" >/dev/null
  fi
fi

if ! command -v cargo >/dev/null 2>&1; then
  [ -x "$HOME/.cargo/bin/cargo" ] || {
    echo "setup: installing the Rust toolchain with rustup"
    curl --proto '=https' --tlsv1.2 -sSf https://sh.rustup.rs | sh -s -- -y --profile minimal -c rustfmt,clippy
  }
  export PATH="$HOME/.cargo/bin:$PATH"
fi
installed_targets=$(rustup target list --installed)
for t in "${RUST_TARGETS[@]}"; do
  grep -qx "$t" <<<"$installed_targets" || { echo "setup: adding rustup target $t"; rustup target add "$t" >/dev/null; }
done
for c in rustfmt clippy; do
  rustup component list --installed 2>/dev/null | grep -q "^$c" || rustup component add "$c" >/dev/null
done
