#!/usr/bin/env bash
# `make bench`: requests/s and latency of payments-api, one process, measured with wrk on this
# machine, against three others started by the same run on the same work, so that the figures
# that matter are ratios measured minutes apart under the same conditions (issue 12):
#
#   peer          the Express design the service ports (../shared/peers/express-seed), when
#                 node/npm are here: the cached read and /health
#   raw-asgi      bench/references/raw_asgi.py, the floor of the cached read (no framework)
#   bare-fastapi  bench/references/bare_fastapi.py, FastAPI's /health with no middleware
#
# How it measures (a shared 2-core machine is noisy; this keeps the noise out of the ratios):
# - Pinning: every server (service, peer, both references) on core SERVER_CPU (0), redis-server
#   and wrk on core LOAD_CPU (1), so the server under test has a core to itself and the load
#   generator never competes with it. Without taskset, or on one core, it runs unpinned (with a
#   warning, and the results say so).
# - A warm-up of every server on each of its scenarios before the rounds (not kept), and a short
#   one (RUN_WARMUP_DURATION) before each measured run, on fresh connections like the run's.
# - ROUNDS (>= 3) interleaved rounds. A round measures the cached read on service, peer and
#   raw-asgi, then /health on service, peer and bare-fastapi. Odd rounds go in that order, even
#   rounds in the reverse one (raw-asgi, peer, service; bare-fastapi, peer, service), so a drift
#   of the machine during a round favours neither side of a pair over the rounds. Each round
#   gives one ratio per goal; the figure is the median of the per-round ratios.
# - Pinning keeps our own load off the server core, not the machine's other work: each run
#   records the share of the server core that other processes used meanwhile (/proc/stat less
#   the server's own ticks), and the report flags the runs others disturbed.
# - After the rounds, unpaired and once: the history page and the create on the service.
# - RSS: the service then serves a mix (bench/mix.lua: 85 % cached reads, 10 % /health, 4 %
#   history pages, 1 % creates) until the mix alone reaches RSS_REQUESTS requests, and its
#   VmRSS/VmHWM are read from /proc (the pid checked to be the service's python process).
# - Last, the create scenario (it adds hundreds of payments to the in-memory store).
#
# It starts its own redis-server on a free port (never the machine's 6379) and every server on
# free ports; seeds them; prints the per-round table, the medians and the ratio summary (goals,
# PASS/FAIL) and writes them to bench/results/<UTC timestamp>.{txt,json} (kept, committed).
# Whatever happens, everything it started is stopped (trap on EXIT). Logs of the run are in
# bench/.run/ (replaced by the next run).
#
# Knobs: ROUNDS (3, at least 3), WRK_THREADS (1), WRK_CONNECTIONS (64), WRK_DURATION (10s),
#        WARMUP_DURATION (5s, the warm-up before the rounds, per server and scenario),
#        RUN_WARMUP_DURATION (2s, before each measured run; 0s for none), WRK_TIMEOUT (30s),
#        RSS_REQUESTS (100000), MIX_DURATION (10s, one wrk run of the mix; repeated as needed),
#        SERVER_CPU (0), LOAD_CPU (1),
#        PEER_SRC (../shared/peers/express-seed), SKIP_PEER=1 to measure without the peer.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BENCH="$ROOT/bench"
PY="$ROOT/.venv/bin/python"
RUN_DIR="$BENCH/.run"
RESULTS_DIR="$BENCH/results"
PEER_SRC="${PEER_SRC:-$ROOT/../shared/peers/express-seed}"
PEER_DIR="$BENCH/.peer/express-seed"

ROUNDS="${ROUNDS:-3}"
WRK_THREADS="${WRK_THREADS:-1}"
WRK_CONNECTIONS="${WRK_CONNECTIONS:-64}"
WRK_DURATION="${WRK_DURATION:-10s}"
WARMUP_DURATION="${WARMUP_DURATION:-5s}"
RUN_WARMUP_DURATION="${RUN_WARMUP_DURATION:-2s}"
# wrk drops a response slower than its timeout (default 2 s) from the latency figures and counts
# it as a socket error: a generous one keeps a slow scenario's latency measured.
WRK_TIMEOUT="${WRK_TIMEOUT:-30s}"
RSS_REQUESTS="${RSS_REQUESTS:-100000}"
MIX_DURATION="${MIX_DURATION:-10s}"
# The mix is repeated until it reaches RSS_REQUESTS, but never more often than this.
MAX_MIX_RUNS=200
SERVER_CPU="${SERVER_CPU:-0}"
LOAD_CPU="${LOAD_CPU:-1}"

