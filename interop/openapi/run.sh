#!/usr/bin/env bash
# /openapi.json, with sessions on (the default) and off, checked by
# openapi-spec-validator (the OpenAPI 3.1 schema and its rules); then each
# document's /token form schema against sample bodies with jsonschema
# (Draft 2020-12): the password grant needs username and password, the
# refresh grant (sessions on) a refresh_token, and a body is one grant or
# the other, never both. For CI; needs curl, python3 and the
# openapi-spec-validator package (which brings jsonschema).
#
#   interop/openapi/run.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
for tool in curl python3; do
    command -v "$tool" >/dev/null || { echo "run.sh: $tool is missing" >&2; exit 2; }
done
python3 -c 'import openapi_spec_validator, jsonschema' ||
    { echo "run.sh: python3 needs the openapi-spec-validator package" >&2; exit 2; }

cargo build --release --quiet

work=$(mktemp -d)
pid=
cleanup() {
    [ -n "$pid" ] && kill "$pid" 2>/dev/null || true
    rm -rf "$work"
}
trap cleanup EXIT

# fetch NAME [FLAGS...]: the document of a server started with FLAGS, into
# $work/NAME.json.
fetch() {
    local name=$1; shift
    : >"$work/err"
    target/release/password-bearer --port 0 --no-login-log "$@" >/dev/null 2>"$work/err" &
    pid=$!
    local api=
    for _ in $(seq 200); do
        api=$(sed -n 's/^listening on http:\/\/\([0-9.:]*\)$/\1/p' "$work/err")
        [ -n "$api" ] && break
        sleep 0.05
    done
    [ -n "$api" ] || { echo "run.sh: the server did not start: $(cat "$work/err")" >&2; exit 1; }
    curl -sSf -o "$work/$name.json" "http://$api/openapi.json"
    kill "$pid"
    wait "$pid" || true
    pid=
}
fetch sessions
fetch tutorial --refresh-token-ttl-days 0

python3 - "$work/sessions.json" "$work/tutorial.json" <<'PY'
import json, sys
from jsonschema import Draft202012Validator
from openapi_spec_validator import validate

def form_schema(doc):
    """The /token form's schema, resolvable within the document."""
    form = doc["paths"]["/token"]["post"]["requestBody"]["content"][
        "application/x-www-form-urlencoded"]["schema"]
    return Draft202012Validator({**form, "components": doc["components"]})

PASSWORD = {"username": "johndoe", "password": "secret"}
REFRESH = {"grant_type": "refresh_token", "refresh_token": "r"}
for path, sessions in zip(sys.argv[1:], (True, False)):
    doc = json.load(open(path))
    validate(doc)
    form = form_schema(doc)
    cases = [
        (PASSWORD, True),
        ({**PASSWORD, "grant_type": "password", "scope": "me items"}, True),
        ({"username": "johndoe"}, False),
        ({"password": "secret"}, False),
        ({"grant_type": "password"}, False),
        ({}, False),
        (REFRESH, sessions),
        ({"grant_type": "refresh_token"}, False),
        ({"refresh_token": "r"}, False),
        ({"grant_type": "other", **PASSWORD}, False),
    ]
    for body, valid in cases:
        errors = [e.message for e in form.iter_errors(body)]
        assert (not errors) == valid, (path, body, valid, errors)
    print(f"ok   {'sessions on' if sessions else 'sessions off'}: "
          f"OpenAPI {doc['openapi']} valid, /token form checked on {len(cases)} bodies")
PY
