#!/usr/bin/env bash
# Builds the Debian packages into dist/ (or --out DIR), through the cross toolchains named in
# .cargo/config.toml (Debian's gcc-aarch64-linux-gnu and gcc-arm-linux-gnueabihf; no Docker):
#
#   edgenvr_<version>_arm64.deb   the box for 64-bit Raspberry Pi OS / Debian (aarch64)
#   edgenvr_<version>_armhf.deb   the box for 32-bit Raspberry Pi OS (ARMv7: Pi 2 and later)
#   nvrctl_<version>_amd64.deb    the host CLI for a laptop
#   nvrctl_<version>_arm64.deb    the host CLI for another Pi
#
# The edgenvr packages hold /usr/bin/edgenvr, the systemd unit (packaging/edgenvr.service), the
# commented default config as a conffile (/etc/edgenvr/config.toml) and the maintainer scripts
# (packaging/debian/). The version is the workspace's (Cargo.toml [workspace.package]).
#
# Usage: scripts/package.sh [--profile release|dev] [--out DIR]
#   --profile release  the default: the workspace's release profile (fat LTO; several minutes
#                      per target on two cores)
#   --profile dev      unoptimised, debug info stripped: quick, for tests of the packaging itself
#
# Only dpkg-deb is needed (package dpkg), plus readelf (binutils) to derive the libc6 version the
# binaries need and the cross `strip` tools that come with the cross compilers.
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

profile=release
out=dist
while (($#)); do
  case "$1" in
    --profile) profile=${2:?--profile needs a value}; shift 2 ;;
    --out) out=${2:?--out needs a directory}; shift 2 ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "package: unknown argument '$1' (try --help)" >&2; exit 2 ;;
  esac
done
case "$profile" in
  release) profile_dir=release; compress=(-Zxz) ;;
  # gzip -1: the test builds these on every run; xz on unoptimised binaries costs far more.
  dev) profile_dir=debug; compress=(-Zgzip -z1) ;;
  *) echo "package: --profile must be release or dev, not '$profile'" >&2; exit 2 ;;
esac

for tool in cargo dpkg-deb readelf strip aarch64-linux-gnu-strip arm-linux-gnueabihf-strip; do
  command -v "$tool" >/dev/null ||
    { echo "package: $tool not found; scripts/setup.sh installs what is needed" >&2; exit 1; }
done

version=$(awk '
  /^\[/ { in_section = ($0 == "[workspace.package]") }
  in_section && $1 == "version" { gsub(/"/, "", $3); print $3; exit }
' Cargo.toml)
[ -n "$version" ] || { echo "package: no version in Cargo.toml [workspace.package]" >&2; exit 1; }
host_triple=$(rustc -vV | sed -n 's/^host: //p')
target_root=${CARGO_TARGET_DIR:-target}
# Reproducible timestamps inside the packages: the last commit's time when there is one.
SOURCE_DATE_EPOCH=${SOURCE_DATE_EPOCH:-$(git log -1 --format=%ct 2>/dev/null || date +%s)}
export SOURCE_DATE_EPOCH
umask 022
mkdir -p "$out"

say() { printf 'package: %s\n' "$*"; }

# build TRIPLE PACKAGE... : builds the packages' binaries for TRIPLE with the chosen profile.
build() {
  local triple=$1; shift
  local packages=()
  for p in "$@"; do packages+=(-p "$p"); done
  say "cargo build --profile $profile --target $triple ${packages[*]}"
  if [ "$triple" = "$host_triple" ]; then
    # Without --target the host build shares target/debug with scripts/test.sh's host step.
    cargo build --locked --profile "$profile" --bins "${packages[@]}"
  else
    cargo build --locked --profile "$profile" --target "$triple" --bins "${packages[@]}"
  fi
}

# binary_path TRIPLE NAME
binary_path() {
  if [ "$1" = "$host_triple" ]; then
    echo "$target_root/$profile_dir/$2"
  else
    echo "$target_root/$1/$profile_dir/$2"
  fi
}

# strip_tool TRIPLE: the binutils strip for that target.
strip_tool() {
  case "$1" in
    "$host_triple") echo strip ;;
    aarch64-unknown-linux-gnu) echo aarch64-linux-gnu-strip ;;
    armv7-unknown-linux-gnueabihf) echo arm-linux-gnueabihf-strip ;;
    x86_64-unknown-linux-gnu) echo x86_64-linux-gnu-strip ;;
    *) echo "package: no strip tool known for $1" >&2; return 1 ;;
  esac
}

# depends BINARY: the Depends: line for a binary's shared libraries. Only glibc and libgcc_s are
# expected (everything else is linked statically by cargo); anything new stops the build so it
# gets a package name here instead of a broken install.
depends() {
  local binary=$1 lib glibc
  local deps=()
  for lib in $(readelf -d "$binary" | sed -n 's/.*(NEEDED).*\[\(.*\)\]/\1/p'); do
    case "$lib" in
      libc.so.6|libm.so.6|libpthread.so.0|libdl.so.2|librt.so.1|ld-linux*.so.*) ;;
      libgcc_s.so.1) deps+=("libgcc-s1") ;;
      *) echo "package: $binary needs $lib; add its Debian package to depends()" >&2; return 1 ;;
    esac
  done
  glibc=$(readelf -V "$binary" | grep -o 'GLIBC_[0-9][0-9.]*' | sed 's/GLIBC_//' | sort -uV | tail -n 1)
  [ -n "$glibc" ] || { echo "package: no glibc symbol versions in $binary" >&2; return 1; }
  local line="libc6 (>= $glibc)"
  for d in "${deps[@]}"; do line+=", $d"; done
  echo "$line"
}

