#!/usr/bin/env bash
# Events per second from a BPF ring-buffer record to node-socket subscribers (0, 1, 10), through
# the agent's pipeline, in a release build. BENCH_EVENTS sets the number of records (default 200000).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bulwark-bench-events >/dev/null
.build/release/bulwark-bench-events "${BENCH_EVENTS:-200000}" --subscribers 0,1,10
