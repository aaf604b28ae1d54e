#!/usr/bin/env bash
# The test command: installs dependencies (as root), builds with warnings as errors, runs every tier
# this machine can run. Tool-checked tests fail (not skip) when BULWARK_REQUIRE_TOOLS=1. As root,
# the kernel tier (BPF LSM) runs too: directly if this kernel loads BPF LSM programs, else in a VM.
# Each stage prints how long it took.
set -euo pipefail
cd "$(dirname "$0")/.."
began=$SECONDS
stage() {
    local start=$SECONDS
    echo "== $1"
    shift
    "$@"
    echo "== done in $((SECONDS - start)) s (total $((SECONDS - began)) s)"
}
[ "$(id -u)" = 0 ] && stage "dependencies" scripts/install-deps.sh
stage "format" swift format lint --strict --recursive --configuration .swift-format Sources Tests Package.swift Plugins
# our shell scripts (scripts/vmrun is the team's shared VM runner, kept as it is upstream)
stage "shellcheck" shellcheck scripts/*.sh .ci/run
# the committed protobuf code is what proto/ generates
stage "protobuf" scripts/generate-proto.sh --check
# the DaemonSet, RBAC, CRDs and the Helm chart (rendered) against the Kubernetes schemas
stage "manifests" python3 scripts/check-manifests.py
stage "build" swift build --build-tests -Xswiftc -warnings-as-errors
# the DaemonSet's image (static executables on Debian minbase), which the host tests run with podman
[ "$(id -u)" = 0 ] && stage "image" scripts/build-image.sh
if [ "$(id -u)" = 0 ]; then export BULWARK_REQUIRE_TOOLS=1; fi
host_tests() {
    swift test --skip-build 2>&1 | tee /tmp/bulwark-test.log
    # the framework lists every skipped test with its reason
    grep -E "skipped|was cancelled" /tmp/bulwark-test.log | grep -E "^. Test|^. Suite" || true
}
stage "host tests" host_tests
# every fuzzing harness for a short fixed time under libFuzzer + AddressSanitizer (longer runs:
# scripts/fuzz.sh NAME SECONDS)
stage "fuzz" env BULWARK_FUZZ_SEED="${BULWARK_FUZZ_SEED:-1}" scripts/fuzz.sh all "${BULWARK_FUZZ_SECONDS:-20}"
if [ "$(id -u)" = 0 ]; then
    # the wrapper's "first act denied on every start" loop: 60 starts per runtime here (≈ 1.7 s a
    # start in the emulated VM); scripts/kernel-tests.sh alone runs 200, BULWARK_KERNEL_RUNS more
    kernel_tier() {
        BULWARK_KERNEL_RUNS="${BULWARK_KERNEL_RUNS:-60}" scripts/kernel-tests.sh 2>&1 | tee /tmp/bulwark-kernel-tests.log
    }
    stage "kernel tier" kernel_tier
else
    echo "skipped: kernel tier (BPF LSM) needs root"
fi
