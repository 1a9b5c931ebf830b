#!/usr/bin/env bash
# Side-by-side load test of the release binary against the bare hyper
# baseline (examples/baseline.rs), on this machine.
#
#   benches/load.sh [ROUNDS] [SECONDS]   GET /users/me, A B A B ...
#   benches/load.sh flood [SECONDS]      login flood beside /users/me readers,
#                                        ours then the axum equivalent
#                                        (benches/axum-equivalent, when it
#                                        builds), and the logins/s ratio;
#                                        each against the hash limit (cores
#                                        / median hash time, measured first),
#                                        with refusals, readers' p99, peak
#                                        RSS and where the cores went
#                                        (READERS=0: no readers)
#   benches/load.sh conns [N]            RSS of each server holding N (10000)
#                                        keep-alive connections
#   benches/load.sh tls [ROUNDS] [SECONDS]
#                                        over TLS (the tls feature; the
#                                        baseline in the same rustls
#                                        configuration, an openssl P-256
#                                        certificate): GET /users/me on
#                                        keep-alive connections, then full
#                                        handshakes (Connection: close, one
#                                        request each); idle RSS
#   benches/load.sh postgres [ROUNDS] [SECONDS]
#                                        GET /users/me, ours with --users
#                                        postgres://… (the postgres feature,
#                                        a throwaway cluster: initdb, a free
#                                        port, the demo users inserted)
#                                        against ours with the users file
#   benches/load.sh redis [ROUNDS] [SECONDS]
#                                        GET /users/me, ours with --redis-url
#                                        (the redis feature, a throwaway
#                                        redis-server on a free port, nothing
#                                        saved) against ours with sessions in
#                                        the process, the same binary
#   benches/load.sh refresh [CLIENTS] [SECONDS]
#                                        refresh grants: CLIENTS clients (8
#                                        and 32), each rotating its own
#                                        session, against sessions in memory,
#                                        --state-dir and --redis-url; grants/s,
#                                        p99, CPU per grant, and state-dir /
#                                        memory (ROUNDS=3 rounds, medians)
#   benches/load.sh clients [ROUNDS] [SECONDS]
#                                        machine clients: client credentials
#                                        grants/s and introspections/s beside
#                                        GET /users/me on one core
#                                        (benches/clients_load.sh)
#
# Each server is pinned to core 0 (taskset -c 0) and wrk to core 1, so the
# servers compete for the same core and never with the load generator.
# Besides throughput it prints CPU time per request of each server (utime +
# stime from /proc/PID/stat, before and after each round): on a shared
# machine whose speed drifts, that is the steadier figure. Needs wrk
# (Debian: apt-get install wrk) and curl.
set -euo pipefail
cd "$(dirname "$0")/.."

# clients: a script of its own, one server and three request shapes.
if [ "${1:-}" = clients ]; then
    shift
    exec bash benches/clients_load.sh "$@"
fi

# refresh: a block of its own, three servers of the same binary (the
# state-dir and redis features) one store apart, each pinned to core 0 and
# given one user per client (user0, user1, …, password "secret", johndoe's
# hash), and examples/refresh_load.rs on core 1 as the clients.
if [ "${1:-}" = refresh ]; then
    shift
    clients=${1:-8 32}
    seconds=${2:-5}
    rounds=${ROUNDS:-3}
    command -v redis-server >/dev/null || { echo "load.sh: redis-server is missing (apt-get install redis-server)" >&2; exit 2; }
    cargo build --release --quiet --features state-dir,redis --bin password-bearer --example refresh_load
    source benches/servers.sh
    median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }
    most=$(printf '%s\n' $clients | sort -n | tail -n1)
    python3 - "$most" src/demo_users.json >"$work/users.json" <<'PY'
