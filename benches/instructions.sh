#!/usr/bin/env bash
# Instructions per GET /users/me, ours against the bare hyper baseline,
# counted by callgrind: unlike seconds, the count does not move with the
# machine's load, so small changes to the hot path show up reliably.
#
#   benches/instructions.sh [REQUESTS]     (default 5000)
#   EDDSA=1 benches/instructions.sh [REQUESTS]
#   FEATURES=clients benches/instructions.sh [REQUESTS]
#
# With EDDSA=1 the binary is built with the `signing` feature and measured
# twice in the same run: with the HS256 token, and with an EdDSA token
# (--signing-key, a fresh Ed25519 key, the token's kid its thumbprint), so
# that the verified-token cache's cost for each is compared on one binary.
# FEATURES builds ours with those cargo features (comma-separated), served
# as the default build is, so that a feature's cost to the hot path shows.
#
# Each server runs pinned to one core, as in load.sh (so each picks a
# current-thread runtime: ours as its --workers default does, the baseline
# the same way), under valgrind, answering 1000 and 1000+REQUESTS
# requests on one keep-alive connection (each count the fewest of three
# runs); the difference divided by REQUESTS is the cost of one request,
# start-up and shutdown cancelled out. The
# binaries are built with symbols into target/profiling, so the output
# files (kept in that folder) can be read with callgrind_annotate. Needs
# valgrind (Debian: apt-get install valgrind), python3 and openssl.
set -euo pipefail
cd "$(dirname "$0")/.."
requests=${1:-5000}
command -v valgrind >/dev/null || { echo "instructions.sh: valgrind is missing" >&2; exit 2; }

out=target/profiling
features=()
[ -n "${EDDSA:-}" ] && features=(--features signing)
[ -n "${FEATURES:-}" ] && features+=(--features "$FEATURES")
CARGO_PROFILE_RELEASE_STRIP=false CARGO_PROFILE_RELEASE_DEBUG=1 \
    cargo build --release --quiet --target-dir "$out" --bin password-bearer --example baseline "${features[@]}"
mkdir -p "$out/callgrind"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

head -c 48 /dev/urandom | base64 >"$work/key"
b64url() { openssl base64 -A | tr '+/' '-_' | tr -d '='; }
now=$(date +%s)
# A token shaped as the server issues them with sessions on (the default):
# the key's kid in the header, a jti and a sid in the claims, so that the
# revocation check runs on every request as it does for real clients.
kid=$({ printf 'password-bearer key id\0'; tr -d '[:space:]' <"$work/key"; } | openssl dgst -sha256 -binary | head -c 8 | b64url)
jti=$(head -c 16 /dev/urandom | b64url)
sid=$(head -c 16 /dev/urandom | b64url)
input="$(printf '{"alg":"HS256","kid":"%s","typ":"JWT"}' "$kid" | b64url).$(printf '{"sub":"johndoe","iat":%d,"exp":%d,"jti":"%s","sid":"%s"}' "$now" $((now + 3600)) "$jti" "$sid" | b64url)"
token="$input.$(printf '%s' "$input" | openssl dgst -sha256 -mac HMAC -macopt "key:$(tr -d '[:space:]' <"$work/key")" -binary | b64url)"

cat >"$work/client.py" <<'PY'
import socket, sys
port, n, token = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
s = socket.create_connection(("127.0.0.1", port))
request = f"GET /users/me HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}\r\n\r\n".encode()
buf = b""
for _ in range(n):
    s.sendall(request)
    while True:
        end = buf.find(b"\r\n\r\n")
        if end >= 0:
            head = buf[:end].decode()
            assert head.startswith("HTTP/1.1 200"), head
            length = int(next(l for l in head.split("\r\n") if l.lower().startswith("content-length")).split(":")[1])
            if len(buf) >= end + 4 + length:
                buf = buf[end + 4 + length:]
                break
        buf += s.recv(65536)
PY

# Prints the instruction total of one run of "$@" answering $1 requests.
count() {
    local n=$1 name=$2; shift 2
    local file="$out/callgrind/$name.$n"
    taskset -c 0 valgrind --tool=callgrind --callgrind-out-file="$file" "$@" >/dev/null 2>"$work/err" &
    local pid=$!
    local addr=""
    for _ in $(seq 200); do
        # Only a whole line: stderr is unbuffered, so the line may arrive
        # in pieces, and half a port is another port.
        addr=$(sed -n 's/.*listening on http:\/\/\([0-9.:]*\)$/\1/p' "$work/err")
        [ -n "$addr" ] && [ -z "$(tail -c1 "$work/err")" ] && break
        addr=""
        sleep 0.1
    done
    [ -n "$addr" ] || { echo "instructions.sh: $name did not start: $(cat "$work/err")" >&2; exit 1; }
    if ! python3 "$work/client.py" "${addr##*:}" "$n" "$token"; then
        kill "$pid"
        echo "instructions.sh: the client failed against $name" >&2
        exit 1
    fi
    kill -INT "$pid"
    wait "$pid" 2>/dev/null || true
    awk '/^summary:/ {print $2}' "$file"
}

# The fewest of three runs: how often the runtime parks between requests
# depends on timing even under valgrind, and that noise only ever adds.
fewest() {
    local n=$1; shift
    { count "$n" "$@"; count "$n" "$@"; count "$n" "$@"; } | sort -n | head -1
}

per_request() {
    local name=$1; shift
    local small big
    small=$(fewest 1000 "$name" "$@")
    big=$(fewest $((1000 + requests)) "$name" "$@")
    echo $(((big - small) / requests))
}

ours=$(per_request ours "$out/release/password-bearer" --port 0 --secret-key-file "$work/key" --no-login-log)
if [ -n "${EDDSA:-}" ]; then
    # The same claims, signed with Ed25519 by openssl; the kid is the key's
    # RFC 7638 thumbprint, as the server computes it.
    openssl genpkey -algorithm ed25519 -out "$work/ed.pem"
    x=$(openssl pkey -in "$work/ed.pem" -pubout -outform DER | tail -c 32 | b64url)
    edkid=$(printf '{"crv":"Ed25519","kty":"OKP","x":"%s"}' "$x" | openssl dgst -sha256 -binary | b64url)
    edinput="$(printf '{"alg":"EdDSA","kid":"%s","typ":"JWT"}' "$edkid" | b64url).${input#*.}"
    printf '%s' "$edinput" >"$work/edinput"
    hs_token=$token
    token="$edinput.$(openssl pkeyutl -sign -rawin -inkey "$work/ed.pem" -in "$work/edinput" | b64url)"
    eddsa=$(per_request eddsa "$out/release/password-bearer" --port 0 --secret-key-file "$work/key" --signing-key "$work/ed.pem" --no-login-log)
    token=$hs_token
fi
base=$(per_request baseline "$out/release/examples/baseline" 0)
echo "instructions per GET /users/me (callgrind, $requests requests on one connection)"
echo "ours: $ours  baseline: $base  efficiency (baseline / ours): $(awk -v a="$base" -v b="$ours" 'BEGIN {printf "%.3f", a / b}')"
[ -n "${EDDSA:-}" ] && echo "with --signing-key, an EdDSA token: $eddsa  (EdDSA / HS256: $(awk -v a="$eddsa" -v b="$ours" 'BEGIN {printf "%.4f", a / b}'))"
echo "profiles: $out/callgrind/ (callgrind_annotate --inclusive=yes FILE)"
