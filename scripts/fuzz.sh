#!/usr/bin/env bash
# Runs every cargo-fuzz target (fuzz/fuzz_targets/) for SECONDS each (default 60), one after the
# other, starting from the committed corpus (fuzz/corpus/TARGET/). New inputs the fuzzer finds go
# to target/fuzz-corpus/TARGET (outside git); a crash stops the script with the fuzzer's report,
# the input is in fuzz/artifacts/TARGET/. To keep a crash as a regression input, copy it to
# fuzz/corpus/TARGET/regress-NAME: `cargo test` replays every corpus file.
#
# Installs cargo-fuzz from crates.io when it is missing. cargo-fuzz's default AddressSanitizer
# build passes `-Zsanitizer=address`, which a stable rustc accepts only with RUSTC_BOOTSTRAP=1
# (set below; libFuzzer's coverage flags are stable). Without it, `cargo fuzz run -s none`
# works on stable too, minus the sanitizer. Usage: scripts/fuzz.sh [SECONDS] [TARGET...]
set -euo pipefail
cd "$(dirname "$0")/.."
[ -x "$HOME/.cargo/bin/cargo" ] && export PATH="$HOME/.cargo/bin:$PATH"

seconds=${1:-60}
shift || true
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cd fuzz/fuzz_targets && ls -- *.rs | sed 's/\.rs$//')
fi

# libFuzzer's runtime is C++; cargo-fuzz needs a C++ compiler to build it.
command -v c++ >/dev/null || { echo "fuzz.sh: needs a C++ compiler (apt-get install g++)" >&2; exit 1; }
if ! cargo fuzz --version >/dev/null 2>&1; then
  echo "==> installing cargo-fuzz"
  cargo install --locked cargo-fuzz
fi

export RUSTC_BOOTSTRAP=1
# One fuzzing job at a time on a 2-core box; the build uses both cores.
for target in "${targets[@]}"; do
  scratch="target/fuzz-corpus/$target"
  mkdir -p "$scratch"
  echo "==> $target for ${seconds}s"
  set +e
  cargo fuzz run "$target" "$scratch" "fuzz/corpus/$target" -- \
    -max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 \
    2>&1 | tee "target/fuzz-$target.log" \
    | grep -E '^(#[0-9]+ +(INITED|DONE)|Done|stat::|==[0-9]+==|SUMMARY|thread .* panicked|artifact_prefix|Test unit written)'
  status=${PIPESTATUS[0]}
  set -e
  if [ "$status" -ne 0 ]; then
    echo "fuzz.sh: $target failed (exit $status); log: target/fuzz-$target.log" >&2
    exit "$status"
  fi
done
echo "==> fuzzing done: ${targets[*]}, ${seconds}s each"
