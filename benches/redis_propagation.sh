#!/usr/bin/env bash
# How long a revocation made on one instance takes to be honoured by
# another sharing the same Redis (the redis feature, docs/scaling-out.md "Redis").
#
#   benches/redis_propagation.sh [N]
#
# Starts a throwaway redis-server on a free port (nothing saved) and two
# release binaries with --redis-url and one key file, then N (default 50)
# times: log in on A, read /users/me on B (so B has the token verified and
# cached), revoke the access token on A, and poll /users/me on B until it
# answers 401, from one Python process over kept-alive connections (each
# poll ~0.1 ms). Prints the median and the worst, twice: with the pub/sub
# subscriptions up (the usual path), and with every subscription cut
# (CLIENT KILL TYPE pubsub) just before each revocation, the path of a lost
# message: caught by the 500 ms poll, or by subscribing again.
# Needs redis-server and redis-cli (apt-get install redis-server) and python3.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-50}
cargo build --release --quiet --features redis --bin password-bearer

work=$(mktemp -d)
pids=()
cleanup() {
    for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
redis_port=$(free_port)
redis-server --port "$redis_port" --bind 127.0.0.1 --save '' --appendonly no \
    --dir "$work" --logfile "$work/redis.log" &
pids+=($!)
until redis-cli -p "$redis_port" ping >/dev/null 2>&1; do sleep 0.05; done

head -c 48 /dev/urandom | base64 >"$work/key"
start() {
    "${CARGO_TARGET_DIR:-target}/release/password-bearer" --port 0 --no-login-log --secret-key-file "$work/key" \
        --redis-url "redis://127.0.0.1:$redis_port/" >/dev/null 2>"$work/$1.log" &
    pids+=($!)
}
address() {
    until grep -q 'listening on' "$work/$1.log"; do sleep 0.05; done
    sed -n 's|.*listening on http://||p' "$work/$1.log"
}
start a
start b
a=$(address a)
b=$(address b)

python3 - "$a" "$b" "$rounds" "$redis_port" <<'EOF'
import http.client, json, statistics, subprocess, sys, time, urllib.parse

a, b, rounds, redis_port = sys.argv[1], sys.argv[2], int(sys.argv[3]), sys.argv[4]

def conn(addr):
    host, port = addr.rsplit(":", 1)
    return http.client.HTTPConnection(host, int(port))

ca, cb = conn(a), conn(b)

def call(c, method, path, body=None, headers=None):
    c.request(method, path, body=body, headers=headers or {})
    r = c.getresponse()
    data = r.read()
    return r.status, data

form = {"Content-Type": "application/x-www-form-urlencoded"}

def measure(cut):
    took = []
    for _ in range(rounds):
        status, data = call(ca, "POST", "/token",
                            urllib.parse.urlencode({"username": "johndoe", "password": "secret"}), form)
        assert status == 200, data
        token = json.loads(data)["access_token"]
        me = {"Authorization": "Bearer " + token}
        assert call(cb, "GET", "/users/me", headers=me)[0] == 200
        if cut:
            subprocess.run(["redis-cli", "-p", redis_port, "CLIENT", "KILL", "TYPE", "pubsub"],
                           check=True, stdout=subprocess.DEVNULL)
        start = time.perf_counter()
        status, _ = call(ca, "POST", "/revoke", urllib.parse.urlencode({"token": token}), form)
        assert status == 200
        while True:
            status, _ = call(cb, "GET", "/users/me", headers=me)
            if status == 401:
                break
            assert status == 200
        took.append((time.perf_counter() - start) * 1000)
    return took

for cut in (False, True):
    took = measure(cut)
    what = "subscriptions cut before each revocation" if cut else "subscriptions up"
    print(f"{what}: {rounds} revocations, median {statistics.median(took):.2f} ms, "
          f"worst {max(took):.2f} ms (from the /revoke request on A to the first 401 on B)")
EOF
