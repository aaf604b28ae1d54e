#!/usr/bin/env bash
# Runs a fuzzing harness under libFuzzer (AddressSanitizer on): scripts/fuzz.sh NAME [SECONDS]
# NAME is one of: policy oci-json hook-state argv nri-wire audit-line socket-request, or `all`
# (each in turn). Seeds: fuzz/seeds/NAME (+ the built-in policies and vArmor's examples for
# `policy`); the growing corpus is kept in .build/fuzz-corpus/NAME, crashing inputs go to
# .build/fuzz-artifacts/. Replay an input with an ordinary build: .build/debug/bulwark-fuzz NAME FILE
# BULWARK_FUZZ_SEED=N fixes libFuzzer's random seed (the test run uses one, so a gate run explores
# the same inputs each time; a longer exploratory run leaves it unset).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
name=${1:?usage: scripts/fuzz.sh NAME|all [SECONDS]}
seconds=${2:-60}
harnesses=(policy oci-json hook-state argv nri-wire audit-line socket-request)
BULWARK_FUZZ_BUILD=1 swift build --scratch-path .build/fuzz --product bulwark-fuzz >/dev/null
bin=.build/fuzz/debug/bulwark-fuzz
run() {
    local h=$1 corpus=.build/fuzz-corpus/$1
    mkdir -p "$corpus" .build/fuzz-artifacts
    cp -n fuzz/seeds/"$h"/* "$corpus"/ 2>/dev/null || true
    if [ "$h" = policy ]; then
        cp -n packaging/policies/*.yaml "$corpus"/ 2>/dev/null || true
        cp -n ../shared/reference/varmor-examples/*.yaml "$corpus"/ 2>/dev/null || true
    fi
    local log=.build/fuzz-artifacts/$h-run$$.log
    local seed=()
    [ -n "${BULWARK_FUZZ_SEED:-}" ] && seed=(-seed="$BULWARK_FUZZ_SEED")
    if ! BULWARK_FUZZ=$h "$bin" "${seed[@]}" -max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -max_len=65536 \
        -print_final_stats=1 -artifact_prefix=.build/fuzz-artifacts/"$h"- "$corpus" >"$log" 2>&1; then
        grep -E "Fatal error|invariant:|ERROR: AddressSanitizer|SUMMARY" "$log" | head -5 || true
        tail -40 "$log"
        # the input itself, so a CI log is enough to replay it (base64 -d > FILE; bulwark-fuzz NAME FILE)
        for a in .build/fuzz-artifacts/"$h"-crash-* .build/fuzz-artifacts/"$h"-timeout-* .build/fuzz-artifacts/"$h"-oom-*; do
            [ -f "$a" ] || continue
            echo "input $a ($(wc -c <"$a") bytes), base64:"
            head -c 65536 "$a" | base64 -w 0
            echo
        done
        echo "fuzz $h: FAILED (input in .build/fuzz-artifacts/$h-*; log $log)"
        return 1
    fi
    local execs cov
    execs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' || echo 0)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*' || echo 0)
    echo "fuzz $h: ${seconds}s, $execs executions, coverage $cov, corpus $(find "$corpus" -type f | wc -l) inputs, 0 findings"
}
if [ "$name" = all ]; then
    status=0
    for h in "${harnesses[@]}"; do run "$h" || status=1; done
    exit $status
fi
run "$name"
