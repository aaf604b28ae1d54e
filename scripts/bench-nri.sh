#!/usr/bin/env bash
# CreateContainer latency of the NRI plugin (p50/p99) with BENCH_POLICIES policies (default 1000),
# through a real unix socket with the Swift runtime peer, release build.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bulwark-bench-nri >/dev/null
# policies spread over 50 namespaces (the usual case), then all in the pod's own namespace (worst)
.build/release/bulwark-bench-nri "${BENCH_POLICIES:-1000}" "${BENCH_CALLS:-2000}" 50
.build/release/bulwark-bench-nri "${BENCH_POLICIES:-1000}" "${BENCH_CALLS:-2000}" 1