# Bounded waits: a server that is not up by then has failed (its log is shown).
START_TIMEOUT_S=30
STOP_TIMEOUT_S=15

# A throwaway admin for a throwaway instance: random per run, never written anywhere else.
ADMIN_EMAIL="bench-admin@example.com"
ADMIN_PASSWORD="bench-$(od -An -N12 -tx1 /dev/urandom | tr -d ' \n')"
PEER_JWT_SECRET="bench-secret"

PIDS=()   # every background process this script started, in start order
NAMES=()
declare -A PID_OF=()   # server name -> pid
PIN_SERVER=()   # the command prefix pinning a server (empty: unpinned)
PIN_LOAD=()     # the same for redis-server and wrk
PINNING="unpinned"
SERVICE_REQUESTS=0   # what wrk reports the service served, warm-ups included
LAST_REQUESTS=0      # requests of the last wrk run

log() { printf '==> %s\n' "$*"; }
warn() { printf '==> warning: %s\n' "$*" >&2; }
die() { printf 'bench: %s\n' "$*" >&2; exit 1; }

# ---------------------------------------------------------------------------------------------
# Cleanup: runs on every exit (normal, error, Ctrl-C). SIGTERM first so each server shuts down
# cleanly (uvicorn finishes in-flight requests), SIGKILL after STOP_TIMEOUT_S.
# ---------------------------------------------------------------------------------------------
cleanup() {
  local status=$?
  set +e
  # Newest first, one at a time: the servers stop while Redis (started first) still answers.
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
# `exec` makes the recorded pid the server's own (not a wrapper shell's), so the trap reaches it;
# taskset and env exec their command too, so with them in front the pid is still the server's.
start_bg() {
  local name=$1 dir=$2
  shift 2
  (cd "$dir" && exec "$@") >"$RUN_DIR/$name.log" 2>&1 &
  PIDS+=("$!")
  NAMES+=("$name")
  PID_OF[$name]=$!
}

# The process is still running, or its log is shown and the run stops.
alive_or_die() {
  local name=$1 pid=$2
  if ! kill -0 "$pid" 2>/dev/null; then
    tail -n 30 "$RUN_DIR/$name.log" >&2 || true
    die "$name (pid $pid) has exited (log above, full log: $RUN_DIR/$name.log)"
  fi
}

# Poll an HTTP URL until it answers 200, for at most START_TIMEOUT_S.
wait_http() {
  local name=$1 url=$2 tries=$((START_TIMEOUT_S * 5))
  local pid=${PID_OF[$name]}
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

# The knobs that must be numbers are numbers, and there are enough rounds for a median.
check_knobs() {
  if ! [[ "$ROUNDS" =~ ^[0-9]+$ ]] || ((ROUNDS < 3)); then
    die "ROUNDS=$ROUNDS: at least 3 rounds are needed for a median of the per-round ratios"
  fi
  [[ "$RSS_REQUESTS" =~ ^[0-9]+$ ]] || die "RSS_REQUESTS=$RSS_REQUESTS is not a number"
  [[ "$WRK_THREADS" =~ ^[0-9]+$ && "$WRK_CONNECTIONS" =~ ^[0-9]+$ ]] \
    || die "WRK_THREADS and WRK_CONNECTIONS must be numbers"
}

# Server on SERVER_CPU, load (redis-server, wrk) on LOAD_CPU — when taskset is here and both
# cores can be used by this process; otherwise unpinned, said loudly and in the results.
setup_pinning() {
  if ! command -v taskset >/dev/null 2>&1; then
    warn "taskset not found (util-linux): servers, Redis and wrk run unpinned and share the cores"
    PINNING="unpinned (no taskset)"
    return 0
  fi
  if (($(nproc) < 2)); then
    warn "only $(nproc) core available: servers, Redis and wrk run unpinned on it"
    PINNING="unpinned ($(nproc) core)"
    return 0
  fi
  if ! taskset -c "$SERVER_CPU" true 2>/dev/null || ! taskset -c "$LOAD_CPU" true 2>/dev/null; then
    warn "cannot pin to cores $SERVER_CPU and $LOAD_CPU (allowed: $(taskset -pc $$ | sed 's/.*: //')): running unpinned"
    PINNING="unpinned (cores $SERVER_CPU/$LOAD_CPU not allowed)"
    return 0
  fi
  PIN_SERVER=(taskset -c "$SERVER_CPU")
  PIN_LOAD=(taskset -c "$LOAD_CPU")
  PINNING="servers on core $SERVER_CPU; redis-server and wrk on core $LOAD_CPU"
}

# The cores a started process may run on, as the kernel has them (shows the pinning took).
affinity_of() {
  if command -v taskset >/dev/null 2>&1; then
    taskset -pc "$1" 2>/dev/null | sed 's/.*: //'
  else
    echo "?"
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
  start_bg redis "$RUN_DIR" "${PIN_LOAD[@]}" redis-server --bind 127.0.0.1 --port "$REDIS_PORT" \
    --save "" --appendonly no --dir "$RUN_DIR"
  local pid=${PID_OF[redis]}
  for ((n = 0; n < START_TIMEOUT_S * 5; n++)); do
    alive_or_die redis "$pid"
    if [ "$(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null)" = "PONG" ]; then return; fi
    sleep 0.2
  done
  die "redis-server did not answer within ${START_TIMEOUT_S}s"
}

rcli() { redis-cli -h 127.0.0.1 -p "$REDIS_PORT" "$@"; }

# The environment of the service (also used to ask its Settings what it will run on).
# RATE_LIMIT: the limiter still counts every request in Redis, but never refuses one.
# DEFAULT_DAILY_LIMIT: thousands of small payments by one user must not hit the daily limit.
# ACCESS_TOKEN_TTL_SECONDS: the seeded token outlives the whole run.
set_service_env() {
  SERVICE_ENV=(
    REDIS_URL="$REDIS_URL"
    RATE_LIMIT="100000000/15minutes"
    DEFAULT_DAILY_LIMIT=1000000000000
    ACCESS_TOKEN_TTL_SECONDS=7200
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
# process, as its start-up line says: on the in-memory stand-ins they share its CPU (and core).
worker_mode() {
  local mode
  mode=$(grep -m1 -o '"worker":"[^"]*"' "$RUN_DIR/service.log" | cut -d'"' -f4) || true
  echo "${mode:-not reported}"
}

start_service() {
  # One process (no --workers): compared against one node process and one-process references.
  start_bg service "$ROOT" "${PIN_SERVER[@]}" env "${SERVICE_ENV[@]}" \
    "$ROOT/.venv/bin/payments-api" serve --host 127.0.0.1 --port "$SERVICE_PORT"
  wait_http service "$SERVICE_URL/health"
}

start_references() {
  start_bg raw-asgi "$ROOT" "${PIN_SERVER[@]}" env REDIS_URL="$REDIS_URL" BENCH_READER_ID="$USER_ID" \
    "$PY" "$BENCH/references/raw_asgi.py" --port "$RAW_PORT"
  start_bg bare-fastapi "$ROOT" "${PIN_SERVER[@]}" \
    "$PY" "$BENCH/references/bare_fastapi.py" --port "$BARE_PORT"
  # raw-asgi answers only the payment path; any answer (a 404 here) means it is up.
  wait_http bare-fastapi "$BARE_URL/health"
  local n
  for ((n = 0; n < START_TIMEOUT_S * 5; n++)); do
    alive_or_die raw-asgi "${PID_OF[raw-asgi]}"
    if curl -sS -o /dev/null --max-time 1 "$RAW_URL/" 2>/dev/null; then return 0; fi
    sleep 0.2
  done
  die "raw-asgi did not answer within ${START_TIMEOUT_S}s (log: $RUN_DIR/raw-asgi.log)"
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
  start_bg peer "$PEER_DIR" "${PIN_SERVER[@]}" env JWT_LIB=fast-jwt RATE_LIMIT_MAX=100000000 \
    PORT="$PEER_PORT" REDIS_URL="$REDIS_URL" JWT_SECRET="$PEER_JWT_SECRET" node app.js
  wait_http peer "$PEER_URL/health"
}

# The peer when node/npm and its sources are here; sets PEER (a description, or "skipped")
# and PEER_TOKEN/PEER_PAYMENT_ID. A failure to install skips the peer, not the whole run.
maybe_start_peer() {
  PEER="skipped"
  PEER_TOKEN=""
  PEER_PAYMENT_ID=""
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
    PEER_TOKEN=$(json_field token <"$RUN_DIR/peer-seed.json")
    PEER_PAYMENT_ID=$("$PY" -c 'import json, sys; print(json.load(sys.stdin)["paymentIds"][0])' \
      <"$RUN_DIR/peer-seed.json")
    log "Express peer on $PEER_URL, one node process (JWT_LIB=fast-jwt), 100 cached payments"
    start_peer
    PEER="express-seed, node $(node --version), JWT_LIB=fast-jwt"
  fi
}

# The service's payment cache entry lives 60 s and a hit does not renew it: in the middle of
# the rounds it would expire, turning some of the service's reads into misses (a MongoDB read)
# and raw-asgi's, which reads the same entry, into 404s. Both scenarios are meant to be Redis
# hits (the peer's entries live an hour), so the entry is kept for the run.
pin_cache_entry() {
  local key="payment:details:{$USER_ID}:$PAYMENT_ID"  # the user's entry (services/payment_cache.py)
  [ "$(rcli exists "$key")" = "1" ] \
    || die "$key is not in Redis after a read: the cached read would not be cached"
  rcli persist "$key" >/dev/null
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

# REQ=(the request SERVER gets in SCENARIO, as curl/wrk arguments: headers, then the URL).
# Every server of a scenario gets the same request (the peer with its own token and payment).
request_of() {
  case "$1:$2" in
    service:cached) REQ=(-H "Authorization: Bearer $TOKEN" "$SERVICE_URL/api/v1/payments/$PAYMENT_ID") ;;
    raw-asgi:cached) REQ=(-H "Authorization: Bearer $TOKEN" "$RAW_URL/api/v1/payments/$PAYMENT_ID") ;;
    peer:cached) REQ=(-H "Authorization: Bearer $PEER_TOKEN" "$PEER_URL/api/v1/payments/$PEER_PAYMENT_ID") ;;
    service:health) REQ=("$SERVICE_URL/health") ;;
    peer:health) REQ=("$PEER_URL/health") ;;
    bare-fastapi:health) REQ=("$BARE_URL/health") ;;
    *) die "no request for $1 in scenario $2" ;;
  esac
}

