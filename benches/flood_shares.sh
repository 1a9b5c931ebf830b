#!/usr/bin/env bash
# Where a login flood's CPU goes when readers share the cores: the same
# flood as `load.sh flood` (16 clients logging in as johndoe, wrk, our
# release binary on both cores at default settings) against readers of
# GET /users/me in several shapes, one after another, each row its own
# server:
#
#   benches/flood_shares.sh [SECONDS]   (default 8)
#
# Rows: no readers; 1 reader connection; 8 (the issue's flood); 8 with
# --login-failures-per-user 0; 8 with --workers 1; 8 with our two runtime
# workers reniced to +10 and to +19 (the hashing threads left at 0: they
# are told apart as the threads that did the warm-up's hashes). Prints
# logins/s and the readers' p99 for each: the evidence behind the login
# flood section of docs/benchmarks.md. Needs wrk and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-8}
command -v wrk >/dev/null || { echo "flood_shares.sh: wrk is missing (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet --bin password-bearer
source benches/servers.sh
head -c 48 /dev/urandom | base64 >"$work/key"
cat >"$work/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "username=johndoe&password=secret"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
PIN=0,1
login() { curl -sf -d 'username=johndoe&password=secret' "http://$1/token"; }

# row LABEL READERS NICE [FLAGS...]
row() {
    local label=$1 readers=$2 nice=$3 addr pid token t ticks logins p99=-
    shift 3
    addr=$(start "row" target/release/password-bearer --port 0 --secret-key-file "$work/key" --no-login-log "$@")
    pid=$(cat "$work/row.pid")
    token=$(login "$addr" | sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    # Warm-up: logins four at a time, so the hashing threads exist (and
    # have done all the CPU so far) before any worker is reniced.
    for _ in 1 2 3; do
        for _ in 1 2 3 4; do login "$addr" >/dev/null & done
        wait
    done
    if [ "$nice" != 0 ]; then
        for t in /proc/"$pid"/task/*; do
            ticks=$(awk '{print $14 + $15}' "$t/stat")
            [ "$(cat "$t/comm")" = tokio-rt-worker ] && [ "$ticks" -lt 3 ] && renice -n "$nice" -p "${t##*/}" >/dev/null
        done
    fi
    wrk -t1 -c16 -d"${seconds}s" -s "$work/login.lua" "http://$addr/token" >"$work/flood.txt" &
    local flooder=$!
    if [ "$readers" -gt 0 ]; then
        wrk -t1 -c"$readers" -d"${seconds}s" --latency -H "Authorization: Bearer $token" "http://$addr/users/me" >"$work/readers.txt"
        p99=$(awk '$1 == "99%" {print $2}' "$work/readers.txt")
    fi
    wait "$flooder"
    logins=$(awk '/Requests\/sec/ {print $2}' "$work/flood.txt")
    printf '%-48s %10s %12s\n' "$label" "$logins" "$p99"
    kill "$pid"
    wait "$pid" 2>/dev/null || true
    rm -f "$work/row.pid"
}

printf '%-48s %10s %12s\n' "readers" "logins/s" "readers' p99"
row "none" 0 0
row "1 connection" 1 0
row "8 connections" 8 0
row "8, --login-failures-per-user 0" 8 0 --login-failures-per-user 0
row "8, --workers 1" 8 0 --workers 1
row "8, runtime workers at nice +10" 8 10
row "8, runtime workers at nice +19" 8 19
