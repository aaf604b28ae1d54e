import BulwarkBPFMaps
import BulwarkBPFObject
import BulwarkOCI
import CBulwarkABI
import CLibBPF
import Synchronization

#if canImport(Glibc)
    import Glibc
#endif

/// The process tracker (`bpf/tracker.bpf.c`): the kernel records each process's mount namespace
/// as it forks and execs, and when it exits, so a seccomp or AppArmor record of a process that
/// has already exited is still attributed to its container. It also records, in the kernel, the
/// syscalls of the namespaces under behaviour modeling. Owned by the agent (its programs detach
/// when the agent stops; only the recording map is pinned): processes forked while no agent runs
/// are attributed from /proc as before.
public final class ProcessTracker: Sendable {
    /// What the tracker knows of a process.
    public struct Task: Sendable, Equatable {
        public var namespace: UInt32
        public var parent: UInt32
        /// CLOCK_BOOTTIME nanoseconds; 0 while it runs.
        public var exitedAt: UInt64
    }

    /// libbpf handles: only touched under the mutex (or before the tracker exists).
    struct Handles: @unchecked Sendable {
        var object: OpaquePointer?
        var links: [OpaquePointer] = []
        /// `bw_record_syscall`, attached only while a namespace is recorded
        var recorder: OpaquePointer?
        var recorderLink: OpaquePointer?
    }

    private let handles: Mutex<Handles>
    private let tasksFD: Int32
    private let recordingFD: Int32

    private init(handles: Handles, tasksFD: Int32, recordingFD: Int32, pinned: Bool) {
        self.handles = Mutex(handles)
        self.tasksFD = tasksFD
        self.recordingFD = recordingFD
        self.pinned = pinned
    }

    /// True when the recording map is pinned (`<pinPath>/tracker/bw_recording`), so the OCI hook can
    /// add a container's namespace before its first instruction.
    public let pinned: Bool

    /// Loads the tracker and attaches its fork, exec and exit tracepoints. With `pinPath` (the
    /// enforcer's bpffs directory) the recording map is pinned there — reused when it already is —
    /// so it survives agent restarts and the hook can reach it; where it cannot be pinned (no bpffs)
    /// the tracker runs without the pin, and containers are recorded from when the agent sees them.
    public static func start(pinPath: String? = nil) throws(EnforcerError) -> ProcessTracker {
        if let pinPath {
            let dir = Enforcer(pinPath: pinPath).trackerDir
            _ = mkdir(pinPath, 0o700)
            _ = mkdir(dir, 0o700)
            if let t = try? load(pin: dir + "/" + BULWARK_MAP_RECORDING) { return t }
            // a pin of another layout (an older Bulwark) or no bpffs: once more without it
            unlink(dir + "/" + BULWARK_MAP_RECORDING)
            if let t = try? load(pin: dir + "/" + BULWARK_MAP_RECORDING) { return t }
        }
        return try load(pin: nil)
    }

    static func load(pin: String?) throws(EnforcerError) -> ProcessTracker {
        let bytes = BPFObject.tracker
        var result: Result<ProcessTracker, EnforcerError> = .failure(EnforcerError("the tracker object is empty"))
        LibBPFLog.capture { log in
            bytes.withUnsafeBytes { raw in
                var opts = bpf_object_open_opts()
                opts.sz = MemoryLayout<bpf_object_open_opts>.size
                guard let obj = bpf_object__open_mem(raw.baseAddress, raw.count, &opts) else {
                    result = .failure(.errno("cannot open the embedded tracker object"))
                    return
                }
                if let pin, let m = bpf_object__find_map_by_name(obj, BULWARK_MAP_RECORDING) {
                    bpf_map__set_pin_path(m, pin)
                }
                var h = Handles(object: obj)
                func fail(_ e: EnforcerError) {
                    for l in h.links { bpf_link__destroy(l) }
                    bpf_object__close(obj)
                    result = .failure(e)
                }
                let rc = bpf_object__load(obj)
                guard rc == 0 else {
                    var e = EnforcerError.errno("loading the process tracker failed", -rc)
                    if let last = log.lastError { e.message += " (libbpf: \(last))" }
                    return fail(e)
                }
                var p = bpf_object__next_program(obj, nil)
                while let prog = p {
                    let name = String(cString: bpf_program__name(prog))
                    if name == "bw_record_syscall" {
                        h.recorder = prog
                    } else {
                        guard let link = bpf_program__attach(prog) else {
                            return fail(.errno("attaching \(name) failed"))
                        }
                        h.links.append(link)
                    }
                    p = bpf_object__next_program(obj, prog)
                }
                let tasks = bpf_object__find_map_by_name(obj, BULWARK_MAP_TASKS)
                let recording = bpf_object__find_map_by_name(obj, BULWARK_MAP_RECORDING)
                guard let tasks, let recording else { return fail(EnforcerError("the tracker object has no maps")) }
                result = .success(
                    ProcessTracker(
                        handles: h, tasksFD: bpf_map__fd(tasks), recordingFD: bpf_map__fd(recording),
                        pinned: pin != nil))
            }
        }
        return try result.get()
    }