# write_control ROOT PACKAGE ARCH DEPENDS SUMMARY DESCRIPTION
write_control() {
  local root=$1 package=$2 arch=$3 deps=$4 summary=$5 description=$6
  local installed_kib
  installed_kib=$(du -k -s --exclude=DEBIAN "$root" | cut -f1)
  {
    echo "Package: $package"
    echo "Version: $version"
    echo "Architecture: $arch"
    echo "Maintainer: edgenvr maintainers <edgenvr@example.invalid>"
    echo "Installed-Size: $installed_kib"
    echo "Depends: $deps"
    echo "Section: video"
    echo "Priority: optional"
    echo "Homepage: https://example.invalid/edgenvr"
    echo "Description: $summary"
    # Continuation lines start with a space; an empty line is " .".
    sed 's/^$/./; s/^/ /' <<<"$description"
  } >"$root/DEBIAN/control"
  (cd "$root" && find . -path ./DEBIAN -prune -o -type f -printf '%P\0' | sort -z |
    xargs -0 -r md5sum) >"$root/DEBIAN/md5sums"
}

# doc ROOT PACKAGE: the copyright file Debian expects in every package.
doc() {
  local dir=$1/usr/share/doc/$2
  install -d "$dir"
  cat >"$dir/copyright" <<EOF
Format: https://www.debian.org/doc/packaging-manuals/copyright-format/1.0/
Upstream-Name: edgenvr
Source: https://example.invalid/edgenvr

Files: *
Copyright: the edgenvr authors
License: MIT or Apache-2.0
 Dual-licensed: use it under either licence. The texts are at
 /usr/share/common-licenses/Apache-2.0 and https://opensource.org/licenses/MIT.
EOF
  chmod 0644 "$dir/copyright"
}

staging=$(mktemp -d)
trap 'rm -rf "$staging"' EXIT

# package_edgenvr TRIPLE DEB_ARCH
package_edgenvr() {
  local triple=$1 arch=$2
  local root=$staging/edgenvr_$arch binary strip
  binary=$(binary_path "$triple" edgenvr)
  strip=$(strip_tool "$triple")
  install -d "$root/DEBIAN" "$root/usr/bin" "$root/usr/lib/systemd/system" "$root/etc/edgenvr"
  install -m 0755 "$binary" "$root/usr/bin/edgenvr"
  "$strip" --strip-debug "$root/usr/bin/edgenvr"
  install -m 0644 packaging/edgenvr.service "$root/usr/lib/systemd/system/edgenvr.service"
  install -m 0644 packaging/config.toml "$root/etc/edgenvr/config.toml"
  doc "$root" edgenvr
  install -m 0644 README.md "$root/usr/share/doc/edgenvr/README.md"
  echo /etc/edgenvr/config.toml >"$root/DEBIAN/conffiles"
  for script in postinst prerm postrm; do
    install -m 0755 "packaging/debian/$script" "$root/DEBIAN/$script"
  done
  local deps
  deps=$(depends "$root/usr/bin/edgenvr")
  write_control "$root" edgenvr "$arch" "$deps" \
    "edge video recorder for Raspberry Pi-class boards" \
    "edgenvr records RTSP cameras (H.264/H.265, no transcoding) to a wear-aware,
preallocated ring of crash-safe fragmented MP4 segments on an SD card or USB
disk, records around PIR motion events on GPIO with a pre-roll kept in RAM,
and publishes every sensor's state upstream in a few bytes per change.

Runs as the systemd service edgenvr.service (user edgenvr); configure
/etc/edgenvr/config.toml and initialise the store before enabling it."
  dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$out/edgenvr_${version}_$arch.deb" >/dev/null
  say "$out/edgenvr_${version}_$arch.deb"
}

# package_nvrctl TRIPLE DEB_ARCH
package_nvrctl() {
  local triple=$1 arch=$2
  local root=$staging/nvrctl_$arch binary strip
  binary=$(binary_path "$triple" nvrctl)
  strip=$(strip_tool "$triple")
  install -d "$root/DEBIAN" "$root/usr/bin"
  install -m 0755 "$binary" "$root/usr/bin/nvrctl"
  "$strip" --strip-debug "$root/usr/bin/nvrctl"
  doc "$root" nvrctl
  local deps
  deps=$(depends "$root/usr/bin/nvrctl")
  write_control "$root" nvrctl "$arch" "$deps" \
    "host CLI for edgenvr boxes: live state and clips" \
    "nvrctl shows an edgenvr box's sensor and camera state live (TCP state port or
MQTT), lists its recordings and pulls a clip of any time range as one MP4."
  dpkg-deb --root-owner-group "${compress[@]}" --build "$root" "$out/nvrctl_${version}_$arch.deb" >/dev/null
  say "$out/nvrctl_${version}_$arch.deb"
}

build aarch64-unknown-linux-gnu edgenvr nvrctl
build armv7-unknown-linux-gnueabihf edgenvr
build x86_64-unknown-linux-gnu nvrctl

package_edgenvr aarch64-unknown-linux-gnu arm64
package_edgenvr armv7-unknown-linux-gnueabihf armhf
package_nvrctl x86_64-unknown-linux-gnu amd64
package_nvrctl aarch64-unknown-linux-gnu arm64
