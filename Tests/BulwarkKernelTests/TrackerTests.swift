import BulwarkBPF
import BulwarkBPFMaps
import BulwarkOCI
import BulwarkTestSupport
import CBulwarkABI
import CLibBPF
import Foundation
import Testing

// The process tracker's BTF tracepoints load on this machine's kernel as well as in the VM (unlike
// BPF LSM programs), so these tests run in both tiers.

/// Whether the tracker loads here (probed once; the error says why not).
let trackerProbe: Result<ProcessTracker, EnforcerError> = Result { () throws(EnforcerError) in
    try ProcessTracker.start()
}

let trackerNeeds = Needs(
    met: getuid() == 0 && (try? trackerProbe.get()) != nil,
    reason: {
        if getuid() != 0 { return "needs root" }
        if case .failure(let e) = trackerProbe { return "the process tracker does not load: \(e.message)" }
        return ""
    }())

func mountNamespace(pid: Int32) -> UInt32? {
    var st = stat()
    guard stat("/proc/\(pid)/ns/mnt", &st) == 0 else { return nil }
    return UInt32(truncatingIfNeeded: st.st_ino)
}

@Suite("Process tracker (BTF tracepoints)", .serialized, .needs(trackerNeeds))
struct TrackerTests {
    /// A process that has already exited is still known with its mount namespace — what a late
    /// seccomp or AppArmor record of it needs — and a running one with the namespace /proc shows.
    @Test func exitedProcessesKeepTheirNamespace() throws {
        guard trackerNeeds.check() else { return }
        let tracker = try trackerProbe.get()
        let unshare = try #require(which("unshare"))
        // a process in a new mount namespace that exits at once
        let quick = try spawn(unshare, ["unshare", "-m", "/bin/true"], environment: [:], output: "/dev/null")
        var status: Int32 = 0
        waitpid(quick, &status, 0)
        let host = try #require(mountNamespace(pid: getpid()))
        let gone = try #require(tracker.task(pid: UInt32(quick)), "the tracker never saw \(quick)")
        #expect(gone.namespace != 0 && gone.namespace != host, "unshare -m ran in a new namespace")
        #expect(gone.exitedAt != 0)
        #expect(gone.parent == UInt32(getpid()))
        #expect(mountNamespace(pid: quick) == nil, "the process is gone from /proc")
        // one that runs: the same namespace as /proc says once it has exec'd (unshare(2) moves a
        // process without a fork or exec; its exec of sleep is what the tracker sees)
        let slow = try spawn(unshare, ["unshare", "-m", "/bin/sleep", "5"], environment: [:], output: "/dev/null")
        defer {
            kill(slow, SIGKILL)
            waitpid(slow, &status, 0)
        }
        var running: ProcessTracker.Task?
        var proc: UInt32?
        #expect(
            eventually(timeout: 5) {
                running = tracker.task(pid: UInt32(slow))
                proc = mountNamespace(pid: slow)
                return running != nil && proc != nil && proc != host && running?.namespace == proc
            }, "tracker \(String(describing: running)), /proc \(String(describing: proc))")
        #expect(running?.exitedAt == 0)
    }

    /// Behaviour modeling's syscall recording: the syscalls a recorded namespace enters are in its
    /// bitmap (every one, in the kernel — no audit line to lose); another namespace's are not; the
    /// sys_enter program is attached only while something is recorded.
    @Test func aRecordedNamespacesSyscallsAreAllThere() throws {
        guard trackerNeeds.check() else { return }
        let tracker = try trackerProbe.get()
        let unshare = try #require(which("unshare"))
        #expect(!tracker.recorderAttached)
        let dir = NSTemporaryDirectory() + "bw-rec-\(getpid())"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        // waits for a file, then mkdir (syscall 83 on x86_64) and exits
        let script = "while [ ! -e \(dir)-go ]; do sleep 0.05; done; mkdir \(dir); exit 0"
        let pid = try spawn(unshare, ["unshare", "-m", "/bin/sh", "-c", script], environment: [:], output: "/dev/null")
        var status: Int32 = 0
        defer { unlink(dir + "-go") }
        var ns: UInt32?
        #expect(
            eventually(timeout: 5) {
                ns = mountNamespace(pid: pid)
                return ns != nil && ns != mountNamespace(pid: getpid())
            })
        let recorded = try #require(ns)
        try tracker.record(namespace: recorded, profile: "varmor-test")
        try tracker.setRecorder(true)
        #expect(tracker.recorderAttached)
        #expect(FileManager.default.createFile(atPath: dir + "-go", contents: Data()))
        waitpid(pid, &status, 0)
        #expect(FileManager.default.fileExists(atPath: dir))
        let entry = try #require(tracker.syscalls(namespace: recorded))
        let numbers = entry.numbers
        #expect(entry.profile == FNV1a.hash("varmor-test".utf8), "the entry names its profile")
        #if arch(x86_64)
            #expect(numbers.contains(83), "mkdir: \(numbers)")  // __NR_mkdir
            #expect(numbers.contains(59), "execve: \(numbers)")  // __NR_execve (sh runs mkdir)
        #endif
        #expect(numbers.count >= 10, "\(numbers)")
        // this process's namespace is not recorded, though it made syscalls meanwhile
        #expect(tracker.syscalls(namespace: mountNamespace(pid: getpid())!) == nil)
        tracker.forget(namespace: recorded)
        try tracker.setRecorder(false)
        #expect(!tracker.recorderAttached)
        #expect(tracker.recordedNamespaces.isEmpty)
    }

    /// Mount namespace inode numbers are reused as soon as a namespace is freed: a recorded entry
    /// belongs to the instance that first used it, and a later namespace with the same inode records
    /// nothing into it. (The kernel cannot be made to reuse an inode on demand, so the entry of an
    /// earlier instance is written the way such an entry looks: its instance set to another value,
    /// through the pinned map the hook writes to.)
    @Test func anEntryOfAnotherNamespaceInstanceRecordsNothing() throws {
        guard trackerNeeds.check() else { return }
        let unshare = try #require(which("unshare"))
        let dir = NSTemporaryDirectory() + "bw-trk-\(getpid())"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let (mounted, why) = try capture("/usr/bin/mount", ["-t", "bpf", "bpf", dir])
        try #require(mounted == 0, "cannot mount a bpffs: \(why)")
        defer { _ = try? capture("/usr/bin/umount", [dir]) }
        let tracker = try ProcessTracker.start(pinPath: dir + "/bulwark")
        defer { tracker.stop() }
        #expect(tracker.pinned)
        try tracker.setRecorder(true)
        var status: Int32 = 0
        let go = dir + "-go"  // (not on the bpffs, which holds no regular files)
        defer { unlink(go) }
        let script = "while [ ! -e \(go) ]; do sleep 0.05; done; ls / > /dev/null"
        let pid = try spawn(unshare, ["unshare", "-m", "/bin/sh", "-c", script], environment: [:], output: "/dev/null")
        defer {
            kill(pid, SIGKILL)
            waitpid(pid, &status, 0)
        }
        var ns: UInt32?
        #expect(
            eventually(timeout: 5) {
                ns = mountNamespace(pid: pid)
                return ns != nil && ns != mountNamespace(pid: getpid())
            })
        let inode = try #require(ns)
        // the entry of an earlier instance that had this inode
        let map = try BPFMap(path: dir + "/bulwark/tracker/" + BULWARK_MAP_RECORDING, name: BULWARK_MAP_RECORDING)
        var key = inode
        var stale = bulwark_syscalls()
        stale.instance = 1
        #expect(bpf_map_update_elem(map.fd, &key, &stale, 0) == 0)
        try #require(FileManager.default.createFile(atPath: go, contents: Data()))
        waitpid(pid, &status, 0)
        #expect(tracker.syscalls(namespace: inode)?.numbers == [], "syscalls of another instance were recorded")
        // the hook's own entry (instance 0): the first syscall claims it, and everything is recorded
        tracker.forget(namespace: inode)
        try Enforcer(pinPath: dir + "/bulwark").startRecording(
            namespace: UInt32(mountNamespace(pid: getpid())!), profile: "varmor-test")
        _ = try capture("/bin/true", [])
        let own = tracker.syscalls(namespace: UInt32(mountNamespace(pid: getpid())!))
        tracker.forget(namespace: UInt32(mountNamespace(pid: getpid())!))
        #expect((own?.numbers.count ?? 0) > 0)
    }
}
