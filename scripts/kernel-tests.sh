#!/usr/bin/env bash
# The kernel tier: the BPF LSM tests (Tests/BulwarkKernelTests) and `bulwark selftest`, on a
# kernel that loads BPF LSM programs. Runs them directly when this machine's kernel does;
# otherwise boots Debian's kernel with lsm=...,bpf in a throwaway qemu VM (scripts/vmrun) and runs
# them there. Needs root and a prior `swift build --build-tests`. BULWARK_KERNEL_FILTER narrows the
# tests (a swift-testing filter, e.g. AppArmorKernelTests).
set -euo pipefail
cd "$(dirname "$0")/.."
bin=.build/debug/bulwark

if [ "${1:-}" = --inside ]; then
    echo "== kernel tier on $(uname -r) ($(cat /sys/kernel/security/lsm 2>/dev/null))"
    "$bin" enforcer probe
    # one suite at a time: every suite drives the same pinned enforcer, and a run with suites in
    # parallel once saw the audit-only wrapper test's `cat /etc/motd` fail (not reproduced alone)
    # the test binary itself, not `swift test`: SwiftPM would compile every package manifest
    # again before running anything (minutes under emulation)
    BULWARK_REQUIRE_KERNEL=1 .build/debug/bulwarkPackageTests.xctest --testing-library swift-testing \
        --no-parallel --filter "${BULWARK_KERNEL_FILTER:-BulwarkKernelTests}"
    "$bin" selftest --pin-path /sys/fs/bpf/bulwark-selftest
    "$bin" enforcer unload --pin-path /sys/fs/bpf/bulwark-selftest
    exit 0
fi

[ "$(id -u)" = 0 ] || { echo "skipped: kernel tier needs root"; exit 0; }
if "$bin" enforcer probe >/dev/null 2>&1; then
    exec "$0" --inside
fi
echo "this kernel cannot run the BPF enforcer:"
"$bin" enforcer probe 2>&1 | sed 's/^/  /' || true
echo "running the kernel tier in a VM (scripts/vmrun)"
# the VM does not inherit this environment: pass the loop sizes on
exec scripts/vmrun -- env BULWARK_KERNEL_RUNS="${BULWARK_KERNEL_RUNS:-200}" \
    BULWARK_KERNEL_FILTER="${BULWARK_KERNEL_FILTER:-BulwarkKernelTests}" "$0" --inside
