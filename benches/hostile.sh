#!/usr/bin/env bash
# The release binary under the attacks of issue 9, at its default settings,
# with figures an operator can compare against the same client unattacked.
#
#   benches/hostile.sh logins [N]     N users (default 1000) log in at once,
#                                     from 100 loopback addresses: how many
#                                     are served, how many get 503, and how
#                                     long the slowest answer takes
#   benches/hostile.sh stalled [K]    an honest client's GET /users/me
#                                     latency (K requests, default 2000, each
#                                     on a new connection) without, then
#                                     with, one address holding its whole
#                                     connection cap with stalled bodies and
#                                     hammering for more; then whether the
#                                     stalled connections got their 408
#
# Loopback addresses 127.0.0.2 and up play distinct clients (all of 127/8
# is local on Linux). Needs python3 and curl.
set -euo pipefail
cd "$(dirname "$0")/.."
mode=${1:-}
case $mode in logins | stalled) shift ;; *) sed -n '2,18p' "$0" >&2; exit 2 ;; esac
count=${1:-}
command -v python3 >/dev/null || { echo "hostile.sh: python3 is missing" >&2; exit 2; }
ulimit -n 65536 2>/dev/null || ulimit -n "$(ulimit -Hn)"
cargo build --release --quiet --bin password-bearer
source benches/servers.sh

args=(--port 0 --no-login-log)
if [ "$mode" = logins ]; then
    count=${count:-1000}
    # N users sharing one hash (the work of a login is the same), so that
    # no per-username limit is what refuses them.
    hash=$(printf 'secret' | target/release/password-bearer hash-password)
    python3 - "$count" "$hash" >"$work/users.json" <<'PY'
import json, sys
n, h = int(sys.argv[1]), sys.argv[2]
print(json.dumps({f"user{i}": {"username": f"user{i}", "full_name": None, "email": None,
                               "hashed_password": h, "disabled": False} for i in range(n)}))
PY
    args+=(--users "$work/users.json")
fi
server=$(start server target/release/password-bearer "${args[@]}")
echo "server: target/release/password-bearer ${args[*]} ($(nproc) cores, default limits)"

python3 - "$mode" "$server" "${count:-2000}" <<'PY'
import asyncio, sys, time

mode, server, n = sys.argv[1], sys.argv[2], int(sys.argv[3])
host, port = server.rsplit(":", 1)
port = int(port)

async def exchange(source, raw, timeout=60):
    """Connects from `source`, sends `raw`, returns (status, seconds) of the answer."""
    start = time.perf_counter()
    reader, writer = await asyncio.open_connection(host, port, local_addr=(source, 0))
    try:
        writer.write(raw)
        head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout)
        length = next(int(l.split(b":")[1]) for l in head.split(b"\r\n") if l.lower().startswith(b"content-length"))
        body = await reader.readexactly(length)
        return int(head[9:12]), time.perf_counter() - start, body
    finally:
        writer.close()

def login_request(user, password):
    body = f"username={user}&password={password}".encode()
    return (b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))

def pct(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p / 100))] if values else float("nan")

def ms(seconds):
    return f"{seconds * 1000:.2f} ms"

async def logins():
    sources = [f"127.0.0.{2 + i % 100}" for i in range(n)]
    # Twice: a server that has timed no hash yet, then one that has.
    for burst in ("first burst (cold server)", "second burst"):
        start = time.perf_counter()
        results = await asyncio.gather(
            *(exchange(sources[i], login_request(f"user{i}", "secret")) for i in range(n)),
            return_exceptions=True)
        wall = time.perf_counter() - start
        by_status = {}
        for r in results:
            key = r[0] if isinstance(r, tuple) else type(r).__name__
            by_status.setdefault(key, []).append(r[1] if isinstance(r, tuple) else 0)
        print(f"{burst}: {n} logins at once from 100 addresses, all answered in {ms(wall)}")
        for status, times in sorted(by_status.items(), key=str):
            print(f"  {status}: {len(times):5d}  p50 {ms(pct(times, 50))}  slowest {ms(max(times))}")
        await asyncio.sleep(3)

