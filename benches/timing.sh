#!/usr/bin/env bash
# Login timing (issue 18): whether a failed login's time tells anything
# about the user it names. The release binary at its defaults (throttling
# off, so that every attempt is hashed) with a users file of default
# argon2id users (m=19456 t=2, `hash-password`'s), one of them disabled,
# and one at m=64 MiB t=3; then ROUNDS rounds (default 31), each trying
# once, in a rotating order, an unknown user, a wrong password for a
# default user, a wrong password for the 64 MiB user, and a wrong password
# for the disabled user; the median of each, and the spread of the medians
# (max / min). Also, for scale, a successful login of each kind.
#
#   benches/timing.sh [ROUNDS]
#
# Needs python3 with argon2-cffi (pip install argon2-cffi), for the 64 MiB
# hash, which `hash-password` does not make.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${1:-31}
python3 -c 'import argon2' 2>/dev/null ||
    { echo "timing.sh: python3 needs argon2-cffi (pip install argon2-cffi)" >&2; exit 2; }
cargo build --release --quiet --bin password-bearer
source benches/servers.sh

default=$(printf 'secret' | target/release/password-bearer hash-password)
python3 - "$default" >"$work/users.json" <<'PY'
import json, sys
from argon2 import PasswordHasher, Type
costly = PasswordHasher(time_cost=3, memory_cost=64 * 1024, parallelism=1, type=Type.ID).hash("secret")
user = lambda name, h, disabled=False: {"username": name, "full_name": None, "email": None,
                                       "hashed_password": h, "disabled": disabled}
print(json.dumps({"alice": user("alice", sys.argv[1]), "bob": user("bob", sys.argv[1]),
                  "carol": user("carol", sys.argv[1], True), "costly": user("costly", costly)}))
PY
server=$(start server target/release/password-bearer --port 0 --no-login-log \
    --login-failures-per-user 0 --login-failures-per-ip 0 --users "$work/users.json")
echo "server: $server ($(nproc) cores), $rounds rounds"

python3 - "$server" "$rounds" <<'PY'
import http.client, statistics, sys, time
host, port = sys.argv[1].rsplit(":", 1)
rounds = int(sys.argv[2])
conn = http.client.HTTPConnection(host, int(port))

def login(user, password):
    start = time.perf_counter()
    conn.request("POST", "/token", f"username={user}&password={password}",
                 {"Content-Type": "application/x-www-form-urlencoded"})
    resp = conn.getresponse()
    resp.read()
    return resp.status, time.perf_counter() - start

cases = [("unknown user", "nobody"), ("wrong password, default user", "bob"),
         ("wrong password, 64 MiB t=3 user", "costly"), ("wrong password, disabled user", "carol")]
for user in ("bob", "costly"):
    status, took = login(user, "secret")
    assert status == 200, status
    print(f"successful login, {'64 MiB t=3' if user == 'costly' else 'default'} user: {took * 1000:.1f} ms")
times = {name: [] for name, _ in cases}
for r in range(rounds + 1):
    for k in range(len(cases)):
        name, user = cases[(r + k) % len(cases)]
        status, took = login(user, "guess")
        assert status == 400, status
        if r:  # round 0 warms up
            times[name].append(took)
medians = {name: statistics.median(t) for name, t in times.items()}
for name, m in medians.items():
    print(f"failed login, {name}: median {m * 1000:.1f} ms")
print(f"spread of the medians (max / min): {max(medians.values()) / min(medians.values()):.3f}")
PY
