#!/usr/bin/env bash
# The release binary with --metrics-addr, a few requests made with curl,
# then its GET /metrics read by the Prometheus project's own Python client
# parser (prometheus_client.parser.text_string_to_metric_families), which
# must accept every line; check.py asserts the families and the counts
# those requests make. Also: the metrics listener answers 404 and 405 to
# anything but GET /metrics, and the API's listener has no /metrics. For
# CI; needs curl, python3 and the prometheus-client package.
#
#   interop/metrics/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 2; }
done
python3 -c 'import prometheus_client' ||
    { echo "run.sh: python3 needs the prometheus-client package" >&2; exit 2; }

cargo build --release --quiet

work=$(mktemp -d)
cleanup() {
    [ -f "$work/pid" ] && kill "$(cat "$work/pid")" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT
: >"$work/err"
target/release/password-bearer --port 0 --metrics-addr 127.0.0.1:0 --no-login-log \
    >/dev/null 2>"$work/err" &
echo $! >"$work/pid"
api=
metrics=
for _ in $(seq 200); do
    # Only whole lines: half a port is another port.
    api=$(sed -n 's/^listening on http:\/\/\([0-9.:]*\)$/\1/p' "$work/err")
    metrics=$(sed -n 's/^metrics on http:\/\/\([0-9.:]*\)\/metrics$/\1/p' "$work/err")
    [ -n "$api" ] && [ -n "$metrics" ] && [ -z "$(tail -c1 "$work/err")" ] && break
    api=
    sleep 0.05
done
[ -n "$api" ] || { echo "run.sh: the server did not start: $(cat "$work/err")" >&2; exit 1; }

# status METHOD URL [CURL ARGS...]: prints the status code.
status() {
    local method=$1 url=$2; shift 2
    curl -sS -o /dev/null -w '%{http_code}' -X "$method" "$@" "$url"
}
expect() {
    local want=$1 got=$2 what=$3
    [ "$got" = "$want" ] || { echo "run.sh: $what: $got, not $want" >&2; exit 1; }
}

login=$(curl -sS -d username=johndoe -d password=secret "http://$api/token")
access=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["access_token"])' <<<"$login")
refresh=$(python3 -c 'import json, sys; print(json.load(sys.stdin)["refresh_token"])' <<<"$login")
expect 400 "$(status POST "http://$api/token" -d username=johndoe -d password=wrong)" "a wrong password"
expect 400 "$(status POST "http://$api/token" -d username=nobody -d password=wrong)" "an unknown user"
for _ in 1 2 3; do
    expect 200 "$(status GET "http://$api/users/me" -H "Authorization: Bearer $access")" "GET /users/me"
done
expect 401 "$(status GET "http://$api/users/me")" "GET /users/me without a token"
expect 200 "$(status POST "http://$api/token" -d grant_type=refresh_token -d "refresh_token=$refresh")" "a refresh"
expect 404 "$(status GET "http://$api/metrics")" "the API's /metrics"
expect 404 "$(status GET "http://$metrics/")" "the metrics listener's /"
expect 405 "$(status POST "http://$metrics/metrics")" "POST /metrics"

curl -sS -D "$work/head" -o "$work/scrape" "http://$metrics/metrics"
grep -qi '^content-type: text/plain; version=0.0.4; charset=utf-8' "$work/head" ||
    { echo "run.sh: the scrape's content type: $(cat "$work/head")" >&2; exit 1; }
python3 interop/metrics/check.py "$work/scrape"
