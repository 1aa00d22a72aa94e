#!/usr/bin/env bash
# Runs every accounting fuzz target for a bounded total time, split evenly between them:
#   sse_usage     SSE parser + usage tap + injected-usage filter (split invariance)
#   request_body  prompt estimate + provider-held prompt detection + include_usage rewrite (valid JSON out)
#   custom_cost   cf-aig-custom-cost parser (accepted values respect the per-request maximum)
# Exits non-zero when the fuzzer finds a crash. Usage: scripts/fuzz-ci.sh [total seconds]   (default 60)
#
# cargo-fuzz needs nightly-only rustc flags (-Z sanitizer, coverage options). Only stable Rust is available
# here, so RUSTC_BOOTSTRAP=1 lets the stable compiler accept them; the fuzz crate is outside the workspace
# (its own [workspace] table), so this never leaks into normal builds.
set -euo pipefail

seconds="${1:-60}"
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
targets=(sse_usage request_body custom_cost)
# At least one second each: libFuzzer treats -max_total_time=0 as "no limit".
per_target=$(( seconds / ${#targets[@]} ))
(( per_target >= 1 )) || per_target=1

if ! cargo fuzz --version >/dev/null 2>&1; then
    cargo install cargo-fuzz --locked
fi

export RUSTC_BOOTSTRAP=1
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$root/fuzz/target}"
cd "$root/fuzz"

seed() { # seed <target> <name> <bytes as printf format>
    local dir="$root/fuzz/corpus/$1"
    mkdir -p "$dir"
    [ -e "$dir/seed-$2" ] || printf "$3" > "$dir/seed-$2"
}

# sse_usage: the SSE fixtures, prefixed with a control byte choosing the format.
for fixture in "$root"/crates/accounting/tests/fixtures/*; do
    name="$(basename "$fixture")"
    for control in 00 03 04 05; do
        file="$root/fuzz/corpus/sse_usage/seed-$control-$name"
        mkdir -p "$(dirname "$file")"
        [ -e "$file" ] || { printf "\\x$control" > "$file"; cat "$fixture" >> "$file"; }
    done
done

# request_body: request shapes of each API, with and without stream_options and provider-held prompts.
seed request_body chat '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi \\"there\\""}]}'
seed request_body options '{"stream":true,"stream_options":{"include_obfuscation":false,"include_usage":null}}'
seed request_body responses '{"model":"o3","previous_response_id":"resp_1","input":[{"role":"user","content":[{"type":"input_file","file_id":"f"}]}]}'
seed request_body gemini '{"cachedContent":"c/1","contents":[{"parts":[{"text":"a"},{"inlineData":{"mimeType":"image/png","data":"AA"}}]}]}'
seed request_body anthropic '{"model":"claude","messages":[{"role":"user","content":[{"type":"image","source":{"type":"url","url":"u"}}]}],"tools":[{"name":"f","input_schema":{"properties":{"file":{}}}}]}'

# custom_cost: a control byte choosing the maximum, then the header.
seed custom_cost total '\x03{"total_cost":0.0123}'
seed custom_cost per_token '\x03{"per_token_in":"3e-6","per_token_out":1.5e-5}'
seed custom_cost huge '\x02{"per_token_in":"1e9223372036854775807","per_token_out":0}'
seed custom_cost above '\x03{"total_cost":10000000000}'

status=0
for target in "${targets[@]}"; do
    echo "== $target: ${per_target}s"
    cargo fuzz run "$target" "$root/fuzz/corpus/$target" -- \
        -max_total_time="$per_target" -rss_limit_mb=2048 -max_len=65536 || status=$?
done
exit "$status"
