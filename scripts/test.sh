#!/usr/bin/env bash
# Runs the whole ferrsync test suite. Installs what the tests need (the real
# rsync and OpenSSH's sshd, the peers we are judged against) when missing.
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
command -v rsync >/dev/null 2>&1 || need+=(rsync)
[ -x /usr/sbin/sshd ] || need+=(openssh-server)
command -v pkill >/dev/null 2>&1 || need+=(procps)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v setfacl >/dev/null 2>&1 || need+=(acl)
if [ "${#need[@]}" -gt 0 ]; then
  if [ "$(id -u)" -ne 0 ]; then
    echo "missing ${need[*]} and not root: install them first" >&2
    exit 1
  fi
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
rsync --version | sed -n 1p

# Optimised (profile `ci`: release without LTO): the interop tests move
# tens of MiB through checksums. The integration tests are one binary
# (tests/it) plus the few that measure their own process's peak memory;
# their tests mostly wait on real rsync, sshd and the network, so more of
# them run at once than there are cores.
export RUST_TEST_THREADS="${RUST_TEST_THREADS:-4}"
# Everything in one build, in parallel: the test binaries, the benches (in
# test mode, each run once below) and the examples as programs (not as
# empty test binaries, which `cargo test --all-targets` would add).
cargo build --profile ci --all-targets
cargo test --profile ci --lib --bins --tests --benches "$@"
cargo test --profile ci --doc
# The no-network example must keep working (already built above).
cargo run --profile ci --example loopback
