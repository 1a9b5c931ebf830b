#!/usr/bin/env bash
# Real clients log in with multipart/form-data against the release binary:
# curl -F, and Python's requests and httpx, over TCP on 127.0.0.1. For CI
# (cargo test replays what these clients sent, from tests/fixtures/clients,
# without needing them). Then the OAuth2 client libraries users would
# reach for, requests-oauthlib and authlib, log in, refresh, auto-refresh
# and revoke (oauth_clients.py), all against the default build; then,
# against a second server built with the `clients` feature and given a
# clients file, fetch client credentials tokens and check them at
# /introspect (client_credentials.py; each check counts here). Needs
# curl, python3, and the requests, httpx, requests-oauthlib and authlib
# packages. Exits non-zero if any check failed.
#
#   interop/clients/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 2; }
done
python3 -c 'import requests, httpx, requests_oauthlib, authlib' ||
    { echo "run.sh: python3 needs requests, httpx, requests-oauthlib and authlib" >&2; exit 2; }

cargo build --release --quiet

work=$(mktemp -d)
cleanup() {
    for pid in "$work"/*.pid; do
        [ -f "$pid" ] && kill "$(cat "$pid")" 2>/dev/null || true
    done
    rm -rf "$work"
}
trap cleanup EXIT
# serve NAME ARGS...: the release binary with ARGS in the background, its
# stderr in $work/NAME.err, its pid in $work/NAME.pid; prints its address
# once its `listening on` line is whole. Called as $(serve ...): the
# server's stdout is not that pipe, or the substitution would wait for it.
serve() {
    local name=$1 addr=; shift
    : >"$work/$name.err"
    target/release/password-bearer --port 0 "$@" >/dev/null 2>"$work/$name.err" &
    echo $! >"$work/$name.pid"
    for _ in $(seq 200); do
        # Only a whole line: half a port is another port.
        addr=$(sed -n 's/^listening on http:\/\/\([0-9.:]*\)$/\1/p' "$work/$name.err")
        [ -n "$addr" ] && [ -z "$(tail -c1 "$work/$name.err")" ] && { echo "$addr"; return; }
        sleep 0.05
    done
    echo "run.sh: the $name server did not start: $(cat "$work/$name.err")" >&2
    exit 1
}
addr=$(serve main)
url="http://$addr"

passed=0
failed=0
# check NAME COMMAND...: runs COMMAND, counts it, says how it went.
check() {
    local name=$1; shift
    if out=$("$@" 2>&1); then
        passed=$((passed + 1)); echo "ok      $name"
    else
        failed=$((failed + 1)); echo "FAILED  $name: $out"
    fi
}

# curl_token ARGS...: curl ARGS against /token; prints the status, a
# space and the body.
curl_token() {
    curl -sS -o "$work/body" -w '%{http_code}' "$@" "$url/token"
    echo " $(cat "$work/body")"
}

# The token of a 200 answer works on /users/me; anything else fails.
me_with() {
    python3 - "$url" "$1" <<'PY'
import json, sys, urllib.request
url, answer = sys.argv[1], sys.argv[2]
status, _, body = answer.partition(" ")
assert status == "200", answer
token = json.loads(body)
assert token["token_type"] == "bearer", token
request = urllib.request.Request(url + "/users/me", headers={"Authorization": "Bearer " + token["access_token"]})
me = json.load(urllib.request.urlopen(request, timeout=10))
assert me["username"] == "johndoe", me
PY
}

curl_login() { me_with "$(curl_token -F username=johndoe -F password=secret)"; }
curl_wrong_password() {
    local answer
    answer=$(curl_token -F username=johndoe -F password=nope)
    [[ $answer == '400 {"detail":"Incorrect username or password","error":"invalid_grant",'* ]] || { echo "$answer"; return 1; }
}
curl_file() {
    local answer
    printf johndoe >"$work/johndoe.txt"
    answer=$(curl_token -F "username=@$work/johndoe.txt" -F password=secret)
    [[ $answer == '422 {"detail":[{"type":"string_type","loc":["body","username"],"msg":"Input should be a valid string","input":{"filename":"johndoe.txt","size":7}}],'* ]] || { echo "$answer"; return 1; }
}

# python_login MODULE: logs in with MODULE (requests or httpx), as fields
# sent as files without a filename and as data= beside a file, and uses
# each token.
python_login() {
    python3 - "$url" "$1" <<'PY'
import base64, importlib, json, sys
url, name = sys.argv[1], sys.argv[2]
client = importlib.import_module(name)
fields = {"username": (None, "johndoe"), "password": (None, "secret")}
form = {"grant_type": "password", "username": "johndoe", "password": "secret", "scope": "me"}
avatar = {"avatar": ("avatar.png", b"\x89PNG\r\n--x\r\n", "image/png")}
for kwargs, scope in [({"files": fields}, None), ({"data": form, "files": avatar}, "me")]:
    response = client.post(url + "/token", timeout=10, **kwargs)
    assert response.status_code == 200, (kwargs, response.status_code, response.text)
    assert response.headers["cache-control"] == "no-store", response.headers
    token = response.json()["access_token"]
    me = client.get(url + "/users/me", headers={"Authorization": "Bearer " + token}, timeout=10)
    assert me.status_code == 200 and me.json()["username"] == "johndoe", me.text
    claims = json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))
    assert claims.get("scope") == scope, claims
response = client.post(url + "/token", files={"username": (None, "johndoe"), "password": (None, "nope")}, timeout=10)
assert response.status_code == 400 and response.json()["error"] == "invalid_grant", response.text
PY
}

check "curl -F logs in" curl_login
check "curl -F with a wrong password is 400" curl_wrong_password
check "curl -F username=@file is 422 string_type" curl_file
check "requests logs in (files=, data= and files=)" python_login requests
check "httpx logs in (files=, data= and files=)" python_login httpx

# The OAuth2 libraries, against the same server: their versions and one
# line per check, counted with the checks above. A crash before or between
# its checks counts as one failure.
oauth_status=0
oauth_out=$(python3 interop/clients/oauth_clients.py "$url" 2>&1) || oauth_status=$?
printf '%s\n' "$oauth_out"
oauth_passed=$(grep -c '^ok ' <<<"$oauth_out" || true)
oauth_failed=$(grep -c '^FAILED ' <<<"$oauth_out" || true)
passed=$((passed + oauth_passed))
failed=$((failed + oauth_failed))
if [ "$oauth_status" -ne 0 ] && [ "$oauth_failed" -eq 0 ]; then
    failed=$((failed + 1)); echo "FAILED  oauth_clients.py exited with $oauth_status"
fi

# The client credentials grant, against a server with two clients whose
# secrets the binary makes: the binary built with the `clients` feature
# (the default build refuses --clients), which then stays in
# target/release (the other scripts build their own).
cargo build --release --features clients --quiet
service=$(target/release/password-bearer hash-client-secret --generate)
introspector=$(target/release/password-bearer hash-client-secret --generate)
cat >"$work/clients.json" <<JSON
{"service": {"client_id": "service", "secret_hash": "$(sed -n 2p <<<"$service")", "scopes": ["items", "me"]},
 "introspector": {"client_id": "introspector", "secret_hash": "$(sed -n 2p <<<"$introspector")", "introspect": true}}
JSON
addr2=$(serve clients --clients "$work/clients.json")
cc_status=0
cc_out=$(python3 interop/clients/client_credentials.py "http://$addr2" \
    "$(sed -n 1p <<<"$service")" "$(sed -n 1p <<<"$introspector")" 2>&1) || cc_status=$?
printf '%s\n' "$cc_out"
cc_passed=$(grep -c '^ok ' <<<"$cc_out" || true)
cc_failed=$(grep -c '^FAILED ' <<<"$cc_out" || true)
passed=$((passed + cc_passed))
failed=$((failed + cc_failed))
if [ "$cc_status" -ne 0 ] && [ "$cc_failed" -eq 0 ]; then
    failed=$((failed + 1)); echo "FAILED  client_credentials.py exited with $cc_status"
fi

echo "clients: $passed passed, $failed failed"
[ "$failed" -eq 0 ]
