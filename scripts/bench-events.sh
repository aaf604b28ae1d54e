#!/usr/bin/env bash
# Events per second from a BPF ring-buffer record to node-socket subscribers (0, 1, 10), through
# the agent's pipeline, in a release build. BENCH_EVENTS sets the number of records (default 200000).
# Then one subscriber + the violation log at a steady 50,000 events/s, open loop (drops counted).
# Ends with `RESULT events_per_s_1sub=… lines_per_s_10sub=… drops_at_50k_per_s=…`.
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bulwark-bench-events >/dev/null
.build/release/bulwark-bench-events "${BENCH_EVENTS:-200000}" --subscribers 0,1,10
