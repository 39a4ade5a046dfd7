#!/usr/bin/env bash
# The whole test suite, from a bare Debian/Ubuntu machine: installs what it needs, then runs the
# format and lint checks, the host tests (end-to-end against real servers included), the box's
# crates under qemu-user for aarch64 and armv7, and the microcontroller build of the protocol.
set -euo pipefail
cd "$(dirname "$0")/.."
# Each step prints the time the one before it took and the running total, so a CI log shows
# where the suite's minutes go.
suite_start=$SECONDS
step_start=$SECONDS
step() {
  printf '\n(%ds; %ds so far)\n==> %s\n' $((SECONDS - step_start)) $((SECONDS - suite_start)) "$*"
  step_start=$SECONDS
}

step "setup (apt packages, Rust toolchain and targets)"
scripts/setup.sh
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

# The SD image test needs root. Its Debian base (mmdebstrap under qemu-user: about ten minutes
# when its inputs changed, nothing when cached) builds in the background from here, niced and in
# its own process group, so a cold build overlaps the host tests; the image step waits for it.
image_base_pid=""
if [ "${EDGENVR_SKIP_IMAGE:-}" != 1 ] && [ "$(id -u)" -eq 0 ]; then
  mkdir -p target
  setsid nice -n 10 scripts/image.sh --base-only >target/image-base.log 2>&1 &
  image_base_pid=$!
  trap '[ -n "$image_base_pid" ] && kill -- -"$image_base_pid" 2>/dev/null; true' EXIT
fi

step "format"
cargo fmt --all -- --check

step "clippy (warnings denied)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "host build (the end-to-end tests run these binaries)"
cargo build --workspace --bins --locked

step "host tests"
# End-to-end tests are real time and share two cores: one at a time.
cargo test --workspace --locked -- --test-threads=1

# The crates that run on the box, executed on emulated ARM. The runner prints each binary it
# starts, so the log shows the tests really ran under qemu-aarch64 and qemu-arm.
export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$PWD/scripts/qemu-run aarch64"
export CARGO_TARGET_ARMV7_UNKNOWN_LINUX_GNUEABIHF_RUNNER="$PWD/scripts/qemu-run arm"
for target in aarch64-unknown-linux-gnu armv7-unknown-linux-gnueabihf; do
  step "box crates on $target under qemu-user"
  cargo test --locked --target "$target" -p edgenvr-proto -p edgenvr-sensors -p edgenvr --lib
done

step "the SD image, booted under qemu-system-aarch64 (tests/tests/image_boot.rs)"
if [ "${EDGENVR_SKIP_IMAGE:-}" = 1 ]; then
  echo "NOT RUN: EDGENVR_SKIP_IMAGE=1"
elif [ -z "$image_base_pid" ]; then
  echo "NOT RUN: the image test needs root"
else
  waited=$SECONDS
  wait "$image_base_pid" || { cat target/image-base.log; echo "the image's base build failed" >&2; exit 1; }
  image_base_pid=""
  echo "waited $((SECONDS - waited)) s for the image's base build (target/image-base.log):"
  tail -n 1 target/image-base.log
  cargo test --locked -p edgenvr-tests --test image_boot -- --ignored --nocapture
fi

step "protocol crate for a microcontroller (thumbv6m-none-eabi, defmt)"
cargo build --locked -p edgenvr-proto --target thumbv6m-none-eabi --features defmt

step "the README's main-job command, short mode"
scripts/demo.sh --short

step "all checks passed"