async def honest(token, k):
    raw = f"GET /users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n".encode()
    times, bad = [], 0
    for _ in range(k):
        status, took, _ = await exchange("127.0.0.3", raw, timeout=30)
        times.append(took)
        bad += status != 200
    return times, bad

STALLED = (b"POST /token HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\n"
           b"Content-Length: 100\r\n\r\nu")

async def stalled():
    status, _, body = await exchange("127.0.0.3", login_request("johndoe", "secret"))
    assert status == 200, body
    token = body.split(b'"access_token":"')[1].split(b'"')[0].decode()
    quiet, bad = await honest(token, n)
    print(f"honest client (127.0.0.3), {n} x GET /users/me on new connections, no attack:")
    print(f"  p50 {ms(pct(quiet, 50))}  p99 {ms(pct(quiet, 99))}  max {ms(max(quiet))}  non-200 {bad}")

    # The attacker: as many stalled bodies as the server will hold from
    # 127.0.0.2, then more connections, over and over, all through the
    # honest client's measurement.
    held, refused = [], 0
    for _ in range(600):
        reader, writer = await asyncio.open_connection(host, port, local_addr=("127.0.0.2", 0))
        writer.write(STALLED)
        held.append((reader, writer))
    await asyncio.sleep(0.5)
    open_ = 0
    for reader, _ in held:
        if reader.at_eof():
            continue
        try:
            await asyncio.wait_for(reader.read(1), 0.01)
            refused += 1
        except asyncio.TimeoutError:
            open_ += 1
        except ConnectionError:
            refused += 1
    print(f"attacker (127.0.0.2): {len(held)} stalled bodies sent, {open_} held open by the server, {refused} refused at once")

    attack_start = time.perf_counter()
    held_only, bad = await honest(token, n)
    print(f"honest client, the same {n} requests while the attacker holds its cap:")
    print(f"  p50 {ms(pct(held_only, 50))}  p99 {ms(pct(held_only, 99))}  max {ms(max(held_only))}  non-200 {bad}")
    print(f"  ratio attacked / quiet: p50 {pct(held_only, 50) / pct(quiet, 50):.2f}, p99 {pct(held_only, 99) / pct(quiet, 99):.2f}")

    # And with another process opening connections from 127.0.0.2 as fast
    # as it can, each refused: on this machine that process and the server
    # share the cores, so this part measures the CPU the refusals cost too.
    hammer = await asyncio.create_subprocess_exec(sys.executable, "-c", f"""
import signal, socket, struct, sys
opened = 0
def done(*_):
    print(opened, flush=True)
    sys.exit(0)
signal.signal(signal.SIGTERM, done)
while True:
    s = socket.socket()
    # Closed with a reset: no TIME_WAIT, so 127.0.0.2's ports never run out.
    s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    s.bind(("127.0.0.2", 0))
    s.connect(({host!r}, {port}))
    s.close()
    opened += 1
""", stdout=asyncio.subprocess.PIPE)
    await asyncio.sleep(0.5)
    start = time.perf_counter()
    hammered, bad = await honest(token, n)
    took = time.perf_counter() - start + 0.5
    hammer.terminate()
    opened = int((await hammer.stdout.read()).decode() or 0)
    await hammer.wait()
    print(f"honest client, the same {n} requests while another process opens connections from 127.0.0.2")
    print(f"as fast as it can ({opened} in {took:.1f} s, each refused):")
    print(f"  p50 {ms(pct(hammered, 50))}  p99 {ms(pct(hammered, 99))}  max {ms(max(hammered))}  non-200 {bad}")
    print(f"  ratio hammered / quiet: p50 {pct(hammered, 50) / pct(quiet, 50):.2f}, p99 {pct(hammered, 99) / pct(quiet, 99):.2f}")

    # The request timeout (10 s) ends the stalled requests with a 408.
    await asyncio.sleep(max(0, 11 - (time.perf_counter() - attack_start)))
    answered = 0
    for reader, _ in held:
        try:
            data = await asyncio.wait_for(reader.read(12), 2)
            answered += data.startswith(b"HTTP/1.1 408")
        except (asyncio.TimeoutError, ConnectionError):
            pass
    print(f"stalled connections answered 408 after the request timeout: {answered} of {open_}")

asyncio.run(logins() if mode == "logins" else stalled())
PY
