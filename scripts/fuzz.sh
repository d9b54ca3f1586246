#!/usr/bin/env bash
# Fuzzes every decoder of untrusted bytes with cargo fuzz (libFuzzer), on the stable toolchain.
#
#   scripts/fuzz.sh                 every target for 60 s (CONFIDANT_FUZZ_SECONDS overrides)
#   scripts/fuzz.sh -t 600 ovmf     one target for ten minutes
#   scripts/fuzz.sh --smoke         every target for 3 s: what the test command runs, so a target
#                                   that no longer builds or crashes at once fails CI
#   scripts/fuzz.sh --list          the targets
#
# Stable toolchain: cargo fuzz's only nightly-only flag is the sanitizer's (`-Zsanitizer=address`,
# its default). The code fuzzed here forbids `unsafe`, so this script builds with
# `--sanitizer none`, which needs only stable flags: `-Cpasses=sancov-module` and
# `-Cllvm-args=-sanitizer-coverage-*` (coverage for libFuzzer), `--cfg fuzzing`,
# `-Cdebug-assertions` (so integer overflow is a crash). AddressSanitizer on stable needs
# RUSTC_BOOTSTRAP=1 (cargo fuzz then passes -Zsanitizer=address): set CONFIDANT_FUZZ_ASAN=1.
#
# Seeds: `confidant-fuzz-seeds` writes them to target/fuzz/seeds/<target>/ on every run, from the
# shared test data (read in place: $CONFIDANT_TESTDATA or ../shared/testdata/attestation), a swtpm
# and our own encoders; fuzz/regressions/<target>/ (saved crashes) is read too. New inputs
# libFuzzer finds go to target/fuzz/corpus/<target>/ (kept between runs), crashes to
# target/fuzz/artifacts/<target>/. A crash fails the run and prints what to do with it
# (fuzz/README.md: every crash becomes a regression test named after it).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { printf '[fuzz] %s\n' "$*" >&2; }

CARGO_FUZZ_VERSION=0.13.2
seconds="${CONFIDANT_FUZZ_SECONDS:-60}"
list_only=0
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    --smoke) seconds=3 ;;
    -t|--time) seconds="$2"; shift ;;
    --list) list_only=1 ;;
    -h|--help) sed -n '2,23p' "$0"; exit 0 ;;
    -*) say "unknown option $1"; exit 2 ;;
    *) targets+=("$1") ;;
  esac
  shift
done

# --- cargo-fuzz, pinned, in the tool cache (like scripts/deny.sh) ---------------------------------
cache="${CONFIDANT_TOOL_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/confidant}"
mkdir -p "$cache"
root="$cache/tools/cargo-fuzz-$CARGO_FUZZ_VERSION"
(
  exec 8>"$cache/.fuzz.lock"
  flock 8
  if [ -x "$root/bin/cargo-fuzz" ] && "$root/bin/cargo-fuzz" --version 2>/dev/null | grep -qx "cargo-fuzz $CARGO_FUZZ_VERSION"; then
    say "cargo-fuzz $CARGO_FUZZ_VERSION cached"
  else
    say "installing cargo-fuzz $CARGO_FUZZ_VERSION (cargo install --locked; once)"
    cargo install --quiet --locked --force --root "$root" cargo-fuzz --version "$CARGO_FUZZ_VERSION"
  fi
)
export PATH="$root/bin:$PATH"

all_targets=()
while IFS= read -r t; do all_targets+=("$t"); done < <(cargo fuzz list)
if [ "$list_only" = 1 ]; then printf '%s\n' "${all_targets[@]}"; exit 0; fi
[ ${#targets[@]} -gt 0 ] || targets=("${all_targets[@]}")
for t in "${targets[@]}"; do
  printf '%s\n' "${all_targets[@]}" | grep -qx "$t" || { say "no fuzz target $t (--list)"; exit 2; }
done

# --- build ------------------------------------------------------------------------------------------
build=(--sanitizer none)
if [ "${CONFIDANT_FUZZ_ASAN:-0}" = 1 ]; then
  export RUSTC_BOOTSTRAP=1
  build=(--sanitizer address)
fi
triple="$(rustc -vV | sed -n 's/^host: //p')"
bin_dir="target/$triple/release"
say "cargo fuzz build ${build[*]} (${#all_targets[@]} targets)"
start=$(date +%s)
cargo fuzz build "${build[@]}"
say "built in $(( $(date +%s) - start )) s"

# --- seeds --------------------------------------------------------------------------------------------
seeds=target/fuzz/seeds
rm -rf "$seeds"
cargo run --locked --quiet -p confidant-fuzz-seeds -- "$seeds" >/dev/null

# --- run ------------------------------------------------------------------------------------------------
crashed=()
ran=0
for t in "${targets[@]}"; do
  corpus="target/fuzz/corpus/$t"
  artifacts="target/fuzz/artifacts/$t"
  mkdir -p "$corpus" "$artifacts"
  dirs=("$corpus" "$seeds/$t")
  [ -d "fuzz/regressions/$t" ] && dirs+=("fuzz/regressions/$t")
  say "$t: ${seconds} s"
  log="target/fuzz/$t.log"
  if "$bin_dir/$t" "${dirs[@]}" -max_total_time="$seconds" -timeout=20 -rss_limit_mb=2048 \
      -print_final_stats=1 -artifact_prefix="$artifacts/" >"$log" 2>&1; then
    ran=$((ran + 1))
    say "$t: $(grep -o 'stat::number_of_executed_units: [0-9]*' "$log" | awk '{print $2}') runs, corpus $(ls "$corpus" | wc -l) inputs"
  else
    crashed+=("$t")
    tail -n 30 "$log" >&2
    found="$(ls -t "$artifacts" 2>/dev/null | head -n 1)"
    say "$t: CRASH ($artifacts/$found). Reproduce: $bin_dir/$t $artifacts/$found"
    say "  minimise: cargo fuzz tmin ${build[*]} $t $artifacts/$found; then save it as"
    say "  fuzz/regressions/$t/<what-it-breaks> and add a test of that name to the decoder's suite"
  fi
done

say "$ran passed, ${#crashed[@]} failed"
[ ${#crashed[@]} -eq 0 ] || { say "crashed: ${crashed[*]}"; exit 1; }
