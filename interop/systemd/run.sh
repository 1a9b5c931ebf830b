#!/usr/bin/env bash
# The systemd units in contrib/, checked by systemd's own tools, and the
# release binary started by systemd's own socket activation code:
#   - `systemd-analyze verify`: the units parse, every directive is known
#     and the binary they start exists;
#   - `systemd-analyze security`: the sandbox's exposure score stays at or
#     below 2.0 ("OK"; 10 is an unsandboxed service);
#   - `systemd-socket-activate` opens the socket and starts the binary with
#     LISTEN_FDS and LISTEN_PID as a .socket unit would: a login and
#     /users/me with curl over the inherited socket.
# Needs systemd's tools (Debian's systemd package; no running systemd),
# curl and python3.
#
#   interop/systemd/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in systemd-analyze systemd-socket-activate curl python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 2; }
done

cargo build --release --quiet
bin=$PWD/target/release/password-bearer

work=$(mktemp -d)
cleanup() {
    [ -f "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# The units as installed, with this build's binary where they start it.
sed "s#/usr/local/bin/password-bearer#$bin#" contrib/password-bearer.service \
    >"$work/password-bearer.service"
cp contrib/password-bearer.socket "$work/"
systemd-analyze verify "$work/password-bearer.socket" "$work/password-bearer.service"
echo "ok: systemd-analyze verify"
score=$(systemd-analyze security --offline=true \
    "$work/password-bearer.service" | sed -n 's/.*Overall exposure level for .*: \([0-9.]*\) .*/\1/p')
python3 -c "import sys; s = float('$score'); sys.exit(0 if s <= 2.0 else 1)" ||
    { echo "FAIL: exposure $score above 2.0" >&2; exit 1; }
echo "ok: systemd-analyze security: exposure $score"

port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
# --port 1: ignored, as the inherited socket is served instead.
systemd-socket-activate --listen="127.0.0.1:$port" "$bin" --port 1 \
    >/dev/null 2>"$work/err" &
echo $! >"$work/pid"
# systemd-socket-activate starts the binary at the first connection, which
# then waits in the socket's backlog; but the socket itself is bound in the
# background, so wait (at most 10 s) until the kernel lists it as listening
# (/proc/net/tcp: 127.0.0.1 and the port in hex, state 0A) before the first
# connection, which would otherwise be refused on a busy machine.
hexport=$(printf '%04X' "$port")
for _ in $(seq 100); do
    grep -q " 0100007F:$hexport 00000000:0000 0A " /proc/net/tcp && break
    sleep 0.1
done
token=$(curl -sS --max-time 30 -X POST "http://127.0.0.1:$port/token" \
    -d 'username=johndoe&password=secret' |
    python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])')
me=$(curl -sS --max-time 30 "http://127.0.0.1:$port/users/me" -H "Authorization: Bearer $token")
python3 -c 'import json, sys; assert json.loads(sys.argv[1])["username"] == "johndoe", sys.argv[1]' "$me" ||
    { echo "FAIL: /users/me answered $me" >&2; cat "$work/err" >&2; exit 1; }
grep -q "listening on http://127.0.0.1:$port" "$work/err" ||
    { echo "FAIL: not serving the inherited socket:" >&2; cat "$work/err" >&2; exit 1; }
echo "ok: socket-activated by systemd-socket-activate: login and /users/me"
