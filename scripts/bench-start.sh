#!/usr/bin/env bash
# Container start latency (issues 4, 13): `bulwark-runtime create` + `start` (seccomp policy, decided
# from the start index) versus plain runc, busybox `true`, in shuffled order, N runs each (BENCH_RUNS,
# default 150; container starts vary by ±10 ms here, so many); p50/p95 and the ratio. `delete`
# (and its poststop hook) is outside the timed window, as it is off an engine's start path. Also the hook's own
# run time for an untargeted container (its start-up cost; a targeted one also binds, which needs
# BPF LSM). Root. BENCH_BUILD=debug to skip the release build. Ends with
# `RESULT added_p50_ms=… added_p95_ms=… hook_p50_ms=… ratio_p50=… wrapper_share_p50_ms=… spawn_floor_p50_ms=…`.
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
python3 - "$work" "$bindir" "${BENCH_RUNS:-150}" <<'PY'
import json, os, random, shutil, statistics, subprocess, sys, time
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
def run(runtime, b, spec, cid):
    """Start latency as an engine sees it: `create` then `start` (the entrypoint has been exec'd
    when `start` returns); the container's exit and `delete` (poststop hooks) are not timed."""
    open(os.path.join(b, "config.json"), "w").write(spec)  # fresh spec each run (the wrapper rewrites it)
    t = time.perf_counter()
    subprocess.run([runtime, "create", "--bundle", b, cid], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run([runtime, "start", cid], check=True, env=env, stdout=subprocess.DEVNULL)
    elapsed = (time.perf_counter() - t) * 1000
    subprocess.run(["runc", "delete", "--force", cid], check=True, stdout=subprocess.DEVNULL)
    return elapsed
wrapper = os.path.join(bindir, "bulwark-runtime")
# the spec bulwark-runtime writes, run by plain runc: isolates the wrapper from the filter's own cost
run(wrapper, wrapped, wrapped_spec, f"bench-x-{os.getpid()}")
rewritten = open(os.path.join(wrapped, "config.json")).read()
same, _ = bundle("same", {})
times = {"runc (no policy)": [], "runc (rewritten spec)": [], "bulwark-runtime + runc": []}
for i in range(runs + 5):
    # the three in a shuffled order each round: drift and neighbours affect each alike
    order = list(times)
    random.shuffle(order)
    for k in order:
        if k == "runc (no policy)":
            v = run("runc", plain, plain_spec, f"bench-p-{os.getpid()}-{i}")
        elif k == "runc (rewritten spec)":
            v = run("runc", same, rewritten, f"bench-s-{os.getpid()}-{i}")
        else:
            v = run(wrapper, wrapped, wrapped_spec, f"bench-w-{os.getpid()}-{i}")
        if i >= 5:  # warm-up
            times[k].append(v)
state = json.dumps({"ociVersion": "1.0.2", "id": "x", "status": "creating", "pid": os.getpid(), "bundle": plain, "annotations": {}})
state_file = os.path.join(work, "state.json")
open(state_file, "w").write(state)
def spawn_ms(argv):
    """posix_spawn + waitpid with the state on stdin, as a runtime runs a hook (Python's
    subprocess.run would add its own pipes and bookkeeping to every run)."""
    fd = os.open(state_file, os.O_RDONLY)
    try:
        t = time.perf_counter()
        pid = os.posix_spawn(argv[0], argv, {}, file_actions=[(os.POSIX_SPAWN_DUP2, fd, 0)])
        _, status = os.waitpid(pid, 0)
        elapsed = (time.perf_counter() - t) * 1000
    finally:
        os.close(fd)
    if status != 0:
        raise SystemExit(f"{argv} exited with status {status}")
    return elapsed
hook, floor = [], []
for i in range(runs):
    # side by side: the hook, and a static binary that does nothing (the spawn floor)
    hook.append(spawn_ms([os.path.join(bindir, "bulwark-hook"), "createRuntime"]))
    floor.append(spawn_ms(["/bin/busybox", "true"]))
def q(xs, p): return sorted(xs)[min(len(xs) - 1, int(round(p * (len(xs) - 1))))]
base = statistics.median(times["runc (no policy)"])
print(f"container start (create + start), busybox true, {runs} shuffled runs each ({os.path.basename(bindir)} build)")
for k, xs in times.items():
    print(f"  {k:24s} p50 {statistics.median(xs):7.1f} ms   p95 {q(xs, .95):7.1f} ms   ratio {statistics.median(xs) / base:.3f}")
w = statistics.median(times["bulwark-runtime + runc"])
print(f"  added at p50 vs no policy: {w - base:.1f} ms; the wrapper's own share (vs runc with the same spec): {w - statistics.median(times['runc (rewritten spec)']):.1f} ms")
print(f"  bulwark-hook createRuntime (untargeted, spawn to exit): p50 {statistics.median(hook):.2f} ms  p95 {q(hook, .95):.2f} ms"
      f"  (a static busybox true, same way: p50 {statistics.median(floor):.2f} ms)")
plain_runs, wrapped_runs = times["runc (no policy)"], times["bulwark-runtime + runc"]
added_p50 = statistics.median(wrapped_runs) - statistics.median(plain_runs)
added_p95 = q(wrapped_runs, .95) - q(plain_runs, .95)
print(f"RESULT added_p50_ms={added_p50:.2f} added_p95_ms={added_p95:.2f} hook_p50_ms={statistics.median(hook):.2f} "
      f"ratio_p50={statistics.median(wrapped_runs) / statistics.median(plain_runs):.3f} "
      f"wrapper_share_p50_ms={w - statistics.median(times['runc (rewritten spec)']):.2f} "
      f"spawn_floor_p50_ms={statistics.median(floor):.2f}")
PY
