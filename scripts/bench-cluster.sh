#!/usr/bin/env bash
# Cluster-mode scale: BENCH_PODS pods (10000), BENCH_SERVICES services with EndpointSlices (5000),
# BENCH_POLICIES policies (1000): the inventory's memory, a full compile, an address change's
# recompile (p50/p99), and bulwarkd against the stand-in API server (memory once synced, CPU under
# 100 address changes a second). Release build; ends with a `RESULT k=v …` line.
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
swift build -c release --product bulwark-bench-cluster >/dev/null
swift build -c release --product bulwarkd >/dev/null
.build/release/bulwark-bench-cluster "${BENCH_PODS:-10000}" "${BENCH_SERVICES:-5000}" "${BENCH_POLICIES:-1000}"
