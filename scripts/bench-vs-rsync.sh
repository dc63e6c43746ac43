#!/usr/bin/env bash
# Side-by-side timing of ferrsync and rsync on the shared benchmark corpus.
#
# Usage: scripts/bench-vs-rsync.sh [-s "S1 S2 S3 S4"] [-z "zstd zlib"] [-n RUNS] [-r ROUNDS] [--scale S]
#
# Builds ferrsync in release mode, makes the corpus with
# ../shared/bench/mkcorpus on a tmpfs (as root; the machine's ext4 makes
# mass file creation quadratic), then runs ../shared/bench/rsync-baseline
# for rsync and for ferrsync in alternating rounds, and prints both tables
# and the ratio ferrsync/rsync of the median wall times.
#
# -z CHOICES adds the compressed scenarios Z-<choice>: the corpus `text`
# file (256 MiB at scale 1) pushed with `-a -z --compress-choice=<choice>`
# over a remote-shell pipe (a shim that drops the host name and runs the
# server command locally) to the same program as `--server`, so each side
# compresses or decompresses as it would over ssh, without ssh's cost.
# rsync and ferrsync alternate run by run (one untimed warm-up each, then
# RUNS x ROUNDS timed runs each). With -z and no -s only the Z scenarios
# run.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
bench=${BENCH_DIR:-$here/../shared/bench}
scenarios="S1 S2 S3 S4"
scenarios_given=0
zchoices=""
runs=3
rounds=2
scale=1
while [ $# -gt 0 ]; do
  case "$1" in
    -s) scenarios=$2; scenarios_given=1; shift 2 ;;
    -z) zchoices=$2; shift 2 ;;
    -n) runs=$2; shift 2 ;;
    -r) rounds=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done

# FERRSYNC_BIN: an already built binary to time instead (no build).
if [ -n "${FERRSYNC_BIN:-}" ]; then
  bin=$(realpath "$FERRSYNC_BIN")
else
  cargo build --release --bin ferrsync >&2
  bin=$here/target/release/ferrsync
fi

base=${BENCH_TMP:-/tmp/ferrsync-bench}
mkdir -p "$base"
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q "$base"; then
  mount -t tmpfs -o size=12g tmpfs "$base"
fi
if [ -n "$zchoices" ] && [ "$scenarios_given" -eq 0 ]; then
  scenarios=""
fi
corpus=$base/corpus-$scale
if [ -n "$scenarios" ] && [ ! -f "$corpus/MANIFEST.json" ]; then
  python3 "$bench/mkcorpus" --scale "$scale" "$corpus" >&2
fi
# One directory per invocation: the summary below globs every TSV in it, so a
# shared directory would mix earlier runs (and other scales) into the ratio.
results=$base/results/$(date -u +%Y%m%dT%H%M%SZ)-scale$scale
mkdir -p "$results"
echo "results: $results" >&2
for round in $(seq 1 "$rounds"); do
  [ -n "$scenarios" ] || break
  for who in rsync ferrsync; do
    if [ "$who" = rsync ]; then cmd=rsync; else cmd=$bin; fi
    CORPUS=$corpus WORK=$base/work RESULTS=$results RUNS=$runs WARMUP=1 \
      RSYNC="$cmd" SCENARIOS="$scenarios" \
      bash "$bench/rsync-baseline" -l "$who-r$round" >&2
  done
done

if [ -n "$zchoices" ]; then
  # The text file alone is enough (a full corpus, if present, has it).
  ztext=$corpus/text
  if [ ! -f "$ztext" ]; then
    ztext=$base/corpus-text-$scale/text
    [ -f "$ztext" ] || python3 "$bench/mkcorpus" --scale "$scale" --sets text "$base/corpus-text-$scale" >&2
  fi
  shim=$base/rsh-pipe
  cat >"$shim" <<'SH'
#!/bin/sh
# Remote shell for a local pipe: drop the host name, run the command.
shift
exec "$@"
SH
  chmod +x "$shim"
  zdst=$base/work/zdst
  for who in rsync ferrsync; do
    printf 'scenario\twall\tcpu\trc\n' >"$results/$who-rz.tsv"
  done
  # One timed push; appends a row to $results/<who>-rz.tsv.
  zrun() {
    local who=$1 z=$2 row=$3 cmd rc=0
    if [ "$who" = rsync ]; then cmd=$(command -v rsync); else cmd=$bin; fi
    rm -rf "$zdst" && mkdir -p "$zdst" && sync
    /usr/bin/time -o "$base/.ztime" -f '%e\t%U\t%S' "$cmd" -a -z --compress-choice="$z" \
      -e "$shim" --rsync-path="$cmd" "$ztext" "pipe:$zdst/" || rc=$?
    # A wrong copy counts as a failed run (99).
    if ! cmp -s "$ztext" "$zdst/text" && [ "$rc" -eq 0 ]; then rc=99; fi
    if [ "$row" = 1 ]; then
      awk -v s="Z-$z" -v rc="$rc" -F'\t' 'END { printf "%s\t%s\t%.2f\t%s\n", s, $1, $2 + $3, rc }' \
        "$base/.ztime" >>"$results/$who-rz.tsv"
    fi
    echo "Z-$z $who: $(tr '\t' ' ' <"$base/.ztime") rc=$rc" >&2
  }
  for z in $zchoices; do
    zrun rsync "$z" 0
    zrun ferrsync "$z" 0
    for _ in $(seq 1 $((runs * rounds))); do
      zrun rsync "$z" 1
      zrun ferrsync "$z" 1
    done
  done
  rm -rf "$zdst"
fi

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
print(f"{'scenario':<14}{'rsync s':>10}{'ferrsync s':>12}{'ratio':>8}{'runs':>6}")
for s in scen:
    a = rows.get(("rsync", s)); b = rows.get(("ferrsync", s))
    if a and b:
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{s:<14}{ma:>10.3f}{mb:>12.3f}{mb/ma:>8.2f}{min(len(a), len(b)):>6}")
for (label, s), n in sorted(failed.items()):
    print(f"WARNING: {label} {s}: {n} run(s) exited non-zero and are not in the medians")
PY
