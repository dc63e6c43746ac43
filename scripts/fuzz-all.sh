#!/usr/bin/env bash
# Runs every cargo-fuzz target in fuzz/ one after the other, each for
# -runs=N executions (default 10000) from its seed corpus, and prints one
# line per target: executions, crashes (0 or the artifact), time.
#
#   scripts/fuzz-all.sh [-runs N] [-s SANITIZER] [TARGET...]
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`); on a stable toolchain
# RUSTC_BOOTSTRAP=1 is set for libFuzzer's nightly features. Exits non-zero
# when a target crashes, times out or runs out of memory.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"

runs=10000
sanitizer=address
targets=()
while [ $# -gt 0 ]; do
  case "$1" in
    -runs) runs="$2"; shift 2 ;;
    -runs=*) runs="${1#-runs=}"; shift ;;
    -s) sanitizer="$2"; shift 2 ;;
    *) targets+=("$1"); shift ;;
  esac
done
if ! command -v cargo-fuzz >/dev/null 2>&1; then
  echo "cargo-fuzz is not installed: cargo install cargo-fuzz" >&2
  exit 2
fi
export RUSTC_BOOTSTRAP=1
if [ "${#targets[@]}" -eq 0 ]; then
  mapfile -t targets < <(cargo fuzz list)
fi
cargo fuzz build -s "$sanitizer"
failed=0
for t in "${targets[@]}"; do
  mkdir -p "corpus/$t"
  start=$(date +%s)
  log=$(mktemp)
  # A private copy of the corpus: the run's finds stay out of the repo.
  work=$(mktemp -d)
  cp -a "corpus/$t/." "$work/"
  if cargo fuzz run -s "$sanitizer" "$t" "$work" -- -runs="$runs" -rss_limit_mb=2048 -timeout=20 >"$log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed=1
  fi
  end=$(date +%s)
  done_line=$(grep -E '^(Done|#[0-9]+\s+DONE)' "$log" | tail -1 || true)
  cov=$(grep -oE 'cov: [0-9]+ ft: [0-9]+' "$log" | tail -1 || true)
  echo "$t: $status, $done_line, $cov, $((end - start)) s"
  if [ "$status" != ok ]; then
    tail -30 "$log"
  fi
  rm -rf "$log" "$work"
done
exit "$failed"