scenario_label() {
  case "$1" in
    cached) echo "cached read" ;;
    health) echo "GET /health" ;;
  esac
}

scenario_request() {
  case "$1" in
    cached) echo "GET /api/v1/payments/:id" ;;
    health) echo "GET /health" ;;
  esac
}

# The servers of a scenario, in a round's forward order (the peer only when it runs).
servers_of() {
  local reference
  case "$1" in
    cached) reference=raw-asgi ;;
    health) reference=bare-fastapi ;;
  esac
  if [ -n "$PEER_TOKEN" ]; then echo "service peer $reference"; else echo "service $reference"; fi
}

# Every server answers each of its scenarios as expected before anything is measured; the
# cached read's body from raw-asgi is the service's, byte for byte (the same work).
check_scenarios() {
  local scenario server
  for scenario in cached health; do
    for server in $(servers_of "$scenario"); do
      request_of "$server" "$scenario"
      expect_status 200 "${REQ[@]}"
    done
  done
  for server in service raw-asgi; do
    request_of "$server" cached
    curl -sS --max-time 10 "${REQ[@]}" -D "$RUN_DIR/$server-cached.headers" \
      -o "$RUN_DIR/$server-cached.json"
  done
  cmp -s "$RUN_DIR/service-cached.json" "$RUN_DIR/raw-asgi-cached.json" \
    || die "raw-asgi's cached read differs from the service's (bench/.run/*-cached.json)"
  # Header lines after the status line (the blank line at the end is not one).
  echo "    cached read: the same body from service and raw-asgi; response headers:" \
    "service $(grep -c ':' "$RUN_DIR/service-cached.headers")," \
    "raw-asgi $(grep -c ':' "$RUN_DIR/raw-asgi-cached.headers")"
}

