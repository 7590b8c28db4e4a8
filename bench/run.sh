#!/usr/bin/env bash
# `make bench`: requests/s and latency of payments-api, one process, measured with wrk on this
# machine — and, when node/npm are here, of the Express design it ports (the peer in
# ../shared/peers/express-seed) on the same work, so the two can be compared as a ratio.
#
# It starts its own redis-server on a free port (never the machine's 6379), the service, and
# the peer; seeds them; runs wrk on each scenario; prints one table and writes it to
# bench/results/<UTC timestamp>.{txt,json}. Whatever happens, everything it started is stopped
# (trap on EXIT). Logs of the run are in bench/.run/ (replaced by the next run).
#
# Knobs: WRK_THREADS (2), WRK_CONNECTIONS (64), WRK_DURATION (10s), WARMUP_DURATION (3s),
#        WRK_TIMEOUT (30s),
#        PEER_SRC (../shared/peers/express-seed), SKIP_PEER=1 to measure the service alone.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY="$ROOT/.venv/bin/python"
RUN_DIR="$BENCH/.run"
RESULTS_DIR="$BENCH/results"
PEER_SRC="${PEER_SRC:-$ROOT/../shared/peers/express-seed}"
PEER_DIR="$BENCH/.peer/express-seed"

WRK_THREADS="${WRK_THREADS:-2}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-64}"
WRK_DURATION="${WRK_DURATION:-10s}"
WARMUP_DURATION="${WARMUP_DURATION:-3s}"
# wrk drops a response slower than its timeout (default 2 s) from the latency figures and counts
# it as a socket error: a generous one keeps a slow scenario's latency measured.
WRK_TIMEOUT="${WRK_TIMEOUT:-30s}"

# Bounded waits: a server that is not up by then has failed (its log is shown).
START_TIMEOUT_S=30
STOP_TIMEOUT_S=15

# A throwaway admin for a throwaway instance: random per run, never written anywhere else.
ADMIN_EMAIL="bench-admin@example.com"
ADMIN_PASSWORD="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PEER_JWT_SECRET="bench-secret"

PIDS=()   # every background process this script started, in start order
NAMES=()

