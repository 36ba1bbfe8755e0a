#!/usr/bin/env bash
# Conformance of Keyturn's Cryptolens-compatible API with the official Cryptolens SDKs, taken
# from their registries: Python `licensing` (PyPI, in a virtualenv) and Node `cryptolens` (npm,
# in a temporary directory). Builds Keyturn, starts it on a free 127.0.0.1 port with a fresh data
# directory, runs both SDK scripts against it, and ends with the line `N passed, M failed`.
# Exits non-zero on any failure.
set -uo pipefail
cd "$(dirname "$0")/../.."
here=tests/cryptolens-sdks

PY_SDK="${CRYPTOLENS_PY_SDK:-licensing==0.54}"
NODE_SDK="${CRYPTOLENS_NODE_SDK:-cryptolens@1.0.11}"

work=$(mktemp -d)
server_pid=""
cleanup() {
  if [ -n "$server_pid" ]; then
    kill "$server_pid" 2>/dev/null
    wait "$server_pid" 2>/dev/null
  fi
  rm -rf "$work"
}
trap cleanup EXIT

fail_setup() {
  echo "setup failed: $1" >&2
  echo "0 passed, 1 failed"
  exit 1
}

echo "== building keyturn"
cargo build -q -p keyturn || fail_setup "cargo build"
bin="${CARGO_TARGET_DIR:-target}/debug/keyturn"

echo "== installing $PY_SDK into a virtualenv"
python3 -m venv "$work/venv" || fail_setup "python3 -m venv"
"$work/venv/bin/pip" install -q --disable-pip-version-check "$PY_SDK" || fail_setup "pip install $PY_SDK"

echo "== installing $NODE_SDK into a temporary directory"
mkdir -p "$work/node"
(cd "$work/node" && npm init -y >/dev/null 2>&1 && npm install --no-audit --no-fund --silent "$NODE_SDK" >/dev/null) \
  || fail_setup "npm install $NODE_SDK"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()')
echo "== starting keyturn on 127.0.0.1:$port"
"$bin" --data-dir "$work/data" serve --listen "127.0.0.1:$port" --rate-limit-per-minute 0 \
  >"$work/server.out" 2>"$work/server.err" &
server_pid=$!
url="http://127.0.0.1:$port"
for _ in $(seq 1 100); do
  curl -fs "$url/health" >/dev/null 2>&1 && break
  kill -0 "$server_pid" 2>/dev/null || { cat "$work/server.err" >&2; fail_setup "the server exited"; }
  sleep 0.1
done
admin=$(sed -n 2p "$work/server.out")
[ -n "$admin" ] || fail_setup "no admin token in the server's output"

pass=0
fail=0
tally() { # name, output file, exit code
  local p f
  p=$(grep -c '^PASS ' "$2")
  f=$(grep -c '^FAIL ' "$2")
  # A script that dies without reporting counts as a failure.
  if [ "$3" -ne 0 ] && [ "$f" -eq 0 ]; then f=1; fi
  echo "-- $1: $p passed, $f failed"
  pass=$((pass + p))
  fail=$((fail + f))
}

echo "== Python SDK ($PY_SDK)"
KEYTURN_URL="$url" KEYTURN_ADMIN="$admin" "$work/venv/bin/python" "$here/conformance.py" 2>&1 | tee "$work/py.out"
tally python "$work/py.out" "${PIPESTATUS[0]}"

echo "== Node SDK ($NODE_SDK)"
KEYTURN_URL="$url" KEYTURN_ADMIN="$admin" NODE_PATH="$work/node/node_modules" node "$here/conformance.js" 2>&1 | tee "$work/node.out"
tally node "$work/node.out" "${PIPESTATUS[0]}"

echo "== CLI prints the same RSA key the API publishes"
product=$(curl -fs -H "Authorization: Bearer $admin" "$url/v1/products" \
  | python3 -c 'import json, sys; print(json.load(sys.stdin)["data"][0]["id"])')
api_xml=$(curl -fs "$url/v1/products/$product/public-key?format=rsa-xml")
cli_xml=$("$bin" --data-dir "$work/data" product public-key "$product" --format rsa-xml 2>/dev/null)
if [ -n "$api_xml" ] && [ "$api_xml" = "$cli_xml" ]; then
  echo "PASS cli rsa-xml public key"; pass=$((pass + 1))
else
  echo "FAIL cli rsa-xml public key: api=${api_xml:0:40} cli=${cli_xml:0:40}"; fail=$((fail + 1))
fi

if [ "$fail" -ne 0 ]; then
  echo "-- server log (stderr, last lines):"
  tail -n 20 "$work/server.err"
fi
echo "$pass passed, $fail failed"
[ "$fail" -eq 0 ]
