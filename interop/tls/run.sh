#!/usr/bin/env bash
# HTTPS with real tools: a certificate made by openssl, the release binary
# serving it (--tls-cert/--tls-key), and curl --cacert logging in and
# reading /users/me over TLS 1.3 and 1.2; plain HTTP to the port is
# closed; SIGHUP after a renewal serves the new certificate. Builds
# nothing: the release binary must be built with the tls feature first
# (.ci/run does). Needs openssl and curl. Exits non-zero if a check failed.
#
#   cargo build --release --features tls && interop/tls/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in curl openssl; do
    command -v "$tool" >/dev/null || { echo "tls/run.sh: $tool is missing" >&2; exit 2; }
done
bin=target/release/password-bearer
[ -x "$bin" ] || { echo "tls/run.sh: no $bin (cargo build --release --features tls)" >&2; exit 2; }

work=$(mktemp -d)
cleanup() {
    [ -f "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# A self-signed certificate for localhost: its own CA for curl.
certificate() {
    openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
        -subj /CN=localhost -addext subjectAltName=DNS:localhost \
        -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
    cp "$work/cert.pem" "$work/$1"
}
certificate ca-1.pem

: >"$work/err"
"$bin" --port 0 --tls-cert "$work/cert.pem" --tls-key "$work/key.pem" >/dev/null 2>"$work/err" &
echo $! >"$work/pid"
addr=
for _ in $(seq 200); do
    # Only a whole line: half a port is another port.
    addr=$(sed -n 's/^listening on https:\/\/\([0-9.:]*\)$/\1/p' "$work/err")
    [ -n "$addr" ] && [ -z "$(tail -c1 "$work/err")" ] && break
    addr=
    kill -0 "$(cat "$work/pid")" 2>/dev/null || break
    sleep 0.05
done
[ -n "$addr" ] || { echo "tls/run.sh: the server did not start: $(cat "$work/err")" >&2; exit 1; }
port=${addr##*:}
url="https://localhost:$port"

failed=0
check() {
    if [ "$2" = "$3" ]; then
        echo "ok   $1"
    else
        echo "FAIL $1: got ${2:0:200}, want ${3:0:200}"
        failed=1
    fi
}
tls() {
    curl -sS --max-time 10 --resolve "localhost:$port:127.0.0.1" "$@"
}

for version in 1.3 1.2; do
    ca="$work/ca-1.pem"
    token=$(tls --cacert "$ca" --tlsv"$version" --tls-max "$version" "$url/token" \
        -d username=johndoe -d password=secret |
        sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p')
    check "TLS $version: curl --cacert logs in" "$([ -n "$token" ] && echo token)" token
    me=$(tls --cacert "$ca" --tlsv"$version" --tls-max "$version" "$url/users/me" \
        -H "Authorization: Bearer $token" -w ' %{http_code} %{http_version}')
    check "TLS $version: /users/me" "${me##*\}}" " 200 1.1"
done

# Plain HTTP on the TLS port: refused at once, not left to time out.
start=$(date +%s%N)
code=0
curl -sS --max-time 5 "http://127.0.0.1:$port/users/me" >/dev/null 2>&1 || code=$?
elapsed=$(( ($(date +%s%N) - start) / 1000000 ))
# (rustls's alert, then the close: curl reads the alert as HTTP/0.9, exit
# 1; a reset is 56, an empty reply 52; only a timeout, 28, is a hang.)
check "plain HTTP to the TLS port is closed at once (curl exit $code, ${elapsed} ms)" \
    "$([ "$code" != 0 ] && [ "$code" != 28 ] && [ "$elapsed" -lt 2000 ]; echo $?)" 0

# Renewal: a new certificate in place, SIGHUP, and curl needs the new CA.
certificate ca-2.pem
kill -HUP "$(cat "$work/pid")"
for _ in $(seq 100); do
    grep -q 'reloaded:' "$work/err" && break
    sleep 0.05
done
check "SIGHUP reloads" "$(grep -c 'reloaded: .*the certificate' "$work/err")" 1
check "after SIGHUP: the new certificate" \
    "$(tls --cacert "$work/ca-2.pem" -o /dev/null -w '%{http_code}' "$url/users/me")" 401
code=0
tls --cacert "$work/ca-1.pem" -o /dev/null "$url/users/me" 2>/dev/null || code=$?
check "after SIGHUP: the old certificate is gone (curl exit 60)" "$code" 60

exit "$failed"