import json, sys
john = json.load(open(sys.argv[2]))["johndoe"]
print(json.dumps({f"user{i}": dict(john, username=f"user{i}") for i in range(int(sys.argv[1]))}))
PY
    head -c 48 /dev/urandom | base64 >"$work/key"
    # The state directory on the disk that holds the repository (under
    # target/), not in a tmpfs: an fsync there would cost nothing.
    state=$(mktemp -d "$PWD/target/refresh-state.XXXXXX")
    start_redis
    trap 'kill "$(cat "$redisdir/pid" 2>/dev/null)" 2>/dev/null; rm -rf "$redisdir" "$state"; cleanup' EXIT
    PIN=0
    common=(--port 0 --secret-key-file "$work/key" --no-login-log --users "$work/users.json")
    memory=$(start memory target/release/password-bearer "${common[@]}")
    state_dir=$(start state-dir target/release/password-bearer "${common[@]}" --state-dir "$state")
    redis=$(start redis target/release/password-bearer "${common[@]}" --redis-url "redis://127.0.0.1:$redisport/")
    echo "refresh grants: each client logs in once as its own user, then refreshes in a loop with the latest refresh token"
    echo "servers on core 0, clients (examples/refresh_load.rs) and redis-server on core 1; ${seconds}s per run, $rounds rounds, medians"
    echo "--state-dir in $state: $(df -T "$state" | awk 'NR == 2 {print $2 " on " $1}')"
    for n in $clients; do
        : >"$work/rows.$n"
        for round in $(seq "$rounds"); do
            for store in memory state-dir redis; do
                case $store in memory) addr=$memory ;; state-dir) addr=$state_dir ;; redis) addr=$redis ;; esac
                out=$(taskset -c 1 target/release/examples/refresh_load "$addr" "$n" "$seconds" \
                    "$(cat "$work/$store.pid")" "$(getconf CLK_TCK)")
                echo "  $n clients, round $round, $store: $out"
                rate=$(echo "$out" | sed -n 's/.*: \([0-9]*\) grants\/s.*/\1/p')
                p99=$(echo "$out" | sed -n 's/.*p99 \([0-9.]*\) ms.*/\1/p')
                cpu=$(echo "$out" | sed -n 's/.*server CPU \([0-9.]*\) us.*/\1/p')
                echo "$store $rate $p99 $cpu" >>"$work/rows.$n"
            done
        done
    done
    printf '%-8s %-10s %12s %10s %14s %16s\n' clients store 'grants/s' 'p99 ms' 'CPU us/grant' 'grants/s/core'
    for n in $clients; do
        for store in memory state-dir redis; do
            rate=$(awk -v s=$store '$1 == s {print $2}' "$work/rows.$n" | median)
            p99=$(awk -v s=$store '$1 == s {print $3}' "$work/rows.$n" | median)
            cpu=$(awk -v s=$store '$1 == s {print $4}' "$work/rows.$n" | median)
            per_core=$(awk -v c="$cpu" 'BEGIN {printf "%.0f", (c > 0) ? 1e6 / c : 0}')
            printf '%-8s %-10s %12s %10s %14s %16s\n' "$n" "$store" "$rate" "$p99" "$cpu" "$per_core"
        done
        # Each round's state-dir rate over its memory rate, measured
        # seconds apart, then the median: steadier than a ratio of medians.
        ratio=$(awk '$1 == "memory" {m = $2} $1 == "state-dir" {printf "%.3f\n", $2 / m}' "$work/rows.$n" | median)
        echo "$n clients: state-dir / memory $ratio (median of the rounds' ratios; target at 32: >= 0.5)"
    done
    exit 0
fi

mode=users_me
case "${1:-}" in flood | conns | tls | postgres | redis) mode=$1; shift ;; esac
rounds=${1:-5}
seconds=${2:-5}
[ "$mode" = flood ] && seconds=${1:-10}
held=${1:-10000}
# Both servers and the client each need a descriptor per connection.
ulimit -n $((held * 2 + 1024)) 2>/dev/null || ulimit -n "$(ulimit -Hn)"
connections=${CONNECTIONS:-32}

command -v wrk >/dev/null || { echo "load.sh: wrk is missing (apt-get install wrk)" >&2; exit 2; }
features=()
[ "$mode" = tls ] && features=(--features tls)
[ "$mode" = postgres ] && features=(--features postgres)
[ "$mode" = redis ] && features=(--features redis)
cargo build --release --quiet "${features[@]}" --bin password-bearer --example baseline

