#!/usr/bin/env bash
# Soak test of the release binary: a mixed load for a while, watching for
# 5xx answers and for memory that keeps growing.
#
#   benches/soak.sh [SECONDS]    default 60, at least 10
#
# Four wrk clients run at once against one server: logins (POST /token with
# johndoe's password; few connections, each costs an argon2id hash), GET
# /users/me with a valid token, GET /users/me with a bad token, and GET /nope
# (404). Every 5 s it prints the server's resident memory (VmRSS) and peak
# (VmHWM) from /proc/PID/status. The run fails if any answer was a 5xx, if
# the server died, or if its RSS at the end is over 1.5 times its RSS after
# the first 5 s (the warm-up: argon2's per-core memory, connection buffers
# and allocator pools are in place by then, so later growth is a leak).
# Needs wrk (Debian: apt-get install wrk) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

seconds=${1:-60}
login_connections=${LOGIN_CONNECTIONS:-2}
case $seconds in
'' | *[!0-9]*) echo "soak.sh: SECONDS must be a whole number, not '$seconds'" >&2; exit 2 ;;
esac
[ "$seconds" -ge 10 ] || { echo "soak.sh: SECONDS must be at least 10 (5 s of warm-up, then the soak)" >&2; exit 2; }

command -v wrk >/dev/null || { echo "soak.sh: wrk is missing (apt-get install wrk)" >&2; exit 2; }
command -v curl >/dev/null || { echo "soak.sh: curl is missing (apt-get install curl)" >&2; exit 2; }
cargo build --release --quiet --bin password-bearer

source benches/servers.sh

status_kib() { awk -v key="$2:" '$1 == key {print $2}' "/proc/$1/status"; }

head -c 48 /dev/urandom | base64 >"$work/key"
server=$(start server target/release/password-bearer --port 0 --secret-key-file "$work/key")
pid=$(cat "$work/server.pid")
token=$(curl -s -X POST -d 'username=johndoe&password=secret' "http://$server/token" |
    sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
[ -n "$token" ] || { echo "soak.sh: cannot log in to $server" >&2; exit 1; }

# Per-thread status counts, summed in done(): wrk's own "Non-2xx" line
# cannot tell a 4xx (expected here) from a 5xx.
cat >"$work/count.lua" <<'LUA'
local threads = {}

function setup(thread)
    table.insert(threads, thread)
end

function init(args)
    s2, s3, s4, s5, unexpected = 0, 0, 0, 0, 0
end

function response(status, headers, body)
    if status >= 500 then s5 = s5 + 1
    elseif status >= 400 then s4 = s4 + 1
    elseif status >= 300 then s3 = s3 + 1
    elseif status >= 200 then s2 = s2 + 1 end
    if status ~= expected then unexpected = unexpected + 1 end
end

function done(summary, latency, requests)
    local t = {s2 = 0, s3 = 0, s4 = 0, s5 = 0, unexpected = 0}
    for _, thread in ipairs(threads) do
        for k in pairs(t) do t[k] = t[k] + thread:get(k) end
    end
    local e = summary.errors
    io.write(string.format(
        "soak-result %s requests=%d rps=%.0f 2xx=%d 3xx=%d 4xx=%d 5xx=%d unexpected=%d socket_errors=%d p99_ms=%.1f\n",
        label, summary.requests, summary.requests / (summary.duration / 1e6),
        t.s2, t.s3, t.s4, t.s5, t.unexpected,
        e.connect + e.read + e.write + e.timeout, latency:percentile(99) / 1000))
end
LUA
script() { # NAME EXPECTED-STATUS [LUA...]: one endpoint's script
    local name=$1 expected=$2; shift 2
    { printf 'label = "%s"\nexpected = %s\n' "$name" "$expected"; printf '%s\n' "$@"; cat "$work/count.lua"; } >"$work/$name.lua"
}
script login 200 'wrk.method = "POST"' 'wrk.body = "username=johndoe&password=secret"' \
    'wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"'
script me_valid 200 "wrk.headers[\"Authorization\"] = \"Bearer $token\""
script me_bad_token 401 'wrk.headers["Authorization"] = "Bearer eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiJqb2huZG9lIn0.bad"'
script not_found 404

echo "soak: ${seconds}s against $server (pid $pid): POST /token -c$login_connections, GET /users/me -c8 valid token, -c4 bad token, GET /nope -c4"
start_rss=$(status_kib "$pid" VmRSS)
echo "RSS at start: $start_rss KiB"
wrk_pids=()
run() { # NAME CONNECTIONS PATH
    wrk -t1 -c"$2" -d"${seconds}s" -s "$work/$1.lua" "http://$server$3" >"$work/$1.out" 2>&1 &
    wrk_pids+=($!)
}
run login "$login_connections" /token
run me_valid 8 /users/me
run me_bad_token 4 /users/me
run not_found 4 /nope

printf '%8s %12s %12s\n' elapsed 'VmRSS KiB' 'VmHWM KiB'
warm_rss=
for ((t = 5; t <= seconds; t += 5)); do
    sleep 5
    kill -0 "$pid" 2>/dev/null || { echo "soak.sh: the server died after ~${t}s: $(tail -5 "$work/server.err")" >&2; exit 1; }
    rss=$(status_kib "$pid" VmRSS)
    [ -n "$warm_rss" ] || warm_rss=$rss
    printf '%7ss %12s %12s\n' "$t" "$rss" "$(status_kib "$pid" VmHWM)"
done
for p in "${wrk_pids[@]}"; do
    wait "$p" || { echo "soak.sh: wrk failed: $(cat "$work"/*.out)" >&2; exit 1; }
done
kill -0 "$pid" 2>/dev/null || { echo "soak.sh: the server died: $(tail -5 "$work/server.err")" >&2; exit 1; }
end_rss=$(status_kib "$pid" VmRSS)
peak_rss=$(status_kib "$pid" VmHWM)

echo
printf '%-13s %9s %7s %9s %6s %6s %6s %11s %13s %8s\n' client requests req/s 2xx 3xx 4xx 5xx unexpected socket-errors 'p99 ms'
fivexx=0
for name in login me_valid me_bad_token not_found; do
    line=$(grep '^soak-result ' "$work/$name.out") || { echo "soak.sh: no result from $name: $(cat "$work/$name.out")" >&2; exit 1; }
    field() { echo "$line" | tr ' ' '\n' | sed -n "s/^$1=//p"; }
    printf '%-13s %9s %7s %9s %6s %6s %6s %11s %13s %8s\n' "$name" "$(field requests)" "$(field rps)" \
        "$(field 2xx)" "$(field 3xx)" "$(field 4xx)" "$(field 5xx)" "$(field unexpected)" \
        "$(field socket_errors)" "$(field p99_ms)"
    fivexx=$((fivexx + $(field 5xx)))
done
echo
echo "RSS: start $start_rss KiB, after warm-up $warm_rss KiB, end $end_rss KiB, peak (VmHWM) $peak_rss KiB"
echo "5xx responses: $fivexx"

status=0
if [ "$fivexx" -gt 0 ]; then
    echo "soak.sh: FAIL: $fivexx responses were 5xx" >&2
    status=1
fi
if [ $((end_rss * 2)) -gt $((warm_rss * 3)) ]; then
    echo "soak.sh: FAIL: RSS grew from $warm_rss KiB after warm-up to $end_rss KiB (over 1.5x)" >&2
    status=1
fi
[ "$status" -eq 0 ] && echo "soak: PASS"
exit "$status"
