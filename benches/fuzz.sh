#!/usr/bin/env bash
# Coverage-guided fuzzing (libFuzzer, through cargo fuzz) of the parsers
# that read untrusted bytes: the /token form (urlencoded, and multipart
# with a dictionary of its syntax, fuzz/multipart.dict), the Authorization
# header and the JWT decoder. Not part of `cargo test`.
#
#   benches/fuzz.sh [SECONDS]      each target for SECONDS (default 60)
#
# Needs a nightly toolchain (rustup toolchain install nightly) and
# cargo-fuzz (cargo install cargo-fuzz). A crash stops the run and leaves
# its input in fuzz/artifacts/TARGET/.
set -euo pipefail
cd "$(dirname "$0")/../fuzz"
seconds=${1:-60}
command -v cargo-fuzz >/dev/null || { echo "fuzz.sh: cargo-fuzz is missing (cargo install cargo-fuzz)" >&2; exit 2; }
for target in form multipart bearer jwt; do
    echo "== $target, ${seconds}s"
    dict=()
    [ -f "$target.dict" ] && dict=(-dict="$target.dict")
    cargo +nightly fuzz run "$target" -- -max_total_time="$seconds" -max_len=4096 "${dict[@]}" 2>&1 |
        grep -E '^(#[0-9]+ *DONE|Done|==[0-9]+==|SUMMARY|artifact_prefix)' || true
    # cargo fuzz exits non-zero on a crash; PIPESTATUS keeps that from grep.
    [ "${PIPESTATUS[0]}" -eq 0 ] || { echo "fuzz.sh: $target crashed" >&2; exit 1; }
done
