#!/usr/bin/env bash
# Micro-benchmark (not a test): compile every in-scope vArmor example for each of its enforcers
# in one process per enforcer, and print time per policy. Release build.
set -euo pipefail
cd "$(dirname "$0")/.."
ex=${1:-../shared/reference/varmor-examples}
swift build -c release --product bulwark >/dev/null
bin=.build/release/bulwark
files=()
for f in "$ex"/*.yaml; do
    case "$f" in *networkproxy*|*PR303__*|*deploy*|*sys-admin-app*|*5-mutiple*|*v0.4.0__bpf-program*) continue ;; esac
    files+=("$f")
done
n=$("$bin" policy validate "${files[@]}" 2>/dev/null | wc -l)
for e in apparmor seccomp bpf; do
    start=$(date +%s%N)
    for _ in 1 2 3 4 5 6 7 8 9 10; do "$bin" policy compile "${files[@]}" --enforcer "$e" --disk-devices vda >/dev/null 2>&1; done
    end=$(date +%s%N)
    echo "$e: $n policies x10 runs: $(( (end - start) / 10 / 1000 )) us per run (process start included), $(( (end - start) / 10 / n / 1000 )) us per policy"
done
