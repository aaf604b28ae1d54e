#!/usr/bin/env bash
# Installs what building and testing Bulwark needs on Debian 12 (run as root). Idempotent.
set -euo pipefail
need=()
for pkg in apparmor libseccomp-dev libbpf-dev libapparmor-dev pkg-config runc crun podman busybox-static qemu-system-x86 \
    shellcheck protobuf-compiler debootstrap; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || need+=("$pkg")
done
if [ ${#need[@]} -gt 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi
# the deployment objects are validated against the Kubernetes schemas (scripts/check-manifests.py)
python3 -c "import kubernetes_validate" 2>/dev/null || python3 -m pip install -q --root-user-action=ignore kubernetes-validate
command -v swift >/dev/null || { echo "swift not found: install the Swift 6.3 toolchain (e.g. /opt/swift/usr/bin)" >&2; exit 1; }
# crun 1.8 refuses to run while the hugetlb controller sits on the cgroup2 mount of a hybrid
# hierarchy (../shared/reference/environment.md §1.3): move it to v1 once per boot.
if [ -d /sys/fs/cgroup/unified ] && [ ! -e /sys/fs/cgroup/hugetlb/cgroup.procs ] \
    && grep -qw hugetlb /sys/fs/cgroup/unified/cgroup.controllers 2>/dev/null; then
    mkdir -p /sys/fs/cgroup/hugetlb && mount -t cgroup -o hugetlb cgroup /sys/fs/cgroup/hugetlb
fi