source benches/servers.sh

# Issue 4 measures the flood against what an axum + jsonwebtoken + argon2
# developer would write (benches/axum-equivalent, its own Cargo project).
# Building it needs its crates from the registry; without them our figures
# still stand on their own, so a failed build skips the comparison only.
axum_skipped=
if [ "$mode" = flood ] &&
    ! cargo build --release --quiet --manifest-path benches/axum-equivalent/Cargo.toml 2>"$work/axum-build.log"; then
    axum_skipped=$(grep -m1 '^error' "$work/axum-build.log" || tail -n1 "$work/axum-build.log")
fi

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
# A process's CPU time in nanoseconds, its threads' schedstat summed
# (exact where cpu_ticks counts 10 ms ticks).
cpu_ns() { cat /proc/"$1"/task/*/schedstat 2>/dev/null | awk '{s += $1} END {printf "%d\n", s}'; }
# The whole machine's busy ticks (all but idle and iowait), for the flood.
machine_ticks() { awk '$1 == "cpu" {print $2 + $3 + $4 + $7 + $8 + $9}' /proc/stat; }
hwm_kib() { awk '/VmHWM/ {print $2}' "/proc/$1/status"; }
median() { sort -g | awk '{a[NR]=$1} END {print (NR % 2) ? a[(NR+1)/2] : (a[NR/2] + a[NR/2+1]) / 2}'; }

# The flood runs the server on both cores (it sizes its hashing pool from
# them); the side-by-side rounds pin each server to core 0.
PIN=0
[ "$mode" = flood ] && PIN=0,1
head -c 48 /dev/urandom | base64 >"$work/key"
# One load generator is one client address: the per-address connection cap
# (an eighth of --max-connections) would refuse the 10k held connections.
# The flood's 16 concurrent logins are all johndoe's, at the default limits:
# 10 are in flight at once and the other six wait for their turn, so every
# login is a 200 (the non-2xx count below says if one was refused).
extra=()
# The flood reads our hash times from /metrics (see hash_sum below).
[ "$mode" = flood ] && extra=(--metrics-addr 127.0.0.1:0)
# TLS: both servers serve one certificate; curl trusts it, wrk checks none.
scheme=http
curl_tls=()
base_tls=()
if [ "$mode" = tls ]; then
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=localhost -addext subjectAltName=IP:127.0.0.1 \
        -keyout "$work/tls-key.pem" -out "$work/tls-cert.pem" 2>/dev/null
    scheme=https
    extra=(--tls-cert "$work/tls-cert.pem" --tls-key "$work/tls-key.pem")
    curl_tls=(--cacert "$work/tls-cert.pem")
    base_tls=("$work/tls-cert.pem" "$work/tls-key.pem")
fi
# postgres: a throwaway cluster (as the postgres user when root: initdb and
# postgres refuse to run as root) holding the demo users, stopped on exit.
if [ "$mode" = postgres ]; then
    pgbin=$(dirname "$(command -v initdb || ls /usr/lib/postgresql/*/bin/initdb | sort -V | tail -n1)")
    [ -x "$pgbin/initdb" ] || { echo "load.sh: initdb is missing (apt-get install postgresql)" >&2; exit 2; }
    pgdir=$(mktemp -d)
    as_pg=()
    if [ "$(id -u)" = 0 ]; then chown postgres: "$pgdir"; as_pg=(runuser -u postgres --); fi
    pgport=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    trap '"${as_pg[@]}" "$pgbin/pg_ctl" -D "$pgdir/data" -m immediate stop >/dev/null 2>&1; rm -rf "$pgdir"; cleanup' EXIT
    "${as_pg[@]}" "$pgbin/initdb" -D "$pgdir/data" -A trust -U postgres -E UTF8 --locale=C --no-sync >/dev/null
    # On core 1 with wrk: the database is not what is measured, and its
    # few lookups (one per user per half second) stay off the servers' core.
    "${as_pg[@]}" taskset -c 1 "$pgbin/pg_ctl" -D "$pgdir/data" -l "$pgdir/log" -w \
        -o "-p $pgport -k $pgdir -c listen_addresses=127.0.0.1" start >/dev/null
    pg_url="postgres://postgres@127.0.0.1:$pgport/postgres"
    psql -q -h 127.0.0.1 -p "$pgport" -U postgres -d postgres -v ON_ERROR_STOP=1 -f contrib/postgres/users.sql
    # The demo users file's rows, as SQL.
    python3 - src/demo_users.json >"$pgdir/users.sql" <<'PY'