log() { printf '==> %s\n' "$*"; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Cleanup: runs on every exit (normal, error, Ctrl-C). SIGTERM first so each server shuts down
# cleanly (uvicorn finishes in-flight requests), SIGKILL after STOP_TIMEOUT_S.
# ---------------------------------------------------------------------------------------------
cleanup() {
  local status=$?
  set +e
  # Newest first, one at a time: the service and the peer stop while Redis still answers them.
  local i pid deadline
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -TERM "$pid" 2>/dev/null
    deadline=$((SECONDS + STOP_TIMEOUT_S))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      echo "bench: ${NAMES[i]} (pid $pid) did not stop in ${STOP_TIMEOUT_S}s: killing it" >&2
      kill -KILL "$pid" 2>/dev/null
    fi
    wait "$pid" 2>/dev/null
  done
  if ((status != 0)); then
    echo "bench: failed (exit $status); logs are in $RUN_DIR" >&2
  fi
  exit "$status"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# Start "$@" in the background from directory $2, output to $RUN_DIR/$1.log, and remember it.
# `exec` makes the recorded pid the server's own (not a wrapper shell's), so the trap reaches it.
start_bg() {
  local name=$1 dir=$2
  shift 2
  (cd "$dir" && exec "$@") >"$RUN_DIR/$name.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
}

# The last started process is still running, or its log is shown and the run stops.
alive_or_die() {
  local name=$1 pid=$2
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 30 "$RUN_DIR/$name.log" >&2 || true
    die "$name exited during start-up (log above, full log: $RUN_DIR/$name.log)"
  fi
}

# Poll an HTTP URL until it answers 200, for at most START_TIMEOUT_S.
wait_http() {
  local name=$1 pid=$2 url=$3 tries=$((START_TIMEOUT_S * 5))
  for ((n = 0; n < tries; n++)); do
    alive_or_die "$name" "$pid"
    if curl -fsS -o /dev/null --max-time 1 "$url" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  die "$name did not answer $url within ${START_TIMEOUT_S}s (log: $RUN_DIR/$name.log)"
}

# ---------------------------------------------------------------------------------------------
# Tools: wrk, redis-server and curl come from Debian's packages when missing (as root);
# otherwise the run stops with what to install.
# ---------------------------------------------------------------------------------------------
require_tool() {
  local tool=$1 package=$2
  command -v "$tool" >/dev/null 2>&1 && return 0
  if [ "$(id -u)" = "0" ] && command -v apt-get >/dev/null 2>&1; then
    log "$tool is missing: installing the Debian package $package"
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$package" >/dev/null
    command -v "$tool" >/dev/null 2>&1 || die "installing $package did not provide $tool"
  else
    die "the benchmark needs $tool: install it (Debian/Ubuntu: sudo apt-get install $package;" \
      "macOS: brew install $package) and run make bench again"
  fi
}

# N distinct free TCP ports on 127.0.0.1 (all held open together, so no two are the same).
free_ports() {
  "$PY" - "$1" <<'EOF'
import socket, sys
socks = [socket.socket() for _ in range(int(sys.argv[1]))]
for s in socks:
    s.bind(("127.0.0.1", 0))
print(" ".join(str(s.getsockname()[1]) for s in socks))
for s in socks:
    s.close()
EOF
}

json_field() { "$PY" -c 'import json, sys; print(json.load(sys.stdin)[sys.argv[1]])' "$1"; }

# ---------------------------------------------------------------------------------------------
# The servers
# ---------------------------------------------------------------------------------------------
start_redis() {
  # No persistence: the run's data is throwaway, and a save in the middle would skew a scenario.
  start_bg redis "$RUN_DIR" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir "$RUN_DIR"
  local pid=${PIDS[-1]}
  for ((n = 0; n < START_TIMEOUT_S * 5; n++)); do
    alive_or_die redis "$pid"
    if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; then return; fi
    sleep 0.2
  done
  die "redis-server did not answer within ${START_TIMEOUT_S}s"
}

# The environment of the service (also used to ask its Settings what it will run on).
# RATE_LIMIT: the limiter still counts every request in Redis, but never refuses one.
# DEFAULT_DAILY_LIMIT: thousands of small payments by one user must not hit the daily limit.
# ACCESS_TOKEN_TTL_SECONDS: the seeded token outlives the whole run.
set_service_env() {
  SERVICE_ENV=(
    REDIS_URL="$REDIS_URL"
    RATE_LIMIT="100000000/15minutes"
    DEFAULT_DAILY_LIMIT=1000000000000
    ACCESS_TOKEN_TTL_SECONDS=3600
    BOOTSTRAP_ADMIN_EMAIL="$ADMIN_EMAIL"
    BOOTSTRAP_ADMIN_PASSWORD="$ADMIN_PASSWORD"
  )
}

# Which MongoDB and gateway the service will use, as its own settings resolve them (.env too).
describe_stores() {
  (cd "$ROOT" && env "${SERVICE_ENV[@]}" "$PY" -c '
from payments_api.config.database import describe_uri
from payments_api.config.settings import Settings
s = Settings()
print("mongodb=" + (describe_uri(s.mongodb_uri) if s.mongodb_uri
      else "in-memory stand-in (mongomock; set MONGODB_URI for a real server)"))
print("gateway=" + (s.gateway_url or "in-process sandbox (set GATEWAY_URL for a real one)"))
')
}

# Whether the service runs its worker loops (event delivery, reconciliation) in the same
# process, as its start-up line says: on the in-memory stand-ins they share its CPU.
worker_mode() {
  local mode
  mode=$(grep -m1 -o '"worker":"[^"]*"' "$RUN_DIR/service.log" | cut -d'"' -f4) || true
  echo "${mode:-not reported}"
}

start_service() {
  # One process (no --workers): compared against one node process.
  start_bg service "$ROOT" env "${SERVICE_ENV[@]}" "$ROOT/.venv/bin/payments-api" serve \
    --host 127.0.0.1 --port "$SERVICE_PORT"
  wait_http service "${PIDS[-1]}" "$SERVICE_URL/health"
}

# A copy of the peer under bench/.peer/ (git-ignored), with `npm ci` run once; done again only
# when the peer's sources change. The shared copy is read-only, hence the copy.
prepare_peer() {
  local stamp
  stamp=$(cat "$PEER_SRC"/package.json "$PEER_SRC"/package-lock.json "$PEER_SRC"/*.js \
    | sha256sum | cut -d' ' -f1)
  if [ -f "$PEER_DIR/.bench-stamp" ] && [ "$(cat "$PEER_DIR/.bench-stamp")" = "$stamp" ] \
    && [ -d "$PEER_DIR/node_modules" ]; then
    return 0
  fi
  log "preparing the Express peer in ${PEER_DIR#"$ROOT"/} (npm ci, once)"
  rm -rf "$PEER_DIR"
  mkdir -p "$(dirname "$PEER_DIR")"
  cp -r "$PEER_SRC" "$PEER_DIR"
  chmod -R u+w "$PEER_DIR"
  if ! (cd "$PEER_DIR" && npm ci --no-audit --no-fund --loglevel=error) \
    >"$RUN_DIR/npm-ci.log" 2>&1; then
    tail -n 20 "$RUN_DIR/npm-ci.log" >&2
    rm -rf "$PEER_DIR"
    return 1
  fi
  echo "$stamp" >"$PEER_DIR/.bench-stamp"
}

start_peer() {
  # fast-jwt: the strong peer (see its README); the limiter counts but never refuses.
  start_bg peer "$PEER_DIR" env JWT_LIB=fast-jwt RATE_LIMIT_MAX=100000000 PORT="$PEER_PORT" \
    REDIS_URL="$REDIS_URL" JWT_SECRET="$PEER_JWT_SECRET" node app.js
  wait_http peer "${PIDS[-1]}" "$PEER_URL/health"
}

# ---------------------------------------------------------------------------------------------
# Measuring
# ---------------------------------------------------------------------------------------------

# One request as wrk will send it, so a scenario that answers the wrong status (a 401 from a
# bad token, say) stops the run instead of being measured.
expect_status() {
  local want=$1
  shift
  local got
  got=$(curl -sS -o "$RUN_DIR/last-response.json" -w '%{http_code}' --max-time 10 "$@")
  if [ "$got" != "$want" ]; then
    cat "$RUN_DIR/last-response.json" >&2 || true
    die "expected $want, got $got from: curl $*"
  fi
}

# bench SERVER SCENARIO REQUEST [wrk options...] URL: a warm-up (not kept), then the measured
# run, whose output is listed in the manifest for report.py.
bench() {
  local server=$1 scenario=$2 request=$3
  shift 3
  local slug out
  slug=$(printf '%s-%s' "$server" "$scenario" | tr -c 'a-zA-Z0-9\n' '-')
  out="$RUN_DIR/wrk-$slug.txt"
  log "$server: $scenario ($request)"
  local common=(-t"$WRK_THREADS" -c"$WRK_CONNECTIONS" --timeout "$WRK_TIMEOUT")
  wrk "${common[@]}" -d"$WARMUP_DURATION" "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  wrk "${common[@]}" -d"$WRK_DURATION" --latency "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed"; }
  grep -E 'Requests/sec|^ +(50|99)%|Non-2xx|Socket errors' "$out" | sed 's/^/    /'
  printf '%s\t%s\t%s\t%s\n' "$server" "$scenario" "$request" "$out" >>"$MANIFEST"
}

# ---------------------------------------------------------------------------------------------
main() {
  cd "$ROOT"
  [ -x "$PY" ] || die "no virtualenv at .venv: run it as 'make bench'"
  require_tool wrk wrk
  require_tool redis-server redis-server
  require_tool redis-cli redis-tools
  require_tool curl curl

  # wrk, the servers and Redis share this machine's cores: anything else busy skews the run.
  local load_before
  load_before=$(cut -d' ' -f1-3 /proc/loadavg)
  log "load average before the run: $load_before ($(nproc) cores)"
  if awk -v avg="${load_before%% *}" -v cores="$(nproc)" 'BEGIN { exit !(avg > cores / 2) }'; then
    log "warning: the machine is busy; these numbers will be low and noisy"
  fi

  rm -rf "$RUN_DIR"
  mkdir -p "$RUN_DIR" "$RESULTS_DIR"
  MANIFEST="$RUN_DIR/scenarios.tsv"
  : >"$MANIFEST"

  read -r REDIS_PORT SERVICE_PORT PEER_PORT <<<"$(free_ports 3)"
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  SERVICE_URL="http://127.0.0.1:$SERVICE_PORT"
  PEER_URL="http://127.0.0.1:$PEER_PORT"
  set_service_env

  log "redis-server on 127.0.0.1:$REDIS_PORT (private to this run, no persistence)"
  start_redis

  local stores mongodb gateway
  stores=$(describe_stores)
  mongodb=$(sed -n 's/^mongodb=//p' <<<"$stores")
  gateway=$(sed -n 's/^gateway=//p' <<<"$stores")
  log "payments-api on $SERVICE_URL, one process; MongoDB: $mongodb; gateway: $gateway"
  start_service

  log "seeding the service through its API (a user, a merchant, 50 payments)"
  "$PY" "$BENCH/seed.py" --base-url "$SERVICE_URL" --admin-email "$ADMIN_EMAIL" \
    --admin-password "$ADMIN_PASSWORD" --payments 50 >"$RUN_DIR/seed.json"
  local token payment_id merchant_id
  token=$(json_field token <"$RUN_DIR/seed.json")
  payment_id=$(json_field paymentId <"$RUN_DIR/seed.json")
  merchant_id=$(json_field merchantId <"$RUN_DIR/seed.json")
  echo "    token: $token"
  echo "    paymentId: $payment_id"

  # The peer, when node/npm are here (its failure to install skips it, not the whole run).
  local peer="skipped"
  local peer_token="" peer_payment_id=""
  if [ "${SKIP_PEER:-}" = "1" ]; then
    log "SKIP_PEER=1: the Express peer is not measured"
  elif ! command -v node >/dev/null 2>&1 || ! command -v npm >/dev/null 2>&1; then
    log "node/npm not found: the Express peer is not measured"
  elif [ ! -f "$PEER_SRC/app.js" ]; then
    log "no peer at $PEER_SRC: the Express peer is not measured"
  elif ! prepare_peer; then
    log "npm ci failed (log above): the Express peer is not measured"
  else
    (cd "$PEER_DIR" && REDIS_URL="$REDIS_URL" JWT_SECRET="$PEER_JWT_SECRET" node seed.js 100) \
      >"$RUN_DIR/peer-seed.json"
    peer_token=$(json_field token <"$RUN_DIR/peer-seed.json")
    peer_payment_id=$("$PY" -c 'import json, sys; print(json.load(sys.stdin)["paymentIds"][0])' \
      <"$RUN_DIR/peer-seed.json")
    log "Express peer on $PEER_URL, one node process (JWT_LIB=fast-jwt), 100 cached payments"
    start_peer
    peer="express-seed, node $(node --version), JWT_LIB=fast-jwt"
  fi

  # Comparable pairs run back to back, so that a noisy machine skews both alike.
  local auth="Authorization: Bearer $token"
  expect_status 200 "$SERVICE_URL/health"
  bench service "GET /health" "GET /health" "$SERVICE_URL/health"
  if [ -n "$peer_token" ]; then
    expect_status 200 "$PEER_URL/health"
    bench peer "GET /health" "GET /health" "$PEER_URL/health"
  fi

  # The read scenario is meant to be served from the cache (entries live 60 s, and any read
  # puts a missing one back): after this read, the entry must be there.
  expect_status 200 -H "$auth" "$SERVICE_URL/api/v1/payments/$payment_id"
  [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" exists "payment:details:$payment_id")" = "1" ] \
    || die "payment:details:$payment_id is not in Redis after a read: not a cached read"
  bench service "cached read" "GET /api/v1/payments/:id" \
    -H "$auth" "$SERVICE_URL/api/v1/payments/$payment_id"
  if [ -n "$peer_token" ]; then
    expect_status 200 -H "Authorization: Bearer $peer_token" \
      "$PEER_URL/api/v1/payments/$peer_payment_id"
    bench peer "cached read" "GET /api/v1/payments/:id" \
      -H "Authorization: Bearer $peer_token" "$PEER_URL/api/v1/payments/$peer_payment_id"
  fi

  # Before the create scenario, which adds thousands of payments to this user's history.
  expect_status 200 -H "$auth" "$SERVICE_URL/api/v1/payments?limit=20"
  bench service "history page" "GET /api/v1/payments?limit=20" \
    -H "$auth" "$SERVICE_URL/api/v1/payments?limit=20"

  expect_status 201 -X POST -H "$auth" -H "Content-Type: application/json" \
    -H "Idempotency-Key: bench-check-$(date +%s%N)" \
    -d "{\"amount\":1000,\"merchantId\":\"$merchant_id\",\"paymentMethod\":\"card\",\"productName\":\"Bench latte\"}" \
    "$SERVICE_URL/api/v1/payments"
  export BENCH_TOKEN="$token" BENCH_MERCHANT_ID="$merchant_id"   # read by create.lua
  bench service "create (unique key)" "POST /api/v1/payments" \
    -s "$BENCH/create.lua" "$SERVICE_URL/api/v1/payments"

  # The results, as a table here and as .txt/.json in bench/results/.
  local stamp commit
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  if [ -n "$(git -C "$ROOT" status --porcelain -- src 2>/dev/null)" ]; then
    commit="$commit (src/ has uncommitted changes)"
  fi
  echo
  "$PY" "$BENCH/report.py" --manifest "$MANIFEST" \
    --json "$RESULTS_DIR/$stamp.json" --txt "$RESULTS_DIR/$stamp.txt" \
    --meta "timestamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --meta "commit=$commit" \
    --meta "machine=$(nproc) cores, $(uname -sr)" \
    --meta "wrk=-t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION --timeout $WRK_TIMEOUT --latency, after a $WARMUP_DURATION warm-up, on the same machine" \
    --meta "load average=$load_before before, $(cut -d' ' -f1-3 /proc/loadavg) after" \
    --meta "service=payments-api, one process ($("$PY" -c 'import platform; print("Python " + platform.python_version())'))" \
    --meta "service log=to a file, LOG_LEVEL=info" \
    --meta "mongodb=$mongodb" \
    --meta "gateway=$gateway" \
    --meta "service worker loops=$(worker_mode)" \
    --meta "redis=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), private instance, no persistence" \
    --meta "peer=$peer" \
    --meta "differences=the peer's rate limiter counts in its own memory, the service's in Redis (one more round trip per /api request); the peer reads no database on a cache miss and has no history or create path"
  echo
  log "results: bench/results/$stamp.txt and .json (logs of this run: bench/.run/)"
}

main "$@"