# run_wrk SERVER OUT DURATION [wrk options...] URL: one wrk run (pinned with the load), its
# output in OUT; sets LAST_REQUESTS and adds it to SERVICE_REQUESTS for the service.
run_wrk() {
  local server=$1 out=$2 duration=$3
  shift 3
  alive_or_die "$server" "${PID_OF[$server]}"
  "${PIN_LOAD[@]}" wrk -t"$WRK_THREADS" -c"$WRK_CONNECTIONS" --timeout "$WRK_TIMEOUT" \
    -d"$duration" --latency "$@" >"$out" 2>&1 || { cat "$out" >&2; die "wrk failed on $server"; }
  LAST_REQUESTS=$(awk '/ requests in / { print $1; exit }' "$out")
  [[ "$LAST_REQUESTS" =~ ^[0-9]+$ ]] || { cat "$out" >&2; die "no request count in $out"; }
  if [ "$server" = service ]; then SERVICE_REQUESTS=$((SERVICE_REQUESTS + LAST_REQUESTS)); fi
}

# A wrk run whose output is not kept (warm-ups); a duration of 0 means none.
warm_up() {
  local server=$1 duration=$2
  shift 2
  [[ "$duration" =~ ^0+[a-z]*$ ]] && return 0
  run_wrk "$server" "$RUN_DIR/warm-up.txt" "$duration" "$@"
}