import json, sys
q = lambda v: "NULL" if v is None else "'" + str(v).replace("'", "''") + "'"
for u in json.load(open(sys.argv[1])).values():
    scopes = "ARRAY[" + ",".join(q(s) for s in u.get("scopes", [])) + "]::text[]"
    print(f"INSERT INTO users VALUES ({q(u['username'])}, {q(u['hashed_password'])}, {q(u.get('email'))}, "
          f"{q(u.get('full_name'))}, {'NULL' if u.get('disabled') is None else str(u['disabled']).lower()}, {scopes});")
PY
    psql -q -h 127.0.0.1 -p "$pgport" -U postgres -d postgres -v ON_ERROR_STOP=1 -f "$pgdir/users.sql"
    extra=(--users "$pg_url")
fi
# redis: a throwaway redis-server, nothing saved, stopped on exit; on core
# 1 with wrk, as the database above: /users/me asks it nothing, and the
# follower's poll (one small script every 500 ms) stays off the servers'
# core.
if [ "$mode" = redis ]; then
    command -v redis-server >/dev/null || { echo "load.sh: redis-server is missing (apt-get install redis-server)" >&2; exit 2; }
    start_redis
    trap 'kill "$(cat "$redisdir/pid" 2>/dev/null)" 2>/dev/null; rm -rf "$redisdir"; cleanup' EXIT
    extra=(--redis-url "redis://127.0.0.1:$redisport/")
fi
ours=$(start ours target/release/password-bearer --port 0 --secret-key-file "$work/key" --no-login-log \
    --max-connections $((held + 100)) --max-connections-per-ip 0 "${extra[@]}")
ours_pid=$(cat "$work/ours.pid")
# The token is minted here with the key (HS256 over openssl), not by
# logging in: a login would add argon2's working memory (19 MiB) to the RSS
# compared with the baseline's.
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
# Shaped as the server issues tokens with sessions on (the default): the
# key's kid, a jti and a sid, so the revocation check runs on every request.
kid=$({ printf 'password-bearer key id\0'; tr -d '[:space:]' <"$work/key"; } | openssl dgst -sha256 -binary | head -c 8 | b64url)
jti=$(head -c 16 /dev/urandom | b64url)
sid=$(head -c 16 /dev/urandom | b64url)
signing_input="$(printf '{"alg":"HS256","kid":"%s","typ":"JWT"}' "$kid" | b64url).$(printf '{"sub":"johndoe","iat":%d,"exp":%d,"jti":"%s","sid":"%s"}' "$now" $((now + 3600)) "$jti" "$sid" | b64url)"
signature=$(printf '%s' "$signing_input" | openssl dgst -sha256 -mac HMAC -macopt "key:$(tr -d '[:space:]' <"$work/key")" -binary | b64url)
token="$signing_input.$signature"
curl -sf "${curl_tls[@]}" -H "Authorization: Bearer $token" "$scheme://$ours/users/me" >/dev/null ||
    { echo "load.sh: the minted token is refused" >&2; exit 1; }
auth="Authorization: Bearer $token"
hz=$(getconf CLK_TCK)

if [ "$mode" = flood ]; then
    cat >"$work/login.lua" <<'LUA'
