#!/usr/bin/env bash
# benches/crypto_choice/measure.sh: the clean release build time and the
# binary size of each variant (no crypto, ring, RustCrypto), then the sign
# and verify times of ring and RustCrypto.
set -euo pipefail
cd "$(dirname "$0")"
out=${OUT:-/tmp/crypto-choice}
work=$(mktemp -d); trap 'rm -rf "$work"' EXIT
# PKCS#8 in DER, as the PEM files the server reads hold it.
openssl genpkey -algorithm ed25519 | openssl pkcs8 -topk8 -nocrypt -outform DER -out "$work/ed.der"
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 | openssl pkcs8 -topk8 -nocrypt -outform DER -out "$work/es.der"
# TIMES_ONLY=1: the binaries of an earlier run, timed again (under the
# exclusive bench lock).
[ -n "${TIMES_ONLY:-}" ] || for variant in none ring rustcrypto; do
    features=(); [ "$variant" = none ] || features=(--features "$variant")
    rm -rf "$out/$variant"
    start=$(date +%s.%N)
    cargo build --release --quiet --target-dir "$out/$variant" "${features[@]}"
    end=$(date +%s.%N)
    size=$(stat -c %s "$out/$variant/release/crypto-choice")
    printf '%s: clean build %.1f s, binary %d B\n' "$variant" "$(echo "$end - $start" | bc)" "$size"
done
for variant in ring rustcrypto; do
    echo "== $variant"; "$out/$variant/release/crypto-choice" "$work/ed.der" "$work/es.der" "${ROUNDS:-300}" | tail -4
done
