#!/usr/bin/env bash
# The image the DaemonSet runs (packaging/kubernetes, packaging/helm/bulwark): Debian 12 minbase
# with apparmor_parser (the agent loads AppArmor profiles with it), and Bulwark's executables built
# fully static, so that bulwark-hook, bulwark-runtime and bulwark — which the init container copies
# onto the node (`bulwark install`) — run there whatever libraries the node has.
# Root; podman and debootstrap (scripts/install-deps.sh). The Debian root file system is kept in
# .build/image/rootfs (one download). Writes the image into podman's storage as BULWARK_IMAGE
# (default localhost/bulwark:dev) and as an OCI archive, .build/image/bulwark-image.tar, for
# `podman push`/`skopeo copy` to a registry (then set the chart's image.repository and tag).
set -euo pipefail
cd "$(dirname "$0")/.."
export PATH="/opt/swift/usr/bin:$PATH"
image=${BULWARK_IMAGE:-localhost/bulwark:dev}
out=.build/image
mkdir -p "$out"
# as scripts/bench-start.sh builds the start path: no dynamic loader (libbpf's static archive
# needs libelf and zlib named explicitly)
flags=(-c release -Xswiftc -static-executable -Xlinker -lelf -Xlinker -lz --scratch-path .build/static)
for product in bulwarkd bulwark bulwark-hook bulwark-runtime; do
    swift build "${flags[@]}" --product "$product" >&2
done
bindir=$(swift build "${flags[@]}" --show-bin-path)
rootfs="$out/rootfs"
if [ ! -x "$rootfs/usr/sbin/apparmor_parser" ]; then
    rm -rf "$rootfs"
    debootstrap --variant=minbase --include=apparmor bookworm "$rootfs" "${DEBIAN_MIRROR:-http://deb.debian.org/debian}" >&2
    rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* "$rootfs"/usr/share/doc \
        "$rootfs"/usr/share/man
fi
install -m 0755 "$bindir/bulwarkd" "$bindir/bulwark" "$bindir/bulwark-hook" "$bindir/bulwark-runtime" \
    "$rootfs/usr/local/bin/"
# without symbol tables: half the size (bulwarkd 154 → 80 MB); Swift's metadata is in sections of its own
strip --strip-all "$rootfs"/usr/local/bin/bulwark*
tar -C "$rootfs" --numeric-owner -c . |
    podman import --change 'CMD ["/usr/local/bin/bulwarkd", "--config", "/etc/bulwark/bulwark.yaml"]' - "$image" >&2
rm -f "$out/bulwark-image.tar"
podman save --format oci-archive -o "$out/bulwark-image.tar" "$image" >&2
echo "$image"
