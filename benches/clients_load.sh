#!/usr/bin/env bash
# Machine clients on one core (issue 22), run as `benches/load.sh clients
# [ROUNDS] [SECONDS]`: the client credentials grant (POST /token,
# client_secret_basic) and RFC 7662 introspection (POST /introspect of a
# user's access token), each beside GET /users/me in the same rounds, so
# that introspection's rate is given as a ratio of /users/me's.
#
# One release binary (the clients feature, sessions in memory) pinned to core
# 0 with one client allowed to introspect; wrk (-t1 -c32, keep-alive) on
# core 1. In each round the three requests run one after another against
# the same server; the medians of the rates, of the server's CPU per
# request, and of each round's introspect / users_me ratio are printed
# against the issue's targets (grants >= 10,000/s, introspection >= 0.5 x
# /users/me).
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-5}
seconds=${2:-5}
connections=${CONNECTIONS:-32}
command -v wrk >/dev/null || { echo "load.sh: wrk is missing (apt-get install wrk)" >&2; exit 2; }
cargo build --release --quiet --features clients --bin password-bearer
source benches/servers.sh
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
hz=$(getconf CLK_TCK)

head -c 48 /dev/urandom | base64 >"$work/key"
# A client made as an operator makes one: a generated secret, its stored
# form in the clients file.
target/release/password-bearer hash-client-secret --generate >"$work/secret" 2>/dev/null
secret=$(sed -n 1p "$work/secret")
cat >"$work/clients.json" <<JSON
{"bench": {"client_id": "bench", "secret_hash": "$(sed -n 2p "$work/secret")",
           "scopes": ["items:read"], "introspect": true}}
JSON
PIN=0
ours=$(start ours target/release/password-bearer --port 0 --secret-key-file "$work/key" \
    --no-login-log --max-connections-per-ip 0 --clients "$work/clients.json")
pid=$(cat "$work/ours.pid")
basic="Authorization: Basic $(printf 'bench:%s' "$secret" | base64 -w0)"
# A user's access token (one login, one hash), for /users/me and as the
# token introspected: a resource server asks about its users' tokens.
user_token=$(curl -sf -d 'username=johndoe&password=secret' "http://$ours/token" |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
# Each request checked once by hand first, so a refusal is not measured.
curl -sf -H "$basic" -d grant_type=client_credentials "http://$ours/token" | grep -q access_token ||
    { echo "load.sh: the client credentials grant is refused" >&2; exit 1; }
curl -sf -H "$basic" -d "token=$user_token" "http://$ours/introspect" | grep -q '"active":true' ||
    { echo "load.sh: introspection does not answer active" >&2; exit 1; }

# post_as_client FILE BODY: a wrk script POSTing the form BODY with the
# client's Basic credentials.
post_as_client() {
    cat >"$1" <<LUA
wrk.method = "POST"
wrk.body = "$2"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
wrk.headers["Authorization"] = "${basic#Authorization: }"
LUA
}
post_as_client "$work/grant.lua" grant_type=client_credentials
post_as_client "$work/introspect.lua" "token=$user_token"

# run NAME PATH [WRK ARGS]: one wrk run; prints "req/s us/req".
run() {
    local path=$1; shift
    local before after out requests rps
    before=$(cpu_ticks "$pid")
    out=$(taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" "$@" "http://$ours$path")
    after=$(cpu_ticks "$pid")
    if echo "$out" | grep -q Non-2xx; then echo "load.sh: $path answered non-2xx: $out" >&2; exit 1; fi
    requests=$(echo "$out" | awk '/requests in/ {print $1}')
    rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
    awk -v r="$rps" -v t=$((after - before)) -v hz="$hz" -v n="$requests" \
        'BEGIN {printf "%s %.3f\n", r, t / hz / n * 1e6}'
}

echo "machine clients: wrk -t1 -c$connections -d${seconds}s, server on core 0, wrk on core 1, $rounds rounds"
printf '%-6s %12s %12s %12s %10s\n' round 'users/me/s' 'grants/s' 'introspect/s' 'ratio'
: >"$work/rows"
for round in $(seq "$rounds"); do
    read -r me_rps me_us < <(run /users/me -H "Authorization: Bearer $user_token")
    read -r cc_rps cc_us < <(run /token -s "$work/grant.lua")
    read -r in_rps in_us < <(run /introspect -s "$work/introspect.lua")
    ratio=$(awk -v a="$in_rps" -v b="$me_rps" 'BEGIN {printf "%.3f", a / b}')
    printf '%-6s %12s %12s %12s %10s\n' "$round" "$me_rps" "$cc_rps" "$in_rps" "$ratio"
    echo "$me_rps $cc_rps $in_rps $ratio $me_us $cc_us $in_us" >>"$work/rows"
done
col() { cut -d' ' -f"$1" "$work/rows" | median; }
printf '%-6s %12s %12s %12s %10s\n' median "$(col 1)" "$(col 2)" "$(col 3)" "$(col 4)"
echo "server CPU per request, medians: /users/me $(col 5) us, client credentials grant $(col 6) us, introspection $(col 7) us"
echo "client credentials grants/s: $(col 2) (target >= 10,000 on one core)"
echo "introspection / users_me: $(col 4) (median of the rounds' ratios; target >= 0.5)"
echo "RSS peak: $(awk '/VmHWM/ {print $2}' "/proc/$pid/status") KiB; release binary: $(stat -c %s target/release/password-bearer) bytes"
