#!/usr/bin/env bash
# Keyturn's benchmarks: builds the server and the harness in release mode, runs every measurement
# in one go on this machine, prints the table and writes it to bench/RESULTS.md.
#
#   bash bench/run.sh                 # the full run (about 5 minutes)
#   bash bench/run.sh --only 2,3      # some measurements (nothing is written)
#   bash bench/run.sh --smoke         # a quick pass with tiny sizes on a debug build (CI runs it)
#
# PostgreSQL figures need a server: KEYTURN_BENCH_DATABASE_URL (or KEYTURN_TEST_DATABASE_URL),
# e.g. postgres://postgres@127.0.0.1:5432/test; scratch databases are created and dropped there.
set -euo pipefail
cd "$(dirname "$0")/.."
export KEYTURN_BENCH_DATABASE_URL="${KEYTURN_BENCH_DATABASE_URL:-${KEYTURN_TEST_DATABASE_URL:-}}"

profile=release
write=(--out bench/RESULTS.md)
for arg in "$@"; do
  case "$arg" in
    --smoke) profile=debug; write=() ;;
    --only*|--sizes*|--seconds*|--stripe-events*|--console-licenses*) write=() ;;
  esac
done

if [ "$profile" = release ]; then
  cargo build --release -p keyturn -p keyturn-bench
else
  cargo build -p keyturn -p keyturn-bench
fi
bin="${CARGO_TARGET_DIR:-target}/$profile"
exec "$bin/keyturn-bench" run --server "$bin/keyturn" "${write[@]}" "$@"
