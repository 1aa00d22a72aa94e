#!/usr/bin/env bash
# Runs the accounting fuzz target (SSE parser + usage tap + injected-usage filter) for a bounded time.
# Exits non-zero when the fuzzer finds a crash. Usage: scripts/fuzz-ci.sh [seconds]   (default 60)
#
# cargo-fuzz needs nightly-only rustc flags (-Z sanitizer, coverage options). Only stable Rust is available
# here, so RUSTC_BOOTSTRAP=1 lets the stable compiler accept them; the fuzz crate is outside the workspace
# (its own [workspace] table), so this never leaks into normal builds.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/fuzz/target}"
cd "$root/fuzz"

# Seed the corpus with the SSE fixtures (prefixed with a control byte choosing the format).
corpus="$root/fuzz/corpus/sse_usage"
mkdir -p "$corpus"
for fixture in "$root"/crates/accounting/tests/fixtures/*; do
    name="$(basename "$fixture")"
    for control in 00 03 04 05; do
        seed="$corpus/seed-$control-$name"
        [ -e "$seed" ] || { printf "\\x$control" > "$seed"; cat "$fixture" >> "$seed"; }
    done
done

cargo fuzz run sse_usage "$corpus" -- -max_total_time="$seconds" -rss_limit_mb=2048 -max_len=65536
