#!/usr/bin/env bash
# Runs every fuzz target (or those named) for SECONDS each (default 60) with libFuzzer and
# AddressSanitizer, then prints executions, speed and crashes per target.
#
#   fuzz/run.sh [SECONDS] [TARGET...]
#   FUZZ_RUNS=1000000 fuzz/run.sh 900     # stop each target at 1,000,000 executions
#
# Only Rust stable is installed here: cargo-fuzz needs nightly-only `-Zsanitizer`, so the
# build runs with RUSTC_BOOTSTRAP=1. Seeds in fuzz/corpus/<target>/ are read, never written:
# new inputs go to fuzz/target/corpus/<target>/, crashes to fuzz/artifacts/<target>/. A crash
# file, once fixed, is copied into fuzz/corpus/<target>/ so filter/tests/fuzz_corpus.rs
# replays it in CI.
set -euo pipefail
here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$here"

seconds="${1:-60}"
shift || true
targets=("$@")
if [ ${#targets[@]} -eq 0 ]; then
  targets=(policy_load path_routing body_classify body_decode authorize_redirect url_identity)
fi

export RUSTC_BOOTSTRAP=1
command -v cargo-fuzz >/dev/null || { echo "cargo-fuzz missing: cargo install cargo-fuzz" >&2; exit 2; }
cargo fuzz build -O -a >&2

summary="$here/target/fuzz-summary.txt"
mkdir -p "$here/target"
printf '%-20s %12s %9s %8s %8s %7s\n' target execs execs/s seconds crashes corpus | tee "$summary"
status=0
for t in "${targets[@]}"; do
  work="$here/target/corpus/$t"
  mkdir -p "$work" "$here/artifacts/$t"
  log="$here/target/fuzz-$t.log"
  runs=()
  [ -n "${FUZZ_RUNS:-}" ] && runs=("-runs=$FUZZ_RUNS")
  start=$(date +%s)
  set +e
  cargo fuzz run -O -a "$t" "$work" "$here/corpus/$t" -- \
    -max_total_time="$seconds" "${runs[@]}" -timeout=1 -rss_limit_mb=512 -max_len=65536 \
    -print_final_stats=1 >"$log" 2>&1
  rc=$?
  set -e
  elapsed=$(( $(date +%s) - start ))
  execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  speed=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
  crashes=$(find "$here/artifacts/$t" -type f | wc -l)
  corpus=$(find "$work" -type f | wc -l)
  printf '%-20s %12s %9s %8s %8s %7s\n' "$t" "${execs:-?}" "${speed:-?}" "$elapsed" \
    "$crashes" "$corpus" | tee -a "$summary"
  if [ "$rc" -ne 0 ] || [ "$crashes" -ne 0 ]; then
    status=1
    echo "  $t: libFuzzer exit $rc; see $log and $here/artifacts/$t" >&2
    grep -m5 -E 'panicked|ERROR: |SUMMARY' "$log" >&2 || true
  fi
done
exit "$status"
