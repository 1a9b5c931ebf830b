#!/usr/bin/env bash
# The /docs demo in a real browser, with no network but the server's:
# builds the release binary, gets Swagger UI the way docs/configuration.md
# ("/docs without internet") tells users to (`npm pack
# swagger-ui-dist@VERSION`, unpacked), starts
# `password-bearer --port 0 --docs-assets-dir DIR`, and drives /docs in
# Debian's Chromium with playwright-core (docs.test.mjs).
#
# Needs: cargo, Node.js >= 20 with npm, the npm registry (npm ci, npm pack),
# and Chromium at $CHROMIUM (default /usr/bin/chromium: `apt-get install -y
# chromium`). Playwright never downloads a browser here.
#
# Environment:
#   CHROMIUM=PATH                 the browser (default /usr/bin/chromium)
#   BROWSER_TEST_SKIP_MULTIPART=1 skip only the FormData (multipart) login
#
# Exits non-zero on any failure. Screenshots of a failing step are kept in
# a temporary directory whose path is printed; everything else is removed.
set -euo pipefail

root=$(cd "$(dirname "$0")/../.." && pwd)
cd "$root"
here=interop/browser
export CHROMIUM=${CHROMIUM:-/usr/bin/chromium}
# Belt and braces: playwright-core has no install step, and installs run
# with --ignore-scripts (swagger-ui-dist's dependency @scarf/scarf would
# otherwise try to report the install over the network).
export PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD=1 SCARF_ANALYTICS=false

started=$SECONDS
step() { printf '== %s (%ds)\n' "$*" $((SECONDS - started)); }
die() { printf 'run.sh: %s\n' "$*" >&2; exit 1; }

[ -x "$CHROMIUM" ] || die "no Chromium at $CHROMIUM (Debian: apt-get install -y chromium)"
command -v node >/dev/null || die "node not found (Node.js >= 20 is needed)"
command -v npm >/dev/null || die "npm not found"
node -e 'process.exit(+process.versions.node.split(".")[0] >= 20 ? 0 : 1)' ||
    die "Node.js >= 20 is needed, this is $(node --version)"

tmp=$(mktemp -d "${TMPDIR:-/tmp}/password-bearer-run.XXXXXX")
server_pid=
cleanup() {
    if [ -n "$server_pid" ] && kill -0 "$server_pid" 2>/dev/null; then
        kill -TERM "$server_pid" 2>/dev/null || true
        wait "$server_pid" 2>/dev/null || true
    fi
    rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

step "cargo build --release"
cargo build --release
target=${CARGO_TARGET_DIR:-target}
case $target in /*) ;; *) target=$root/$target ;; esac
binary=$target/release/password-bearer
[ -x "$binary" ] || die "no $binary after the build"

step "npm ci (playwright-core, swagger-ui-dist; no install scripts)"
(cd "$here" && npm ci --ignore-scripts --no-audit --no-fund --prefer-offline --loglevel=error)

# Swagger UI exactly as docs/configuration.md has users get it: `npm pack` of the
# version the lock file pins, unpacked (the tarball's `package/` folder).
# The tarball must be the very one the lock file records (same sha512), so
# the docs' version, the lock and what is tested cannot drift apart.
lock_field() {
    node -p "require('./$here/package-lock.json').packages['node_modules/swagger-ui-dist'].$1"
}
version=$(lock_field version)
integrity=$(lock_field integrity)
step "npm pack swagger-ui-dist@$version, unpacked"
(cd "$tmp" && npm pack "swagger-ui-dist@$version" --json --prefer-offline --loglevel=error >pack.json)
packed=$(node -p "require('$tmp/pack.json')[0].integrity")
[ "$packed" = "$integrity" ] ||
    die "npm pack swagger-ui-dist@$version gave $packed, the lock file says $integrity"
tar -xzf "$tmp/swagger-ui-dist-$version.tgz" -C "$tmp"
assets=$tmp/package
for f in swagger-ui-bundle.js swagger-ui.css; do
    [ -s "$assets/$f" ] || die "no $f in swagger-ui-dist@$version"
done

step "start the server"
# Only the flags below count: no PASSWORD_BEARER_* setting from the caller's
# environment (a PASSWORD_BEARER_NO_DOCS, say) may change what is tested.
while read -r var; do unset "$var"; done < <(compgen -e | grep '^PASSWORD_BEARER_' || true)
# Created first: the background job opens it only when it gets to run, and
# the loop below must not find it missing.
: >"$tmp/server.log"
"$binary" --port 0 --docs-assets-dir "$assets" --grace-period-seconds 5 \
    2>"$tmp/server.log" &
server_pid=$!
base=
for _ in $(seq 300); do # up to 30 s
    base=$(sed -n 's/^listening on \(http:\/\/127\.0\.0\.1:[0-9][0-9]*\)$/\1/p' "$tmp/server.log" | head -n 1)
    [ -n "$base" ] && break
    kill -0 "$server_pid" 2>/dev/null || break
    sleep 0.1
done
if [ -z "$base" ]; then
    cat "$tmp/server.log" >&2
    die "the server did not print its address"
fi
echo "server at $base (pid $server_pid)"

step "browser test (docs.test.mjs)"
status=0
(cd "$here" && BASE_URL=$base node docs.test.mjs) || status=$?

step "stop the server"
kill -TERM "$server_pid"
server_status=0
wait "$server_pid" || server_status=$?
server_pid=
if [ "$status" -ne 0 ] || [ "$server_status" -ne 0 ]; then
    echo "-- server log (exit status $server_status):"
    cat "$tmp/server.log"
fi
[ "$server_status" -eq 0 ] || die "the server exited with status $server_status"
[ "$status" -eq 0 ] || die "the browser test failed"
step "done"
