#!/usr/bin/env bash
# Runs every cargo-fuzz target of fuzz/ for a bounded time and prints, per target, how many
# inputs libFuzzer executed and whether it crashed. Usage: scripts/fuzz.sh [SECONDS] (default 60).
# Not part of `make test`. Works on stable Rust (`-s none`: no sanitizer, which safe Rust does
# not need); with a nightly toolchain installed, set FUZZ_SANITIZER=address for ASan.
set -uo pipefail
cd "$(dirname "$0")/../fuzz"
seconds="${1:-60}"
sanitizer="${FUZZ_SANITIZER:-none}"

if ! cargo fuzz --version >/dev/null 2>&1; then
    echo "installing cargo-fuzz" >&2
    cargo install cargo-fuzz || exit 1
fi
cargo fuzz build -s "$sanitizer" -O || exit 1

status=0
printf '%-22s %12s %10s  %s\n' target executions exec/s result
for target in $(cargo fuzz list); do
    mkdir -p "corpus/$target" "artifacts/$target"
    log="$(mktemp)"
    cargo fuzz run -s "$sanitizer" -O "$target" "corpus/$target" "seeds/$target" -- \
        -max_total_time="$seconds" -print_final_stats=1 >"$log" 2>&1
    code=$?
    runs="$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    speed="$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)"
    if [ "$code" -eq 0 ]; then
        result="no crash"
    else
        result="CRASH (exit $code): $(ls "artifacts/$target" | head -3 | tr '\n' ' ') see $log"
        status=1
    fi
    printf '%-22s %12s %10s  %s\n' "$target" "${runs:-?}" "${speed:-?}" "$result"
done
exit "$status"
