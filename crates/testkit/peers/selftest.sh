#!/usr/bin/env bash
# Self-test of h3ws_peer.py with its own three modes only: an echo backend,
# the RFC 9220 server in front of it, and clients against that server.
# Prints one line per check and a closing "N passed, N failed" line; exits
# non-zero when any check failed. Needs openssl; the Python comes from
# scripts/python-peers.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
root="$(cd "$here/../../.." && pwd)"
python="$("$root/scripts/python-peers")"
peer="$here/h3ws_peer.py"
work="$(mktemp -d)"
pids=()
passed=0
failed=0

cleanup() {
  local pid
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 1 \
  -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1,DNS:localhost \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null

# Evaluates a Python expression over the JSON lines the peers printed.
# It sees out (this check's client events), rc (its exit code), server and
# backend (all events of those two so far), load(NAME) and code(NAME) for
# other clients, first(events, **fields) and sha256(bytes).
cat >"$work/check.py" <<'EOF'
import hashlib, json, os, sys

work, name, expr = sys.argv[1:]

def load(name):
    path = os.path.join(work, name + ".out")
    if not os.path.exists(path):
        return []
    return [json.loads(line) for line in open(path) if line.strip()]

def code(name):
    return int(open(os.path.join(work, name + ".rc")).read())

def first(events, **fields):
    return next((e for e in events if all(e.get(k) == v for k, v in fields.items())), None)

def sha256(data):
    return hashlib.sha256(data).hexdigest()

scope = dict(load=load, code=code, first=first, sha256=sha256,
             server=load("server"), backend=load("backend"))
if os.path.exists(os.path.join(work, name + ".rc")):
    scope.update(out=load(name), rc=code(name))
sys.exit(0 if eval("(" + expr + ")", scope) else 1)
EOF

# start_peer NAME ARGS...: starts a long-running mode in the background.
start_peer() {
  local name=$1
  shift
  "$python" "$peer" "$@" >"$work/$name.out" 2>"$work/$name.err" &
  pids+=($!)
}

# address NAME: waits for the {"listening": ...} line of a peer and prints
# its address.
address() {
  for _ in $(seq 200); do
    if grep -qs '"listening"' "$work/$1.out"; then
      "$python" -c 'import json, sys; print(json.loads(open(sys.argv[1]).readline())["listening"])' \
        "$work/$1.out"
      return 0
    fi
    sleep 0.05
  done
  echo "FAIL $1 did not start:" >&2
  cat "$work/$1.err" >&2
  return 1
}

# client NAME URL_PATH COMMANDS [ARGS...]: runs a client to its end; its
# events go to NAME.out, its exit code to NAME.rc.
client() {
  local name=$1 path=$2 commands=$3
  shift 3
  local rc=0
  printf '%s\n' "$commands" | timeout 30 "$python" "$peer" client --url "https://$server_addr$path" \
    --ca "$work/cert.pem" --timeout 5 "$@" >"$work/$name.out" 2>"$work/$name.err" || rc=$?
  echo "$rc" >"$work/$name.rc"
}

# check NAME DESCRIPTION EXPR: one result line. Retried briefly, as the
# servers may print their side a moment after the client ended.
check() {
  local name=$1 description=$2 expr=$3
  for _ in $(seq 20); do
    if "$python" "$work/check.py" "$work" "$name" "$expr" 2>"$work/check.err"; then
      echo "ok   $description"
      passed=$((passed + 1))
      return 0
    fi
    sleep 0.05
  done
  echo "FAIL $description"
  sed 's/^/     | /' "$work/$name.out" "$work/$name.err" "$work/check.err" 2>/dev/null || true
  failed=$((failed + 1))
}

# The echo backend, the server in front of it, and a second server whose
# backend refuses connections (a port just found free).
free_port="$("$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')"
start_peer backend echo-backend --listen 127.0.0.1:0
start_peer server-down server --listen 127.0.0.1:0 --cert "$work/cert.pem" --key "$work/key.pem" \
  --backend "ws://127.0.0.1:$free_port"
backend_addr="$(address backend)"
start_peer server server --listen 127.0.0.1:0 --cert "$work/cert.pem" --key "$work/key.pem" \
  --backend "ws://$backend_addr"
server_addr="$(address server)"
down_addr="$(address server-down)"

# One session for the echo checks: each check reads its part of the output.
client echo "/ws?check=echo" '{"text":"hello"}
{"fragments":{"opcode":"binary","count":8,"size":1000,"byte":98}}
{"fragments":{"opcode":"text","count":3,"size":5,"byte":120}}
{"ping_b64":"cGluZy0x"}
{"binary_repeat":{"byte":97,"len":4194304}}
{"close":{"code":1000,"reason":"done"}}
{"wait_closed":10}'
check echo "text echo (SETTINGS_ENABLE_CONNECT_PROTOCOL=1, status 200, query passed to the backend)" '
rc == 0 and first(out, event="settings")["settings"].get("8") == 1
and first(out, status=200) is not None
and first(out, event="text", data="hello") is not None
and first(out, event="close", code=1000, reason="done") is not None
and first(server, event="session", path="/ws?check=echo", backend_status="ok") is not None
and first(backend, event="request", path="/ws?check=echo") is not None'
check echo "fragmented messages come back whole" '
[e.get("len") for e in out if e.get("event") in ("binary", "text")] == [None, 8000, None, 4194304]
and first(out, event="binary", sha256=sha256(b"b" * 8000)) is not None
and first(out, event="text", data="x" * 15) is not None'
check echo "ping forwarded to the backend, pong back" '
first(out, event="pong", b64="cGluZy0x") is not None
and first(backend, event="ping", b64="cGluZy0x") is not None'
check echo "4 MiB binary echo (sha256 matches)" '
first(out, event="binary", len=4194304, sha256=sha256(b"a" * 4194304)) is not None'

client close4001 "/ws?check=close4001" '{"close":{"code":4001,"reason":"bye"}}
{"wait_closed":5}'
check close4001 "client close 4001 answered with 4001 end to end" '
rc == 0 and first(out, event="close", code=4001, reason="bye") is not None
and first(backend, event="closed", code=4001, reason="bye", initiator="client") is not None'

client close4002 "/ws?check=close4002" '{"text":"close:4002:x"}
{"wait_closed":5}'
check close4002 "backend close 4002 reaches the client" '
rc == 0 and first(out, event="close", code=4002, reason="x") is not None
and first(backend, event="closed", code=4002, initiator="backend") is not None'

# These four are independent: run them side by side.
clients=()
client method "/ws" '' --method GET &
clients+=($!)
client path "/other" '' &
clients+=($!)
client protocol "/ws" '' --protocol webtransport &
clients+=($!)
server_addr="$down_addr" client down "/ws" '{"wait_closed":8}' &
clients+=($!)
wait "${clients[@]}"
check method "GET with :protocol -> 405" 'rc == 0 and first(out, status=405) is not None'
check path "wrong path -> 404" 'rc == 0 and first(out, status=404) is not None'
check protocol ":protocol webtransport -> 400" '
rc == 0 and first(out, status=400) is not None
and first(server, event="request", protocol="webtransport", status=400) is not None'
check down "backend down -> 200, then close 1011" '
rc == 0 and first(out, status=200) is not None and first(out, event="close", code=1011) is not None
and first(load("server-down"), event="session", backend_status="failed") is not None'

clients=()
for i in $(seq 8); do
  client "c$i" "/ws?check=c$i" "{\"text\":\"client $i\"}
{\"close\":{\"code\":1000,\"reason\":\"c$i\"}}
{\"wait_closed\":10}" &
  clients+=($!)
done
wait "${clients[@]}"
check concurrent "8 concurrent clients" "all(
  code(f'c{i}') == 0
  and first(load(f'c{i}'), event='text', data=f'client {i}') is not None
  and first(load(f'c{i}'), event='close', code=1000, reason=f'c{i}') is not None
  for i in range(1, 9))"

client bench "/ws?check=bench" '' --bench-messages 500 --bench-size 1024
check bench "bench mode: 500 x 1 KiB echoed" '
rc == 0 and first(out, event="close", code=1000) is not None
and any("bench" in e and e["bench"]["messages"] == 500 and e["bench"]["bytes"] == 512000 for e in out)'

echo "$passed passed, $failed failed"
[ "$failed" -eq 0 ]
