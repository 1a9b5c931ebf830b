#!/usr/bin/env bash
# Tokens other services verify without the secret, checked by the
# libraries those services use: PyJWT's PyJWKClient (check.py) and node's
# jose, createRemoteJWKSet + jwtVerify (verify.mjs), each finding our
# JWKS from the RFC 8414 metadata and verifying with the issuer and
# audience set. Keys from `openssl genpkey` (Ed25519 and P-256), the
# release binary with --signing-key (twice), --issuer and --audience on
# a free port, and a rotation by SIGHUP as docs/verifying-tokens.md tells
# it:
#
#   1. Ed25519 signs, P-256 is published as the next key: an EdDSA token
#      verifies in both libraries; the JWKS is exactly the two keys, each
#      kid the RFC 7638 thumbprint check.py computes from the PEM file;
#   2. swap (P-256 signs, Ed25519 still published): the new ES256 token
#      and the old EdDSA one both verify;
#   3. drop the Ed25519 key (a fresh Ed25519 key is now the next): a
#      client fetching the JWKS anew refuses the old token (no key with
#      its kid), and so does /users/me; the ES256 token still verifies.
#
# Builds the release binary with the signing feature. Needs openssl, curl,
# python3 with PyJWT and cryptography (`pip install 'pyjwt[crypto]'`),
# Node.js >= 20 with npm and the npm registry (npm ci of jose, the version
# package-lock.json pins, into interop/jwks/node_modules, which git
# ignores). Exits non-zero if a check failed.
#
#   interop/jwks/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
here=interop/jwks
for tool in curl openssl python3 node npm; do
    command -v "$tool" >/dev/null || { echo "jwks/run.sh: $tool is missing" >&2; exit 2; }
done
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
    { echo "jwks/run.sh: Node.js >= 20 is needed, this is $(node --version)" >&2; exit 2; }
python3 -c 'import jwt, cryptography' ||
    { echo "jwks/run.sh: python3 needs PyJWT and cryptography (pip install 'pyjwt[crypto]')" >&2; exit 2; }

cargo build --release --features signing --quiet
(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)

work=$(mktemp -d)
cleanup() {
    [ -f "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

ed25519() { openssl genpkey -algorithm ed25519 -out "$1" 2>/dev/null; }
p256() { openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out "$1" 2>/dev/null; }
ed25519 "$work/old.pem"
p256 "$work/new.pem"
ed25519 "$work/next.pem"
# The server reads two files; a rotation changes what they hold.
cp "$work/old.pem" "$work/first.pem"
cp "$work/new.pem" "$work/second.pem"
# put SOURCE FILE: FILE takes SOURCE's content at once (no half-written key).
put() { cp "$work/$1" "$work/tmp.pem" && mv "$work/tmp.pem" "$work/$2"; }

# The issuer is the server's own address, so a client can follow the
# metadata's jwks_uri: a free port is picked first (and picked again if
# another process takes it before the server binds it).
audience=orders-api
url=
for _ in 1 2 3; do
    port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    url="http://127.0.0.1:$port"
    : >"$work/err"
    target/release/password-bearer --port "$port" \
        --signing-key "$work/first.pem" --signing-key "$work/second.pem" \
        --issuer "$url" --audience "$audience" >/dev/null 2>"$work/err" &
    echo $! >"$work/pid"
    for _ in $(seq 200); do
        grep -qx "listening on $url" "$work/err" && break
        kill -0 "$(cat "$work/pid")" 2>/dev/null || break
        sleep 0.05
    done
    grep -qx "listening on $url" "$work/err" && break
    url=
done
[ -n "$url" ] || { echo "jwks/run.sh: the server did not start: $(cat "$work/err")" >&2; exit 1; }

failed=0
# run COMMAND...: its own ok/FAIL lines; a non-zero exit counts as failed.
run() { "$@" || failed=1; }
check() {
    if [ "$2" = "$3" ]; then echo "ok   $1"; else echo "FAIL $1: got ${2:0:200}, want $3"; failed=1; fi
}
token() {
    curl -sS --max-time 10 "$url/token" -d username=johndoe -d password=secret |
        sed -n 's/.*"access_token":"\([^"]*\)".*/\1/p'
}
me() {
    curl -sS --max-time 10 -o /dev/null -w '%{http_code}' -H "Authorization: Bearer $1" "$url/users/me"
}
# verify ALG TOKEN: both libraries accept TOKEN, signed with ALG.
verify() {
    run python3 "$here/check.py" verify "$url" "$audience" "$1" "$2"
    run node "$here/verify.mjs" verify "$url" "$audience" "$1" "$2"
}
reloads=0
# sighup: reload, and wait until the server says it did.
sighup() {
    reloads=$((reloads + 1))
    kill -HUP "$(cat "$work/pid")"
    for _ in $(seq 100); do
        [ "$(grep -c 'reloaded' "$work/err")" -ge "$reloads" ] && break
        sleep 0.05
    done
    check "SIGHUP reloads the keys" "$(grep -c 'reloaded' "$work/err")" "$reloads"
}

echo "== 1. Ed25519 signs, P-256 is the next key"
run python3 "$here/check.py" metadata "$url" "$url"
run python3 "$here/check.py" jwks "$url" "$work/old.pem" "$work/new.pem"
old=$(token)
verify EdDSA "$old"

echo "== 2. swap: P-256 signs, Ed25519 still published"
put new.pem first.pem
put old.pem second.pem
sighup
run python3 "$here/check.py" jwks "$url" "$work/new.pem" "$work/old.pem"
new=$(token)
verify ES256 "$new"
verify EdDSA "$old"

echo "== 3. drop the Ed25519 key (a fresh one is the next)"
put next.pem second.pem
sighup
run python3 "$here/check.py" jwks "$url" "$work/new.pem" "$work/next.pem"
run python3 "$here/check.py" reject "$url" "$audience" "$old"
run node "$here/verify.mjs" reject "$url" "$audience" "$old"
check "/users/me refuses the old token" "$(me "$old")" 401
verify ES256 "$new"
check "/users/me takes the ES256 token" "$(me "$new")" 200

if grep -q -- '-----BEGIN\|PRIVATE' "$work/err"; then
    echo "FAIL a key reached the server's log"; failed=1
fi
[ "$failed" -eq 0 ] && echo "jwks: every check passed" || echo "jwks: some checks FAILED"
exit "$failed"
