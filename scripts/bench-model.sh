#!/usr/bin/env bash
# What behaviour modeling costs (issue 14): a syscall with the sys_enter recorder detached, attached
# and recording this namespace; spawn+wait with and without the process tracker; recorded events
# per second into a model. Root, on this machine's kernel (BTF tracepoints load here). Release build.
# Ends with `RESULT syscall_ns_detached=… syscall_ns_attached=… syscall_ns_recorded=…
# recorded_overhead_pct=… spawn_us_no_tracker=… spawn_us_tracker=… model_events_per_s=…`.
# Env: BENCH_ROUNDS (7), BENCH_SYSCALLS (2000000), BENCH_SPAWNS (300), BENCH_EVENTS (200000).
set -euo pipefail
cd "$(dirname "$0")/.."
swift build -c release --product bulwark-bench-model >&2
# in a mount namespace of its own, as a container's processes are
exec unshare -m "$(swift build -c release --show-bin-path)/bulwark-bench-model"