# Ticks of the server core since boot, as "BUSY TOTAL" (user..steal in /proc/stat; steal
# counts as busy: time the hypervisor gave elsewhere is time the server did not get).
core_ticks() {
  awk -v cpu="cpu$SERVER_CPU" '$1 == cpu {
    total = 0; for (i = 2; i <= 9; i++) total += $i; print total - $5 - $6, total }' /proc/stat
}

# Ticks of CPU the process has used (all its threads, utime + stime; the fields after the
# parenthesised name, which may hold spaces).
process_ticks() { sed 's/.*) //' "/proc/$1/stat" | awk '{ print $12 + $13 }'; }

# The share of the server core that something other than the server under test used between
# two readings, in percent: other tenants of a shared machine show up here, so a round they
# disturbed can be told from one the server was slow in. "-" when the servers are not pinned.
others_share() {
  local busy0=$1 total0=$2 proc0=$3 busy1=$4 total1=$5 proc1=$6
  if ((${#PIN_SERVER[@]} == 0 || total1 <= total0)); then echo "-"; return; fi
  awk -v b="$((busy1 - busy0))" -v t="$((total1 - total0))" -v p="$((proc1 - proc0))" \
    'BEGIN { s = 100 * (b - p) / t; if (s < 0) s = 0; printf "%.0f\n", s }'
}

# measure SERVER SCENARIO REQUEST ROUND [wrk options...] URL: the short warm-up, then the
# measured run, listed in the manifest for report.py with the share of the server core others
# used during it.
measure() {
  local server=$1 scenario=$2 request=$3 round=$4
  shift 4
  local slug out pid busy0 total0 proc0 busy1 total1 proc1 others
  slug=$(printf '%s-%s-r%s' "$server" "$scenario" "$round" | tr -c 'a-zA-Z0-9\n' '-')
  out="$RUN_DIR/wrk-$slug.txt"
  pid=${PID_OF[$server]}
  log "round $round: $server: $scenario ($request)"
  warm_up "$server" "$RUN_WARMUP_DURATION" "$@"
  read -r busy0 total0 <<<"$(core_ticks)"
  proc0=$(process_ticks "$pid")
  run_wrk "$server" "$out" "$WRK_DURATION" "$@"
  read -r busy1 total1 <<<"$(core_ticks)"
  proc1=$(process_ticks "$pid")
  others=$(others_share "$busy0" "$total0" "$proc0" "$busy1" "$total1" "$proc1")
  grep -E 'Requests/sec|^ +(50|99)%|Non-2xx|Socket errors' "$out" | sed 's/^/    /'
  echo "    core $SERVER_CPU used by others: $others%"
  printf '%s\t%s\t%s\t%s\t%s\t%s\n' "$server" "$scenario" "$request" "$round" "$out" "$others" \
    >>"$MANIFEST"
}

# Every server once on each of its scenarios, before anything is kept.
warm_up_all() {
  local scenario server
  for scenario in cached health; do
    for server in $(servers_of "$scenario"); do
      log "warm-up: $server: $(scenario_label "$scenario") ($WARMUP_DURATION, not kept)"
      request_of "$server" "$scenario"
      warm_up "$server" "$WARMUP_DURATION" "${REQ[@]}"
    done
  done
}

# The rounds: odd ones in the forward order of servers_of, even ones reversed (see the top).
run_rounds() {
  local round scenario server order
  for ((round = 1; round <= ROUNDS; round++)); do
    for scenario in cached health; do
      read -r -a order <<<"$(servers_of "$scenario")"
      if ((round % 2 == 0)); then
        read -r -a order <<<"$(printf '%s\n' "${order[@]}" | tac | tr '\n' ' ')"
      fi
      for server in "${order[@]}"; do
        request_of "$server" "$scenario"
        if [ "$scenario" = cached ] && [ "$server" != peer ]; then pin_cache_entry; fi
        measure "$server" "$(scenario_label "$scenario")" "$(scenario_request "$scenario")" \
          "$round" "${REQ[@]}"
      done
    done
  done
}

history_scenario() {
  expect_status 200 -H "Authorization: Bearer $TOKEN" "$SERVICE_URL/api/v1/payments?limit=20"
  measure service "history page" "GET /api/v1/payments?limit=20" - \
    -H "Authorization: Bearer $TOKEN" "$SERVICE_URL/api/v1/payments?limit=20"
}

create_scenario() {
  expect_status 201 -X POST -H "Authorization: Bearer $TOKEN" -H "Content-Type: application/json" \
    -H "Idempotency-Key: bench-check-$(date +%s%N)" \
    -d "{\"amount\":1000,\"merchantId\":\"$MERCHANT_ID\",\"paymentMethod\":\"card\",\"productName\":\"Bench latte\"}" \
    "$SERVICE_URL/api/v1/payments"
  measure service "create (unique key)" "POST /api/v1/payments" - \
    -s "$BENCH/create.lua" "$SERVICE_URL/api/v1/payments"
}

# The service process's own pid, checked: RSS read from anything else would be meaningless.
service_pid() {
  local pid=${PID_OF[service]} cmdline
  cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")
  case "$cmdline" in
    *python*payments-api\ serve*) echo "$pid" ;;
    *) die "pid $pid is not the service's python process: $cmdline" ;;
  esac
}

# VmRSS and VmHWM (peak) of the service process now, in kB, as "RSS HWM".
service_memory() {
  local pid
  pid=$(service_pid)
  awk '/^VmRSS:/ { rss = $2 } /^VmHWM:/ { hwm = $2 } END { print rss, hwm }' "/proc/$pid/status"
}

# One line of RSS_FILE for report.py: the service's memory at a named point of the run, so a
# peak (VmHWM) above the final figure can be placed.
memory_snapshot() {
  local rss hwm
  read -r rss hwm <<<"$(service_memory)"
  echo "snapshot=$1 $rss $hwm" >>"$RSS_FILE"
}

# The mix (bench/mix.lua) on the service, in MIX_DURATION runs, until the mix alone has sent
# RSS_REQUESTS requests (bounded by MAX_MIX_RUNS); then VmRSS and VmHWM of the service process.
# Writes RSS_FILE (key=value lines) and lists the mix's runs in MIX_MANIFEST.
rss_phase() {
  local pid sent=0 runs=0 out
  pid=$(service_pid)
  pin_cache_entry
  log "RSS: the mix on the service until it has sent $RSS_REQUESTS requests ($MIX_DURATION runs)"
  while ((sent < RSS_REQUESTS)); do
    ((runs < MAX_MIX_RUNS)) || die "the mix reached only $sent requests in $runs runs"
    runs=$((runs + 1))
    out="$RUN_DIR/wrk-mix-$runs.txt"
    run_wrk service "$out" "$MIX_DURATION" -s "$BENCH/mix.lua" "$SERVICE_URL"
    ((LAST_REQUESTS > 0)) || die "a run of the mix served no request ($out)"
    sent=$((sent + LAST_REQUESTS))
    printf 'service\tmix\tmix\t%s\t%s\n' "$runs" "$out" >>"$MIX_MANIFEST"
    echo "    run $runs: $LAST_REQUESTS requests ($sent of $RSS_REQUESTS)"
  done
  alive_or_die service "$pid"
  local rss_kb hwm_kb
  read -r rss_kb hwm_kb <<<"$(service_memory)"
  echo "snapshot=after the mix $rss_kb $hwm_kb" >>"$RSS_FILE"
  {
    echo "pid=$pid"
    echo "cmdline=$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    echo "vm_rss_kb=$rss_kb"
    echo "vm_hwm_kb=$hwm_kb"
    echo "mix_requests=$sent"
    echo "mix_runs=$runs"
    echo "service_requests=$SERVICE_REQUESTS"
  } >>"$RSS_FILE"
  echo "    VmRSS $rss_kb kB, VmHWM $hwm_kb kB (pid $pid) after $sent requests of the mix," \
    "$SERVICE_REQUESTS served since start"
}

# The table and the ratio summary, printed and written to bench/results/.
report() {
  local stamp commit changes
  stamp=$(date -u +%Y%m%dT%H%M%SZ)
  commit=$(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)
  # The results files themselves are not a change of what was measured.
  changes=$(git -C "$ROOT" status --porcelain -- src bench 2>/dev/null | grep -v 'bench/results/' || true)
  if [ -n "$changes" ]; then
    commit="$commit (with uncommitted changes in src/ or bench/)"
  fi
  echo
  "$PY" "$BENCH/report.py" --manifest "$MANIFEST" --mix-manifest "$MIX_MANIFEST" \
    --rss "$RSS_FILE" \
    --json "$RESULTS_DIR/$stamp.json" --txt "$RESULTS_DIR/$stamp.txt" \
    --meta "timestamp=$(date -u +%Y-%m-%dT%H:%M:%SZ)" \
    --meta "commit=$commit" \
    --meta "machine=$(nproc) cores, $(uname -sr)" \
    --meta "pinning=$PINNING (affinity seen: service $(affinity_of "${PID_OF[service]}"), redis $(affinity_of "${PID_OF[redis]}"))" \
    --meta "rounds=$ROUNDS, interleaved: odd rounds service, peer, reference; even rounds reference, peer, service; figure = median of the per-round ratios" \
    --meta "wrk=-t$WRK_THREADS -c$WRK_CONNECTIONS -d$WRK_DURATION --timeout $WRK_TIMEOUT --latency, after a $RUN_WARMUP_DURATION warm-up each; a $WARMUP_DURATION warm-up of every server and scenario before the rounds" \
    --meta "load average=$LOAD_BEFORE before, $(cut -d' ' -f1-3 /proc/loadavg) after" \
    --meta "service=payments-api, one process ($("$PY" -c 'import platform; print("Python " + platform.python_version())')), uvicorn + uvloop + httptools" \
    --meta "service log=to a file, LOG_LEVEL=info" \
    --meta "mongodb=$MONGODB" \
    --meta "gateway=$GATEWAY" \
    --meta "service worker loops=$(worker_mode)" \
    --meta "redis=$(redis-server --version | sed 's/.*v=\([^ ]*\).*/\1/'), private instance, no persistence; the cached read's entry kept for the run (PERSIST)" \
    --meta "peer=$PEER" \
    --meta "raw-asgi=bench/references/raw_asgi.py: bearer header read (not verified), one Redis GET, one JSON log line, the service's headers; same request as the service" \
    --meta "bare-fastapi=bench/references/bare_fastapi.py: one /health route, no middleware" \
    --meta "rss mix=bench/mix.lua: 85% cached reads, 10% /health, 4% history pages (limit=20), 1% creates; the in-memory MongoDB stand-in keeps every payment created, so creates grow the process's data: they are kept to 1%" \
    --meta "differences=the peer's rate limiter counts in its own memory, the service's in Redis (in the same round trip as the cache read); the peer reads no database on a cache miss and has no history or create path"
  echo
  log "results: bench/results/$stamp.txt and .json (logs of this run: bench/.run/)"
}

# ---------------------------------------------------------------------------------------------
main() {
  cd "$ROOT"
  [ -x "$PY" ] || die "no virtualenv at .venv: run it as 'make bench'"
  check_knobs
  require_tool wrk wrk
  require_tool redis-server redis-server
  require_tool redis-cli redis-tools
  require_tool curl curl
  setup_pinning

  # wrk, the servers and Redis share this machine's cores: anything else busy skews the run.
  LOAD_BEFORE=$(cut -d' ' -f1-3 /proc/loadavg)
  log "load average before the run: $LOAD_BEFORE ($(nproc) cores); $PINNING"
  if awk -v avg="${LOAD_BEFORE%% *}" -v cores="$(nproc)" 'BEGIN { exit !(avg > cores / 2) }'; then
    warn "the machine is busy; these numbers will be low and noisy"
  fi

  rm -rf "$RUN_DIR"
  mkdir -p "$RUN_DIR" "$RESULTS_DIR"
  MANIFEST="$RUN_DIR/scenarios.tsv"
  MIX_MANIFEST="$RUN_DIR/mix.tsv"
  RSS_FILE="$RUN_DIR/rss.txt"
  : >"$MANIFEST"
  : >"$MIX_MANIFEST"
  : >"$RSS_FILE"

  read -r REDIS_PORT SERVICE_PORT PEER_PORT RAW_PORT BARE_PORT <<<"$(free_ports 5)"
  REDIS_URL="redis://127.0.0.1:$REDIS_PORT/0"
  SERVICE_URL="http://127.0.0.1:$SERVICE_PORT"
  PEER_URL="http://127.0.0.1:$PEER_PORT"
  RAW_URL="http://127.0.0.1:$RAW_PORT"
  BARE_URL="http://127.0.0.1:$BARE_PORT"
  set_service_env

  log "redis-server on 127.0.0.1:$REDIS_PORT (private to this run, no persistence)"
  start_redis

  local stores
  stores=$(describe_stores)
  MONGODB=$(sed -n 's/^mongodb=//p' <<<"$stores")
  GATEWAY=$(sed -n 's/^gateway=//p' <<<"$stores")
  log "payments-api on $SERVICE_URL, one process; MongoDB: $MONGODB; gateway: $GATEWAY"
  start_service
  memory_snapshot "after start"

  log "seeding the service through its API (a user, a merchant, 50 payments)"
  "$PY" "$BENCH/seed.py" --base-url "$SERVICE_URL" --admin-email "$ADMIN_EMAIL" \
    --admin-password "$ADMIN_PASSWORD" --payments 50 >"$RUN_DIR/seed.json"
  TOKEN=$(json_field token <"$RUN_DIR/seed.json")
  PAYMENT_ID=$(json_field paymentId <"$RUN_DIR/seed.json")
  MERCHANT_ID=$(json_field merchantId <"$RUN_DIR/seed.json")
  USER_ID=$(json_field userId <"$RUN_DIR/seed.json")
  echo "    token: $TOKEN"
  echo "    paymentId: $PAYMENT_ID"
  pin_cache_entry
  memory_snapshot "after the seed"
  # read by create.lua and mix.lua
  export BENCH_TOKEN="$TOKEN" BENCH_PAYMENT_ID="$PAYMENT_ID" BENCH_MERCHANT_ID="$MERCHANT_ID"

  log "references: raw ASGI on $RAW_URL, bare FastAPI on $BARE_URL (one process each)"
  start_references
  maybe_start_peer

  local name
  for name in "${NAMES[@]}"; do
    echo "    $name: pid ${PID_OF[$name]}, cores $(affinity_of "${PID_OF[$name]}")"
  done

  check_scenarios
  warm_up_all
  run_rounds
  memory_snapshot "after the rounds"
  # Unpaired, once. The history page before anything adds payments to this user's history.
  history_scenario
  memory_snapshot "after the history page"
  rss_phase
  create_scenario
  report
}

main "$@"
