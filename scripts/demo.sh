#!/usr/bin/env bash
# Demo of Bulwark's main job on its built-in default policies: validate them, decide which
# containers they confine, compile the three kernel artifacts, and check the AppArmor profile
# with apparmor_parser; then run containers through the runtime wrapper (bulwark-runtime + runc)
# and show, side by side, an act the default policy denies and one it allows; then start the node
# agent (bulwarkd) and watch the violation events of a container arrive on the node socket.
set -euo pipefail
cd "$(dirname "$0")/.."
[ "$(id -u)" = 0 ] && scripts/install-deps.sh
swift build -c debug --product bulwark >/dev/null
swift build -c debug --product bulwark-runtime >/dev/null
swift build -c debug --product bulwark-hook >/dev/null
swift build -c debug --product bulwarkd >/dev/null
bin=.build/debug/bulwark
policies=(packaging/policies/*.yaml)
out=$(mktemp -d)
agent_pid=""
follow_pid=""
cleanup() {
    if [ -n "$follow_pid" ]; then kill "$follow_pid" 2>/dev/null || true; fi
    if [ -n "$agent_pid" ]; then kill "$agent_pid" 2>/dev/null && wait "$agent_pid" 2>/dev/null; fi || true
    rm -rf "$out"
}
trap cleanup EXIT
echo "== validate"
"$bin" policy validate "${policies[@]}"
echo; echo "== explain: a podman container run with --annotation bulwark.io/policy=default"
"$bin" policy explain "${policies[@]}" --annotation bulwark.io/policy=default --container web
echo; echo "== explain: a pod without the label"
"$bin" policy explain "${policies[@]}" --namespace shop --pod-label app=web --container main
disks=$(awk 'NR>2 && $4 !~ /[0-9]$/ {print $4}' /proc/partitions | paste -sd, -)
for e in apparmor seccomp bpf; do
    echo; echo "== compile --enforcer $e (disk devices: ${disks:-none})"
    "$bin" policy compile "${policies[@]}" --enforcer "$e" ${disks:+--disk-devices "$disks"} --output "$out/$e"
done
echo; echo "== AppArmor profile (head)"
head -n 30 "$out/apparmor/varmor-cluster-varmor-default-hardening"
if command -v apparmor_parser >/dev/null; then
    for f in "$out"/apparmor/*; do
        apparmor_parser -Q -K "$f" 2> >(grep -v 'Cache read/write disabled' >&2) && echo "apparmor_parser -Q -K $(basename "$f"): ok"
    done
fi
echo; echo "== seccomp profile"
cat "$out/seccomp/varmor-cluster-varmor-default-hardening.json"
echo; echo "== BPF tables (summary)"
python3 - "$out/bpf/varmor-cluster-varmor-default-hardening.bpf.json" <<'PY'
import json, sys
p = json.load(open(sys.argv[1]))
print(f"profile {p['name']} mode={p['mode']}: {len(p['prefixes'])} prefix rows, {len(p['suffixes'])} suffix rows, "
      f"{len(p['compound'])} compound, {len(p['sockets'])} socket rows, {len(p['egress4'])}+{len(p['egress6'])} egress rows, "
      f"{len(p['mounts'])} mount rules, caps deny=0x{p['capabilityDeny']:x}")
for n in p.get('notes', []): print("note:", n)
PY
echo; echo "== containers through bulwark-runtime (runc): the same command with and without the policy"
if [ "$(id -u)" != 0 ] || ! command -v runc >/dev/null || [ ! -x /bin/busybox ]; then
    echo "skipped: needs root, runc and busybox-static"
    exit 0
fi
# This node's enforcers: seccomp always; BPF when the kernel loads BPF LSM programs; AppArmor when enabled.
enforcers=Seccomp
if "$bin" enforcer probe >/dev/null 2>&1; then
    enforcers="$enforcers, BPF"
    "$bin" enforcer load
else
    echo "BPF LSM: not usable on this kernel ($("$bin" enforcer probe 2>&1 | tail -n 1 | sed 's/^ *- //'))"
fi
if grep -q Y /sys/module/apparmor/parameters/enabled 2>/dev/null; then
    enforcers="$enforcers, AppArmor"
else
    echo "AppArmor: not enabled in this kernel"
fi
cat >"$out/bulwark.yaml" <<EOF
policyDirectories: [$PWD/packaging/policies]
runtime: runc
enforcers: [$enforcers]
nodeName: demo-node
auditEventMetadata: {clusterName: demo, region: local}
socketPath: $out/run/bulwark.sock
containerStateDirectory: $out/run/containers
eventLogFile: $out/log/violations.log
seccompProfileDirectory: $out/seccomp
appArmorProfileDirectory: $out/apparmor.d
metricsAddress: ""
EOF
bundle() { # bundle DIR ANNOTATIONS-JSON [SCRIPT]
    mkdir -p "$1/rootfs/bin" "$1/rootfs/proc" "$1/rootfs/tmp" "$1/rootfs/dev"
    cp /bin/busybox "$1/rootfs/bin/"
    for a in sh echo unshare true; do ln -sf busybox "$1/rootfs/bin/$a"; done
    ln -sf busybox "$1/rootfs/bin/sleep"
    python3 - "$1/config.json" "$2" "${3:-}" <<'PY'
import json, sys
script = sys.argv[3] or ("echo '  echo hello:          allowed'; "
          "if unshare -U true 2>/dev/null; then echo '  unshare -U (userns): allowed'; "
          "else echo '  unshare -U (userns): DENIED (EPERM)'; fi")
spec = {"ociVersion": "1.0.2",
        "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/", "env": ["PATH=/bin"],
                    "args": ["sh", "-c", script]},
        "root": {"path": "rootfs"}, "annotations": json.loads(sys.argv[2]),
        "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"},
                   {"destination": "/tmp", "type": "tmpfs", "source": "tmpfs"}],
        "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts")]}}
json.dump(spec, open(sys.argv[1], "w"))
PY
}
bundle "$out/web" '{"bulwark.io/policy": "default"}'
bundle "$out/plain" '{}'
echo "container 'web' (annotation bulwark.io/policy=default; this node enforces [$enforcers]):"
BULWARK_CONFIG="$out/bulwark.yaml" .build/debug/bulwark-runtime run --bundle "$out/web" "bulwark-demo-web-$$"
echo "container 'plain' (no annotation):"
BULWARK_CONFIG="$out/bulwark.yaml" .build/debug/bulwark-runtime run --bundle "$out/plain" "bulwark-demo-plain-$$"
python3 - "$out/web/config.json" <<'PY'
import json, sys
d = json.load(open(sys.argv[1]))
print("rewritten spec of 'web':", json.dumps({"annotations": d["annotations"],
      "seccomp": f'{len(d["linux"]["seccomp"]["syscalls"])} rules', "hooks": sorted(d.get("hooks", {}))}))
PY

echo; echo "== the node agent: bulwarkd, and the events of a container on the node socket"
export BULWARK_CONFIG="$out/bulwark.yaml"
.build/debug/bulwarkd --log-level warning 2>"$out/bulwarkd.log" &
agent_pid=$!
for _ in $(seq 100); do "$bin" status >/dev/null 2>&1 && break; sleep 0.1; done
"$bin" status
"$bin" events --follow >"$out/events.txt" 2>&1 &
follow_pid=$!
sleep 0.5
# the built-in `observe` policy allows and reports what `default` would refuse (seccomp SCMP_ACT_LOG)
bundle "$out/observed" '{"bulwark.io/policy": "observe", "io.kubernetes.cri.sandbox-name": "web-7d9f-x2k",
  "io.kubernetes.cri.sandbox-namespace": "shop", "io.kubernetes.cri.container-name": "app"}' \
  "unshare -U sleep 1 && echo '  unshare -U (userns): allowed, and reported'"
echo "container 'observed' (annotation bulwark.io/policy=observe):"
.build/debug/bulwark-runtime run --bundle "$out/observed" "bulwark-demo-observed-$$"
for _ in $(seq 50); do [ "$(wc -l <"$out/events.txt")" -ge 2 ] && break; sleep 0.1; done
echo; echo "bulwark events --follow (what a subscriber of the node socket saw):"
cat "$out/events.txt"
echo; echo "bulwark events --json (vArmor's format, with this node's metadata):"
"$bin" events --json --recent 1
echo; echo "bulwark status (after):"
"$bin" status | sed -n '/^events/,/^drops/p'
kill "$follow_pid" 2>/dev/null || true
if kill "$agent_pid"; then wait "$agent_pid" 2>/dev/null || true; fi
agent_pid=""
if "$bin" enforcer probe >/dev/null 2>&1; then "$bin" enforcer unload; fi
