#!/usr/bin/env bash
# Per-operation overhead of the BPF LSM enforcer (issue 3): openat+close, connect to a closed port,
# execve of a static binary; detached vs attached-unbound vs bound with 0/64/1024 rules per type,
# as ratios to detached, measured side by side in one run. Runs directly where BPF LSM loads,
# otherwise in the VM (scripts/vmrun; TCG there, so compare ratios, not absolute times). Ends with
# `RESULT file_open_unbound_pct=… file_open_1024_pct=… connect_1024_pct=…` (program time per call as
# a percentage of the detached operation).
# Env: BENCH_ROUNDS (7), BENCH_OPEN_N (20000), BENCH_CONNECT_N (5000), BENCH_EXEC_N (200).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bulwark-bench-bpf >&2
bin=$(swift build -c release --show-bin-path)/bulwark-bench-bpf
if swift build -c release --product bulwark >/dev/null 2>&1 && "$(swift build -c release --show-bin-path)/bulwark" enforcer probe >/dev/null 2>&1; then
    exec "$bin"
fi
exec scripts/vmrun -- "$bin"
