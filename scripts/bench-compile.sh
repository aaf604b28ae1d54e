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

# Scaling of the BPF compiler with the number of egress CIDR rules (issue 12: was quadratic,
# 11,000 rules > 30 s). Near-linear means the per-rule time stays flat as n grows.
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
declare -A per_rule
for n in 1000 4000 11000; do
    python3 - "$n" > "$tmp/cidr-$n.yaml" <<'PY'
import sys
n = int(sys.argv[1])
print("""apiVersion: crd.varmor.org/v1beta1
kind: VarmorClusterPolicy
metadata: {name: cidr%d}
spec:
  target: {kind: Container, selector: {matchLabels: {x: y}}}
  policy:
    enforcer: BPF
    mode: EnhanceProtect
    enhanceProtect:
      bpfRawRules:
        network:
          egress:
            toDestinations:""" % n)
for i in range(n):
    a, b, c = (i >> 16) & 255, (i >> 8) & 255, i & 255
    plen = (8, 16, 24, 32)[i % 4]
    print("            - {qualifiers: [deny], cidr: 10.%d.%d.%d/%d, ports: [{port: %d, endPort: %d}]}" % (a, b, c, plen, 1 + i % 1000, 1 + i % 1000 + 50))
PY
    start=$(date +%s%N)
    "$bin" policy compile "$tmp/cidr-$n.yaml" --enforcer bpf >/dev/null
    end=$(date +%s%N)
    ms=$(( (end - start) / 1000000 ))
    per_rule[$n]=$(( (end - start) / n ))
    echo "bpf egress: $n CIDR rules: $ms ms ($(( (end - start) / n / 1000 )) us per rule)"
done
echo "RESULT cidr_1000_ms=$(( per_rule[1000] * 1000 / 1000000 )) cidr_11000_ms=$(( per_rule[11000] * 11000 / 1000000 )) per_rule_ratio_11000_vs_1000=$(awk "BEGIN{printf \"%.2f\", ${per_rule[11000]}/${per_rule[1000]}}")"
