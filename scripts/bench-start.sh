#!/usr/bin/env bash
# Container start latency (issue 4): `bulwark-runtime run` (seccomp policy from the built-in
# defaults' style, decision engine over a policy directory) versus plain `runc run`, busybox `true`,
# alternating, N runs each (BENCH_RUNS, default 60); p50/p95 and the ratio. Also the hook's own
# run time for an untargeted container (its start-up cost; a targeted one also binds, which needs
# BPF LSM). Root. BENCH_BUILD=debug to skip the release build. Ends with
# `RESULT added_p50_ms=… added_p95_ms=… hook_p50_ms=… ratio_p50=… wrapper_share_p50_ms=…`.
set -euo pipefail
cd "$(dirname "$0")/.."
# Production build of the start-path executables: fully static (-static-executable), so no
# dynamic loader, no symbol lookups and no load-time relocations (≈ 1.5 ms of every start with
# --static-swift-stdlib alone). libbpf's static archive needs libelf and zlib named explicitly.
config=${BENCH_BUILD:-release}
flags=(-c "$config" -Xswiftc -static-executable -Xlinker -lelf -Xlinker -lz --scratch-path .build/static)
swift build "${flags[@]}" --product bulwark-runtime >&2
swift build "${flags[@]}" --product bulwark-hook >&2
# `bulwark deliver` rebuilds the start index when none is current (the first run here)
swift build "${flags[@]}" --product bulwark >&2
bindir=$(swift build "${flags[@]}" --show-bin-path)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
mkdir -p "$work/policies"
cat > "$work/policies/p.yaml" <<'EOF'
apiVersion: crd.varmor.org/v1beta1
kind: VarmorClusterPolicy
metadata: {name: bench}
spec:
  target: {kind: Container, selector: {matchLabels: {bulwark.io/policy: bench}}}
  policy:
    enforcer: Seccomp
    mode: EnhanceProtect
    enhanceProtect:
      hardeningRules: [disallow-create-user-ns, disallow-userfaultfd-creation]
EOF
printf 'policyDirectories: [%s/policies]\nruntime: %s\nenforcers: [Seccomp]\n' "$work" "$(command -v runc)" > "$work/bulwark.yaml"
python3 - "$work" "$bindir" "${BENCH_RUNS:-60}" <<'PY'
import json, os, shutil, statistics, subprocess, sys, time
work, bindir, runs = sys.argv[1], sys.argv[2], int(sys.argv[3])
def bundle(name, annotations):
    b = os.path.join(work, name)
    for d in ("rootfs/bin", "rootfs/proc", "rootfs/dev"):
        os.makedirs(os.path.join(b, d), exist_ok=True)
    shutil.copy("/bin/busybox", os.path.join(b, "rootfs/bin/busybox"))
    spec = {"ociVersion": "1.0.2", "process": {"terminal": False, "user": {"uid": 0, "gid": 0}, "cwd": "/",
            "env": ["PATH=/bin"], "args": ["/bin/busybox", "true"]}, "root": {"path": "rootfs"},
            "annotations": annotations, "mounts": [{"destination": "/proc", "type": "proc", "source": "proc"}],
            "linux": {"namespaces": [{"type": t} for t in ("pid", "mount", "ipc", "uts")]}}
    text = json.dumps(spec)
    return b, text
env = dict(os.environ, BULWARK_CONFIG=os.path.join(work, "bulwark.yaml"))
plain, plain_spec = bundle("plain", {})
wrapped, wrapped_spec = bundle("wrapped", {"bulwark.io/policy": "bench"})
def run(cmd, b, spec):
    open(os.path.join(b, "config.json"), "w").write(spec)  # fresh spec each run (the wrapper rewrites it)
    t = time.perf_counter()
    subprocess.run(cmd, check=True, env=env, stdout=subprocess.DEVNULL)
    return (time.perf_counter() - t) * 1000
# the spec bulwark-runtime writes, run by plain runc: isolates the wrapper from the filter's own cost
run([os.path.join(bindir, "bulwark-runtime"), "run", "--bundle", wrapped, f"bench-x-{os.getpid()}"], wrapped, wrapped_spec)
rewritten = open(os.path.join(wrapped, "config.json")).read()
same, _ = bundle("same", {})
times = {"runc (no policy)": [], "runc (rewritten spec)": [], "bulwark-runtime + runc": []}
for i in range(runs + 5):
    a = run(["runc", "run", "--bundle", plain, f"bench-p-{os.getpid()}-{i}"], plain, plain_spec)
    c = run(["runc", "run", "--bundle", same, f"bench-s-{os.getpid()}-{i}"], same, rewritten)
    b = run([os.path.join(bindir, "bulwark-runtime"), "run", "--bundle", wrapped, f"bench-w-{os.getpid()}-{i}"], wrapped, wrapped_spec)
    if i >= 5:  # warm-up
        times["runc (no policy)"].append(a); times["runc (rewritten spec)"].append(c); times["bulwark-runtime + runc"].append(b)
state = json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "creating", "pid": os.getpid(), "bundle": plain, "annotations": {}})
hook = []
for i in range(runs):
    t = time.perf_counter()
    subprocess.run([os.path.join(bindir, "bulwark-hook"), "createRuntime"], input=state.encode(), check=True)
    hook.append((time.perf_counter() - t) * 1000)
def q(xs, p): return sorted(xs)[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
base = statistics.median(times["runc (no policy)"])
print(f"container start, busybox true, {runs} alternating runs each ({os.path.basename(bindir)} build)")
for k, xs in times.items():
    print(f"  {k:24s} p50 {statistics.median(xs):7.1f} ms   p95 {q(xs, .95):7.1f} ms   ratio {statistics.median(xs) / base:.3f}")
w = statistics.median(times["bulwark-runtime + runc"])
print(f"  added at p50 vs no policy: {w - base:.1f} ms; the wrapper's own share (vs runc with the same spec): {w - statistics.median(times['runc (rewritten spec)']):.1f} ms")
print(f"  bulwark-hook createRuntime (untargeted, process start to exit): p50 {statistics.median(hook):.1f} ms  p95 {q(hook, .95):.1f} ms")
plain_runs, wrapped_runs = times["runc (no policy)"], times["bulwark-runtime + runc"]
added_p50 = statistics.median(wrapped_runs) - statistics.median(plain_runs)
added_p95 = q(wrapped_runs, .95) - q(plain_runs, .95)
print(f"RESULT added_p50_ms={added_p50:.2f} added_p95_ms={added_p95:.2f} hook_p50_ms={statistics.median(hook):.2f} "
      f"ratio_p50={statistics.median(wrapped_runs) / statistics.median(plain_runs):.3f} "
      f"wrapper_share_p50_ms={w - statistics.median(times['runc (rewritten spec)']):.2f}")
PY
