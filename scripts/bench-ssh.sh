#!/usr/bin/env bash
# ferrsync + russh against rsync + OpenSSH over SSH to 127.0.0.1, same run.
#
# Usage: scripts/bench-ssh.sh [-r ROUNDS] [--scale S]
#
# Makes the big file (1 GiB at scale 1) and the 100,000-file tree with
# ../shared/bench/mkcorpus on a tmpfs (as root), starts OpenSSH sshd on a
# free 127.0.0.1 port with generated keys and one cipher that both clients
# offer (aes256-gcm@openssh.com), then pushes each set to a fresh
# destination with `rsync -a -e ssh` and with `ferrsync -a ssh://...` in
# alternating rounds; the far side is `rsync --server` under sshd for both.
# Prints the median wall times and the ratio ferrsync / rsync.
set -euo pipefail
cd "$(dirname "$0")/.."
here=$(pwd)
bench=${BENCH_DIR:-$here/../shared/bench}
rounds=3
scale=1
while [ $# -gt 0 ]; do
  case "$1" in
    -r) rounds=$2; shift 2 ;;
    --scale) scale=$2; shift 2 ;;
    *) echo "unknown argument $1" >&2; exit 2 ;;
  esac
done
cipher=aes256-gcm@openssh.com

# FERRSYNC_BIN: time an already built binary instead of building one.
if [ -n "${FERRSYNC_BIN:-}" ]; then
  bin=$FERRSYNC_BIN
else
  cargo build --release --bin ferrsync >&2
  bin=$here/target/release/ferrsync
fi

base=${BENCH_TMP:-/tmp/ferrsync-bench-ssh}
mkdir -p "$base"
if [ "$(id -u)" -eq 0 ] && ! mountpoint -q "$base"; then
  mount -t tmpfs -o size=8g tmpfs "$base"
fi
corpus=$base/corpus-$scale
if [ ! -f "$corpus/MANIFEST.json" ]; then
  python3 "$bench/mkcorpus" --scale "$scale" --sets big,small "$corpus" >&2
fi

keys=$base/keys
rm -rf "$keys"; mkdir -p "$keys" /run/sshd
ssh-keygen -q -t ed25519 -N '' -f "$keys/host"
ssh-keygen -q -t ed25519 -N '' -f "$keys/user"
cp "$keys/user.pub" "$keys/authorized_keys"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$keys/sshd_config" <<EOF
ListenAddress 127.0.0.1:$port
HostKey $keys/host
AuthorizedKeysFile $keys/authorized_keys
PidFile none
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Ciphers $cipher
LogLevel ERROR
EOF
/usr/sbin/sshd -D -f "$keys/sshd_config" -E "$keys/sshd.log" &
sshd_pid=$!
trap 'kill $sshd_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do
  (exec 3<>/dev/tcp/127.0.0.1/$port) 2>/dev/null && break
  sleep 0.05
done
echo "[127.0.0.1]:$port $(cut -d' ' -f1,2 "$keys/host.pub")" > "$keys/known_hosts"
ssh_cmd="ssh -F /dev/null -p $port -i $keys/user -c $cipher -o IdentitiesOnly=yes -o IdentityAgent=none -o UserKnownHostsFile=$keys/known_hosts -o StrictHostKeyChecking=yes -o BatchMode=yes"

results=$base/results-$(date -u +%Y%m%dT%H%M%SZ).tsv
printf 'who\tset\tround\twall\trc\n' > "$results"
run() { # who set round
  local who=$1 set=$2 round=$3 dst=$base/dst
  rm -rf "$dst"; mkdir -p "$dst"; sync
  local t0 t1 rc=0
  t0=$(date +%s.%N)
  if [ "$who" = rsync ]; then
    rsync -a -e "$ssh_cmd" "$corpus/$set" "127.0.0.1:$dst/" || rc=$?
  else
    "$bin" -a --ssh-key "$keys/user" --known-hosts "$keys/known_hosts" \
      "$corpus/$set" "ssh://root@127.0.0.1:$port$dst/" || rc=$?
  fi
  t1=$(date +%s.%N)
  local wall; wall=$(awk "BEGIN { printf \"%.3f\", $t1 - $t0 }")
  printf '%s\t%s\t%s\t%s\t%s\n' "$who" "$set" "$round" "$wall" "$rc" >> "$results"
  echo "$who $set round $round: $wall s (rc $rc)" >&2
}
for round in $(seq 1 "$rounds"); do
  for set in big small; do
    for who in rsync ferrsync; do run "$who" "$set" "$round"; done
  done
done
rm -rf "$base/dst"

python3 - "$results" <<'PY'
import csv, statistics, sys
rows = {}
for r in csv.DictReader(open(sys.argv[1]), delimiter="\t"):
    if r["rc"] == "0":
        rows.setdefault((r["who"], r["set"]), []).append(float(r["wall"]))
    else:
        print(f"WARNING: {r['who']} {r['set']} round {r['round']} exited {r['rc']}")
print(f"{'set':<8}{'rsync+OpenSSH s':>17}{'ferrsync+russh s':>18}{'ratio':>8}")
for s in ("big", "small"):
    a, b = rows.get(("rsync", s)), rows.get(("ferrsync", s))
    if a and b:
        ma, mb = statistics.median(a), statistics.median(b)
        print(f"{s:<8}{ma:>17.3f}{mb:>18.3f}{mb/ma:>8.2f}")
PY