wrk.method = "POST"
wrk.body = "username=johndoe&password=secret"
wrk.headers["Content-Type"] = "application/x-www-form-urlencoded"
LUA
    # READERS=0 floods with no readers: the logins alone, for comparison.
    readers=${READERS:-8}
    metrics=$(sed -n 's/.*metrics on http:\/\/\([0-9.:]*\)\/metrics$/\1/p' "$work/ours.err")
    # hash_sum: our hashes so far, "count seconds" (from /metrics, the
    # hash-duration histogram's _count and _sum, microsecond-exact).
    hash_sum() {
        curl -sf "http://$metrics/metrics" |
            awk '/^password_bearer_hash_duration_seconds_count / {c = $2}
                 /^password_bearer_hash_duration_seconds_sum / {s = $2} END {print c + 0, s + 0}'
    }
    # The hash limit, measured in this run on this machine as it is now:
    # ours logs johndoe in 11 times, one at a time, nothing else running
    # against it, and each hash's time is the histogram's sum before and
    # after (the first, which also allocates argon2's 19 MiB, dropped).
    # The server hashes at most one password per core at a time, each on
    # one core (p=1): cores / median hash time is what the machine allows.
    cores=$(taskset -c "$PIN" nproc)
    # hash_alone: sets hash_ms (the median) and login_cpu_ms (the CPU of a
    # login alone, its hash and the rest, for the account of where the
    # cores went).
    hash_alone() {
        local i before after cpu0=0
        : >"$work/hash-times"
        for i in $(seq 11); do
            [ "$i" = 2 ] && cpu0=$(cpu_ns "$ours_pid")
            before=$(hash_sum)
            curl -sf -d 'username=johndoe&password=secret' "http://$ours/token" >/dev/null ||
                { echo "load.sh: johndoe's login failed" >&2; exit 1; }
            after=$(hash_sum)
            [ "$i" = 1 ] || awk -v b="${before#* }" -v a="${after#* }" 'BEGIN {printf "%.3f\n", (a - b) * 1000}' >>"$work/hash-times"
        done
        hash_ms=$(median <"$work/hash-times")
        login_cpu_ms=$(awk -v n="$(($(cpu_ns "$ours_pid") - cpu0))" 'BEGIN {printf "%.3f", n / 10 / 1e6}')
    }
    hash_alone
    limit=$(awk -v c="$cores" -v h="$hash_ms" 'BEGIN {printf "%.1f", c / h * 1000}')
    echo "hash limit: $cores cores / median hash $hash_ms ms (10 logins one at a time, before the floods; CPU $login_cpu_ms ms a login) = $limit logins/s"
    # The same after the floods: how far the machine drifted meanwhile (a
    # shared machine's other work slows the hashes alone too).
    limit_again() {
        hash_alone
        echo "hash limit again after the floods: median hash $hash_ms ms = $(awk -v c="$cores" -v h="$hash_ms" 'BEGIN {printf "%.1f", c / h * 1000}') logins/s"
    }
    # ms TIME: wrk's latency (850.00us, 4.79ms, 1.02s) in milliseconds.
    ms() { awk -v t="$1" 'BEGIN {u = t; sub(/[0-9.]+/, "", u); v = t + 0; printf "%.2f", u == "us" ? v / 1000 : u == "s" ? v * 1000 : v}'; }
    # flood NAME ADDR PID AUTH: the same flood for each server, so the two
    # sets of figures differ only by the server. Writes logins/s to
    # $work/NAME.logins for the ratio.
    flood() {
        local name=$1 addr=$2 pid=$3 auth=$4 idle flooder logins p50 p99 non2xx refused hashes=
        idle=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
        [ "$name" = ours ] && hashes=$(hash_sum)
        local cpu0 machine0 cpu machine started took count sum
        cpu0=$(cpu_ticks "$pid")
        machine0=$(machine_ticks)
        started=$(date +%s%N)
        wrk -t1 -c16 -d"${seconds}s" -s "$work/login.lua" "http://$addr/token" >"$work/$name.flood.txt" &
        flooder=$!
        if [ "$readers" -gt 0 ]; then
            wrk -t1 -c"$readers" -d"${seconds}s" --latency -H "$auth" "http://$addr/users/me" >"$work/$name.readers.txt"
        else
            : >"$work/$name.readers.txt"
        fi
        wait "$flooder"
        # Hashes done by the time wrk stopped: the logins it left queued
        # are still hashed after it, and are not the flood's.
        [ -n "$hashes" ] && read -r count sum <<<"$(hash_sum)"
        cpu=$(($(cpu_ticks "$pid") - cpu0))
        machine=$(($(machine_ticks) - machine0))
        # The flood's own length (wrk runs a little past -d), for the shares.
        took=$(awk -v n="$(($(date +%s%N) - started))" 'BEGIN {print n / 1e9}')
        logins=$(awk '/Requests\/sec/ {print $2}' "$work/$name.flood.txt")
        p99=$(awk '$1 == "99%" {print $2}' "$work/$name.readers.txt")
        p50=$(awk '$1 == "50%" {print $2}' "$work/$name.readers.txt")
        non2xx=$(cat "$work/$name.flood.txt" "$work/$name.readers.txt" | awk '/Non-2xx/ {s += $NF} END {print s + 0}')
        # Every login of the flood has the right password: any non-2xx is
        # a valid login refused (a 429, or a 503 from the queue).
        refused=$(awk '/Non-2xx/ {s += $NF} END {print s + 0}' "$work/$name.flood.txt")
        echo "$name:"
        echo "  logins/s: $logins"
        echo "  /users/me latency during the flood: p50 $p50, p99 $p99"
        echo "  RSS: idle ${idle} KiB, peak $(hwm_kib "$pid") KiB; non-2xx responses: $non2xx"
        echo "  valid logins refused: $refused (target: 0)"
        echo "  logins/s / hash limit: $(awk -v l="$logins" -v m="$limit" 'BEGIN {printf "%.3f", l / m}') (target: >= 0.9)"
        # Where the two cores went: each login needs the CPU one took
        # alone (argon2's, nearly all of it); the server's other CPU is its
        # readers'.
        awk -v cpu="$cpu" -v all="$machine" -v hz="$hz" -v t="$took" -v n="$(awk '/requests in/ {print $1}' "$work/$name.flood.txt")" -v h="$login_cpu_ms" \
            'BEGIN {c = cpu / hz / t; m = all / hz / t; x = n * h / 1000 / t; printf "  cores busy: %.2f, of which the server %.2f (its logins about %.2f, the rest, its readers, %.2f); wrk and everything else on the machine %.2f\n", m, c, x, c - x, m - c}'
        if [ -n "$hashes" ]; then
            # The hashes done during the flood: their mean time, against the
            # median above, says how much of the cores they got; their
            # seconds over the slots' (one per core), how busy the slots were.
            awk -v c0="${hashes% *}" -v s0="${hashes#* }" -v c="$count" -v s="$sum" -v cores="$cores" -v t="$took" -v h="$hash_ms" \
                'BEGIN {n = c - c0; m = (s - s0) / n * 1000; printf "  hashes during the flood: %d, mean %.1f ms (%.2f x the median alone); slots busy %.0f%%\n", n, m, m / h, (s - s0) / (cores * t) * 100}'
            awk -v l="$logins" -v c0="${hashes% *}" -v s0="${hashes#* }" -v c="$count" -v s="$sum" -v cores="$cores" \
                'BEGIN {m = (s - s0) / (c - c0); printf "  logins/s / (cores / the flood'"'"'s mean hash time, %.1f logins/s): %.3f\n", cores / m, l / (cores / m)}'
        fi
        [ "$readers" -gt 0 ] && echo "  targets: p99 $(ms "$p99") ms (<= 5), peak RSS $(awk -v k="$(hwm_kib "$pid")" 'BEGIN {printf "%.1f", k / 1024}') MiB (<= 48)"
        echo "$logins" >"$work/$name.logins"
    }
    echo "login flood: 16 clients POST /token (argon2id m=19456 t=2 p=1) for ${seconds}s while $readers clients GET /users/me; each server on both cores, one flood at a time"
    flood ours "$ours" "$ours_pid" "$auth"
    if [ -n "$axum_skipped" ]; then
        echo "axum comparison skipped: benches/axum-equivalent does not build ($axum_skipped)"
        limit_again
        exit 0
    fi
    # Started only now, so that ours was flooded with no other server in
    # the machine's memory; it stays idle from here on.
    axum=$(start axum benches/axum-equivalent/target/release/axum-equivalent 0 "$work/key")
    axum_pid=$(cat "$work/axum.pid")
    # Its readers' token comes from logging in, as its clients would: the
    # 19 MiB of that one verify is nothing beside the flood's.
    axum_token=$(curl -sf -d 'username=johndoe&password=secret' "http://$axum/token" |
        sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    curl -sf -H "Authorization: Bearer $axum_token" "http://$axum/users/me" >/dev/null ||
        { echo "load.sh: the axum equivalent refuses its own token" >&2; exit 1; }
    flood axum "$axum" "$axum_pid" "Authorization: Bearer $axum_token"
    awk -v a="$(cat "$work/ours.logins")" -v b="$(cat "$work/axum.logins")" \
        'BEGIN {if (b > 0) printf "logins/s ratio ours / axum: %.3f\n", a / b; else print "logins/s ratio ours / axum: n/a (axum logged nobody in)"}'
    limit_again
    exit 0
fi

# postgres, redis: the other side is ours too, with the same users from the
# file and sessions in the process.
if [ "$mode" = postgres ] || [ "$mode" = redis ]; then
    base=$(start file target/release/password-bearer --port 0 --secret-key-file "$work/key" --no-login-log \
        --max-connections $((held + 100)) --max-connections-per-ip 0 --users src/demo_users.json)
    base_pid=$(cat "$work/file.pid")
else
    base=$(start baseline target/release/examples/baseline 0 "${base_tls[@]}")
    base_pid=$(cat "$work/baseline.pid")
fi

if [ "$mode" = conns ]; then
    # Opens N connections, sends one GET /users/me on each, reads the
    # answers, then holds them all while the RSS is read (well within the
    # 10 s header-read timeout that closes idle keep-alive connections).
    cat >"$work/hold.py" <<'PY'
import asyncio, sys
host, port, n, auth = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
request = f"GET /users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {auth}\r\n\r\n".encode()
async def one():
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(request)
    head = await reader.readuntil(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200"), head
    length = int([l for l in head.split(b"\r\n") if l.lower().startswith(b"content-length")][0].split(b":")[1])
    await reader.readexactly(length)
    return writer
async def main():
    writers = []
    for start in range(0, n, 500):
        writers += await asyncio.gather(*(one() for _ in range(min(500, n - start))))
    print("holding", len(writers), flush=True)
    await asyncio.sleep(3)
asyncio.run(main())
PY
    echo "RSS holding $held keep-alive connections (each answered one GET /users/me), servers on core 0"
    for side in ours base; do
        if [ $side = ours ]; then addr=$ours pid=$ours_pid; else addr=$base pid=$base_pid; fi
        before=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
        taskset -c 1 python3 "$work/hold.py" "${addr%:*}" "${addr##*:}" "$held" "$token" >"$work/hold.out" &
        holder=$!
        until grep -q holding "$work/hold.out" 2>/dev/null; do
            kill -0 $holder 2>/dev/null || { echo "load.sh: the client failed" >&2; exit 1; }
            sleep 0.1
        done
        sleep 1
        during=$(awk '/VmRSS/ {print $2}' "/proc/$pid/status")
        wait $holder
        echo "$side: idle $before KiB, holding $during KiB"
        echo "$during" >"$work/$side.held"
    done
    awk -v a="$(cat "$work/ours.held")" -v b="$(cat "$work/base.held")" 'BEGIN {printf "ratio ours / baseline: %.3f\n", a / b}'
    exit 0
fi
# side_by_side WHAT [WRK ARGS]: ROUNDS rounds of GET /users/me, ours then
# the baseline in each, and the medians.
side_by_side() {
    local what=$1; shift
    echo "$what, wrk -t1 -c$connections -d${seconds}s $*, servers on core 0, wrk on core 1"
    printf '%-6s %12s %12s %7s %14s %14s %7s\n' round 'ours req/s' 'base req/s' ratio 'ours us/req' 'base us/req' 'cpu eff'
    : >"$work/rows"
    for round in $(seq "$rounds"); do
        row=()
        for side in ours base; do
            if [ $side = ours ]; then addr=$ours pid=$ours_pid; else addr=$base pid=$base_pid; fi
            before=$(cpu_ticks "$pid")
            out=$(taskset -c 1 wrk -t1 -c"$connections" -d"${seconds}s" "$@" -H "$auth" "$scheme://$addr/users/me")
            after=$(cpu_ticks "$pid")
            requests=$(echo "$out" | awk '/requests in/ {print $1}')
            rps=$(echo "$out" | awk '/Requests\/sec/ {print $2}')
            if echo "$out" | grep -q Non-2xx; then echo "load.sh: $side answered non-2xx: $out" >&2; exit 1; fi
            us=$(awk -v t=$((after - before)) -v hz="$hz" -v n="$requests" 'BEGIN {printf "%.3f", t / hz / n * 1e6}')
            row+=("$rps" "$us")
        done
        ratio=$(awk -v a="${row[0]}" -v b="${row[2]}" 'BEGIN {printf "%.3f", a / b}')
        eff=$(awk -v a="${row[1]}" -v b="${row[3]}" 'BEGIN {printf "%.3f", b / a}')
        printf '%-6s %12s %12s %7s %14s %14s %7s\n' "$round" "${row[0]}" "${row[2]}" "$ratio" "${row[1]}" "${row[3]}" "$eff"
        echo "${row[0]} ${row[2]} $ratio ${row[1]} ${row[3]} $eff" >>"$work/rows"
    done
    printf '%-6s %12s %12s %7s %14s %14s %7s\n' median \
        "$(cut -d' ' -f1 "$work/rows" | median)" "$(cut -d' ' -f2 "$work/rows" | median)" \
        "$(cut -d' ' -f3 "$work/rows" | median)" "$(cut -d' ' -f4 "$work/rows" | median)" \
        "$(cut -d' ' -f5 "$work/rows" | median)" "$(cut -d' ' -f6 "$work/rows" | median)"
}
if [ "$mode" = tls ]; then
    echo "idle RSS over TLS: ours $(awk '/VmRSS/ {print $2}' "/proc/$ours_pid/status") KiB, baseline $(awk '/VmRSS/ {print $2}' "/proc/$base_pid/status") KiB"
    side_by_side "TLS, GET /users/me on keep-alive connections"
    # Each request on a new connection: a full handshake (wrk resumes no
    # session), the request, the close.
    side_by_side "TLS, full handshakes (one GET /users/me each)" -H 'Connection: close'
elif [ "$mode" = postgres ] || [ "$mode" = redis ]; then
    # The same binary on both sides, one setting apart.
    if [ "$mode" = postgres ]; then
        ours_is=postgres base_is=file
        sides="ours = --users postgres://…, base = ours with --users src/demo_users.json"
    else
        ours_is=redis base_is=in-process
        sides="ours = --redis-url, base = ours with sessions in the process"
    fi
    side_by_side "GET /users/me: $sides"
    echo "ratio: $ours_is / $base_is throughput; cpu eff: $base_is CPU per request / $ours_is (1.0 = as cheap)"
    echo "RSS peak: $ours_is $(hwm_kib "$ours_pid") KiB, $base_is $(hwm_kib "$base_pid") KiB"
    echo "release binary: $(stat -c %s target/release/password-bearer) bytes, built with ${features[*]}"
    exit 0
else
    side_by_side "GET /users/me"
fi
echo "ratio: ours / baseline throughput; cpu eff: baseline CPU per request / ours (1.0 = as cheap as bare hyper)"
echo "RSS peak: ours $(hwm_kib "$ours_pid") KiB, baseline $(hwm_kib "$base_pid") KiB"
echo "release binary: $(stat -c %s target/release/password-bearer) bytes (1 MiB = 1048576)${features[*]:+, built with ${features[*]}}"
