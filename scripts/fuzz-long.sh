#!/usr/bin/env bash
# Long fuzzing: runs each fuzz target for a set time, then merges what it
# found into the committed corpus, fuzz/corpus/<target>, keeping only inputs
# that add coverage (libFuzzer -merge=1), so CI's short smoke run starts from
# what the long runs reached. Commit fuzz/corpus afterwards.
#
#   scripts/fuzz-long.sh [SECONDS] [TARGET...]
#
#   SECONDS      per target (default: $FUZZ_LONG_SECONDS, else 600)
#   TARGET...    targets to run (default: every target, `cargo fuzz list`)
#   FUZZ_JOBS    targets run at once (default: the number of cores)
#   FUZZ_CMIN=1  minimize the whole corpus afterwards (`cargo fuzz cmin`):
#                drops committed inputs that add no coverage, named seeds too
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`).
# A target that crashes is reported with its input (under
# fuzz/artifacts/<target>/) and the script exits 1 after all have run: copy
# the input into fuzz/corpus/<target>/ with a name that says what it found,
# so every later run replays it.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

seconds=${1:-${FUZZ_LONG_SECONDS:-600}}
[ "$#" -gt 0 ] && shift
case "$seconds" in
  '' | *[!0-9]*) echo "seconds must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac
if [ "$#" -gt 0 ]; then
  targets=("$@")
else
  mapfile -t targets < <(cargo +nightly fuzz list)
fi
[ "${#targets[@]}" -gt 0 ] || { echo "no fuzz targets" >&2; exit 2; }
jobs_at_once=${FUZZ_JOBS:-$(nproc)}

scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

cargo +nightly fuzz build

run_one() {
  local target=$1 work=$scratch/$1 log=$scratch/$1.log
  mkdir -p "$work" "corpus/$target"
  # New inputs go to the first directory: a scratch one, merged below.
  if ! cargo +nightly fuzz run "$target" "$work" "corpus/$target" -- \
      -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1; then
    tail -n 40 "$log"
    echo "$target: crashed; the input is in fuzz/artifacts/$target/" >&2
    return 1
  fi
  local before after
  before=$(find "corpus/$target" -type f | wc -l)
  cargo +nightly fuzz run "$target" "corpus/$target" "$work" -- -merge=1 \
    >>"$log" 2>&1
  after=$(find "corpus/$target" -type f | wc -l)
  printf '%-18s %s runs in %ss, corpus %d -> %d files\n' "$target" \
    "$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | head -n 1)" \
    "$seconds" "$before" "$after"
}

for target in "${targets[@]}"; do
  while [ "$(jobs -rp | wc -l)" -ge "$jobs_at_once" ]; do wait -n || true; done
  { run_one "$target" || touch "$scratch/$target.crashed"; } >"$scratch/$target.out" 2>&1 &
done
wait
failed=()
for target in "${targets[@]}"; do
  cat "$scratch/$target.out"
  if [ -e "$scratch/$target.crashed" ]; then failed+=("$target"); fi
done

if [ "${FUZZ_CMIN:-0}" = 1 ]; then
  for target in "${targets[@]}"; do
    cargo +nightly fuzz cmin "$target" "corpus/$target" >/dev/null 2>&1
    printf '%-18s minimized: %d files\n' "$target" "$(find "corpus/$target" -type f | wc -l)"
  done
fi

if [ "${#failed[@]}" -gt 0 ]; then
  echo "targets that crashed: ${failed[*]}" >&2
  exit 1
fi