    /// The process `pid` (host tgid), if the tracker saw it fork or exec.
    public func task(pid: UInt32) -> Task? {
        var key = pid
        var v = bulwark_task()
        guard bpf_map_lookup_elem(tasksFD, &key, &v) == 0 else { return nil }
        return Task(namespace: v.mnt_ns, parent: v.parent, exitedAt: UInt64(v.exited_ns))
    }

    // MARK: Syscall recording

    /// Starts recording the syscalls of `namespace` (idempotent; what was recorded is kept). Only
    /// while the recorder is attached (`setRecorder`) are syscalls counted.
    public func record(namespace: UInt32, profile: String) throws(EnforcerError) {
        var key = namespace
        var zero = bulwark_syscalls()
        zero.profile = bulwark_u64(FNV1a.hash(profile.utf8))
        let rc = bpf_map_update_elem(recordingFD, &key, &zero, UInt64(BPF_NOEXIST))
        if rc != 0 && -rc != EEXIST { throw .errno("cannot record namespace \(namespace)", -rc) }
    }

    /// Attaches the sys_enter recorder (while any profile is being modeled) or detaches it.
    public func setRecorder(_ on: Bool) throws(EnforcerError) {
        if on { try attachRecorder() } else { detachRecorder() }
    }

    /// The syscall numbers `namespace` entered so far, how many entries had a number beyond the
    /// bitmap, and the FNV-1a 64 of the profile it is recorded for (nil: not recorded).
    public func syscalls(namespace: UInt32) -> (numbers: [Int], beyond: UInt64, profile: UInt64)? {
        var key = namespace
        var v = bulwark_syscalls()
        guard bpf_map_lookup_elem(recordingFD, &key, &v) == 0 else { return nil }
        var numbers: [Int] = []
        withUnsafeBytes(of: v.bits) { raw in
            for (w, word) in raw.bindMemory(to: UInt64.self).enumerated() where word != 0 {
                for b in 0..<64 where word & (1 << UInt64(b)) != 0 { numbers.append(w * 64 + b) }
            }
        }
        return (numbers, UInt64(v.beyond), UInt64(v.profile))
    }

    /// Stops recording `namespace` (its data is gone).
    public func forget(namespace: UInt32) {
        var key = namespace
        _ = bpf_map_delete_elem(recordingFD, &key)
    }

    /// The namespaces being recorded.
    public var recordedNamespaces: [UInt32] {
        var out: [UInt32] = []
        var key: UInt32 = 0
        var next: UInt32 = 0
        var rc = bpf_map_get_next_key(recordingFD, nil, &next)
        while rc == 0, out.count < Int(BULWARK_RECORDING_MAX) {
            out.append(next)
            key = next
            rc = bpf_map_get_next_key(recordingFD, &key, &next)
        }
        return out
    }

    /// True while the sys_enter program is attached.
    public var recorderAttached: Bool { handles.withLock { $0.recorderLink != nil } }

    private func attachRecorder() throws(EnforcerError) {
        let failure: EnforcerError? = handles.withLock { h in
            guard h.recorderLink == nil else { return nil }
            guard let prog = h.recorder, let link = bpf_program__attach(prog) else {
                return .errno("attaching the syscall recorder failed")
            }
            h.recorderLink = link
            return nil
        }
        if let failure { throw failure }
    }

    private func detachRecorder() {
        handles.withLock { h in
            if let l = h.recorderLink { bpf_link__destroy(l) }
            h.recorderLink = nil
        }
    }

    /// Detaches everything and frees the object.
    public func stop() {
        handles.withLock { h in
            if let l = h.recorderLink { bpf_link__destroy(l) }
            for l in h.links { bpf_link__destroy(l) }
            if let o = h.object { bpf_object__close(o) }
            h = Handles()
        }
    }

    deinit { stop() }
}
