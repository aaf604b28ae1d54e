#!/usr/bin/env bash
# CreateContainer latency of the NRI plugin (p50/p99) with BENCH_POLICIES policies (default 1000),
# through a real unix socket with the Swift runtime peer, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bulwark-bench-nri >/dev/null
# policies spread over 50 namespaces (the usual case), then all in the pod's own namespace (worst);
# ends with `RESULT p99_ms_one_namespace=… p99_ms_spread=…` (the worse of matching/unmatched pods)
spread=$(.build/release/bulwark-bench-nri "${BENCH_POLICIES:-1000}" "${BENCH_CALLS:-2000}" 50)
one=$(.build/release/bulwark-bench-nri "${BENCH_POLICIES:-1000}" "${BENCH_CALLS:-2000}" 1)
printf '%s\n' "$spread" "$one" | grep -v '^p99_ms='
p99() { printf '%s\n' "$1" | sed -n 's/^p99_ms=//p'; }
echo "RESULT p99_ms_one_namespace=$(p99 "$one") p99_ms_spread=$(p99 "$spread")"
