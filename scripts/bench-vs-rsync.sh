#!/usr/bin/env bash
# Side-by-side timing of ferrsync and rsync on the shared benchmark corpus.
#
# Usage: scripts/bench-vs-rsync.sh [-s "S1 S2 S3 S4"] [-n RUNS] [-r ROUNDS] [--scale S]
#
# Builds ferrsync in release mode, makes the corpus with
# ../shared/bench/mkcorpus on a tmpfs (as root; the machine's ext4 makes
# mass file creation quadratic), then runs ../shared/bench/rsync-baseline
# for rsync and for ferrsync in alternating rounds, and prints both tables
# and the ratio ferrsync/rsync of the median wall times.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
bench=${BENCH_DIR:-$here/../shared/bench}
scenarios="S1 S2 S3 S4"
runs=3
rounds=2
scale=1
while [ $# -gt 0 ]; do
  case "$1" in
    -s) scenarios=$2; shift 2 ;;
    -n) runs=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

cargo build --release --bin ferrsync >&2
bin=$here/target/release/ferrsync

base=${BENCH_TMP:-/tmp/ferrsync-bench}
mkdir -p "$base"
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q "$base"; then
  mount -t tmpfs -o size=12g tmpfs "$base"
fi
corpus=$base/corpus-$scale
if [ ! -f "$corpus/MANIFEST.json" ]; then
  python3 "$bench/mkcorpus" --scale "$scale" "$corpus" >&2
fi
# One directory per invocation: the summary below globs every TSV in it, so a
# shared directory would mix earlier runs (and other scales) into the ratio.
results=$base/results/$(date -u +%Y%m%dT%H%M%SZ)-scale$scale
mkdir -p "$results"
echo "results: $results" >&2
for round in $(seq 1 "$rounds"); do
  for who in rsync ferrsync; do
    if [ "$who" = rsync ]; then cmd=rsync; else cmd=$bin; fi
    CORPUS=$corpus WORK=$base/work RESULTS=$results RUNS=$runs WARMUP=1 \
      RSYNC="$cmd" SCENARIOS="$scenarios" \
      bash "$bench/rsync-baseline" -l "$who-r$round" >&2
  done
done

python3 - "$results" <<'PY'
import csv, glob, os, statistics, sys
rows = {}
failed = {}
for path in glob.glob(os.path.join(sys.argv[1], "*.tsv")):
    label = os.path.basename(path).split("-r")[0]
    with open(path) as f:
        for r in csv.DictReader(f, delimiter="\t"):
            sc = r.get("scenario") or r.get("id")
            wall = r.get("wall")
            if sc and wall and r.get("rc", "0") == "0":
                rows.setdefault((label, sc), []).append(float(wall))
            elif sc:
                failed[(label, sc)] = failed.get((label, sc), 0) + 1
scen = sorted({s for (_, s) in rows})
print(f"{'scenario':<14}{'rsync s':>10}{'ferrsync s':>12}{'ratio':>8}")
for s in scen:
    a = rows.get(("rsync", s)); b = rows.get(("ferrsync", s))
    if a and b:
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{s:<14}{ma:>10.3f}{mb:>12.3f}{mb/ma:>8.2f}")
for (label, s), n in sorted(failed.items()):
    print(f"WARNING: {label} {s}: {n} run(s) exited non-zero and are not in the medians")
PY
