#!/usr/bin/env bash
# The test command: installs dependencies (as root), builds with warnings as errors, runs every tier
# this machine can run. Tool-checked tests fail (not skip) when BULWARK_REQUIRE_TOOLS=1. As root,
# the kernel tier (BPF LSM) runs too: directly if this kernel loads BPF LSM programs, else in a VM.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] && scripts/install-deps.sh
swift format lint --strict --recursive --configuration .swift-format Sources Tests Package.swift Plugins
# our shell scripts (scripts/vmrun is the team's shared VM runner, kept as it is upstream)
shellcheck scripts/*.sh .ci/run
# the committed protobuf code is what proto/ generates
scripts/generate-proto.sh --check
swift build --build-tests -Xswiftc -warnings-as-errors
if [ "$(id -u)" = 0 ]; then export BULWARK_REQUIRE_TOOLS=1; fi
swift test --skip-build 2>&1 | tee /tmp/bulwark-test.log
# the framework lists every skipped test with its reason
grep -E "skipped|was cancelled" /tmp/bulwark-test.log | grep -E "^. Test|^. Suite" || true
# every fuzzing harness for a short fixed time under libFuzzer + AddressSanitizer (longer runs:
# scripts/fuzz.sh NAME SECONDS)
BULWARK_FUZZ_SEED=${BULWARK_FUZZ_SEED:-1} scripts/fuzz.sh all "${BULWARK_FUZZ_SECONDS:-20}"
if [ "$(id -u)" = 0 ]; then
    scripts/kernel-tests.sh 2>&1 | tee /tmp/bulwark-kernel-tests.log
else
    echo "skipped: kernel tier (BPF LSM) needs root"
fi
