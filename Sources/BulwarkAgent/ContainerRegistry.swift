import BulwarkHook
import BulwarkOCI
import BulwarkSystem
import Foundation
import Metrics
import Synchronization

/// The containers Bulwark confines on this node, from the records the OCI hook writes
/// (`containerStateDirectory/<id>.json`). They live on tmpfs and outlive the agent, so an agent
/// restart recovers every binding and keeps attributing events. Only regular files owned by root
/// (or by the agent's user) are read: the directory is the agent's, never a container's.
public final class ContainerRegistry: Sendable {
    public let directory: String
    /// How long a removed record still names events: the kernel's records of a container's last
    /// acts may be read after its poststop hook removed the record.
    public static let departedGrace = 60.0

    struct State {
        var byNamespace: [UInt32: ContainerRecord] = [:]
        var byID: [String: ContainerRecord] = [:]
        /// records gone from the directory, with the time they went
        var departed: [UInt32: (ContainerRecord, Double)] = [:]
        var directoryStamp: timespec = timespec()
        var lastScan = 0.0
    }
    private let state = Mutex(State())
    /// `bulwark-hook`'s own time per container start (from the records it writes).
    let hookLatency = Metrics.Timer(label: "bulwark_hook_duration_seconds")
    private let firstScanDone = Mutex(false)
    /// Records found at start-up were made before this agent: not counted again.
    var hookLatencyReported: Bool { firstScanDone.withLock { $0 } }

    public init(directory: String) { self.directory = directory }

    public var records: [ContainerRecord] {
        rescanIfChanged()
        return state.withLock { $0.byID.values.sorted { $0.boundAt < $1.boundAt } }
    }

    public func record(namespace: UInt32) -> ContainerRecord? {
        if let r = state.withLock({ $0.byNamespace[namespace] }) { return r }
        rescanIfChanged()
        return state.withLock { $0.byNamespace[namespace] ?? $0.departed[namespace]?.0 }
    }

    /// The process tracker's answer (`ProcessTracker`): a pid's mount namespace, kept by the kernel
    /// after the process exited. Nil: /proc only.
    private let tracked = Mutex<(@Sendable (UInt32) -> UInt32?)?>(nil)

    /// Attribute through the process tracker too (the agent sets it when the tracker loads).
    public func use(tracker lookup: (@Sendable (UInt32) -> UInt32?)?) { tracked.withLock { $0 = lookup } }

    /// A host pid's container: its mount namespace now (/proc), else the namespace the process
    /// tracker recorded for it (it may have exited since the kernel logged it), else a record of
    /// that very pid.
    public func record(pid: UInt32) -> (ContainerRecord?, namespace: UInt32) {
        let lookup = tracked.withLock { $0 }
        let ns = ContainerRegistry.namespace(ofPid: pid) ?? lookup?(pid)
        if let ns, let r = record(namespace: ns) { return (r, ns) }
        let r = state.withLock { s in s.byID.values.first { $0.pid == Int32(bitPattern: pid) } }
        return (r, ns ?? r?.namespace ?? 0)
    }

    static func namespace(ofPid pid: UInt32) -> UInt32? {
        var st = stat()
        guard stat("/proc/\(pid)/ns/mnt", &st) == 0, st.st_ino <= UInt64(UInt32.max) else { return nil }
        return UInt32(st.st_ino)
    }

    /// Re-reads the directory when its modification time changed (one stat otherwise).
    public func rescanIfChanged() {
        var st = stat()
        guard stat(directory, &st) == 0 else {
            state.withLock { $0 = State() }
            firstScanDone.withLock { $0 = true }  // no directory yet: every record is new
            return
        }
        let stamp = st.st_mtim
        let unchanged = state.withLock { s in
            s.directoryStamp.tv_sec == stamp.tv_sec && s.directoryStamp.tv_nsec == stamp.tv_nsec && s.lastScan > 0
        }
        if unchanged { return }
        rescan(stamp: stamp)
    }

    func rescan(stamp: timespec) {
        var byID: [String: ContainerRecord] = [:]
        var byNamespace: [UInt32: ContainerRecord] = [:]
        let names = (try? FileManager.default.contentsOfDirectory(atPath: directory)) ?? []
        for name in names where name.hasSuffix(".json") && !name.hasPrefix(".") {
            // without following links, only if root's (or ours), writable by nobody else, small
            guard
                let data = try? RegularFile.read(
                    directory + "/" + name, maxBytes: 65536, followSymlinks: false, trustedOwner: true),
                let r = ContainerRecord(json: data)
            else { continue }
            byID[r.id] = r
            // newest record wins a namespace (an inode reused after a container stopped unseen)
            if let old = byNamespace[r.namespace], old.boundAt > r.boundAt { continue }
            byNamespace[r.namespace] = r
        }
        let now = Date().timeIntervalSince1970
        let known = state.withLock { Set($0.byID.keys) }
        for r in byID.values where !known.contains(r.id) && hookLatencyReported {
            if let us = r.hookMicroseconds { hookLatency.recordNanoseconds(Int64(us) * 1000) }
        }
        state.withLock { s in
            for (ns, r) in s.byNamespace where byNamespace[ns] == nil { s.departed[ns] = (r, now) }
            for ns in byNamespace.keys { s.departed[ns] = nil }
            s.departed = s.departed.filter { now - $0.value.1 < Self.departedGrace }
            s.byID = byID
            s.byNamespace = byNamespace
            s.directoryStamp = stamp
            s.lastScan = Date().timeIntervalSince1970
        }
        firstScanDone.withLock { $0 = true }
    }

    /// A record whose process is gone and whose namespace no longer exists: its poststop never ran
    /// (runtime killed, node crash). Removed at start-up so the table reflects what runs.
    public func pruneStale(isBound: (UInt32) -> Bool) -> [String] {
        var removed: [String] = []
        for r in records where kill(r.pid, 0) != 0 && errno == ESRCH && !isBound(r.namespace) {
            let safe = r.id.allSatisfy { $0.isLetter || $0.isNumber || "-_.".contains($0) } && !r.id.hasPrefix(".")
            if safe, unlink(directory + "/" + r.id + ".json") == 0 { removed.append(r.id) }
        }
        if !removed.isEmpty {
            rescan(stamp: timespec())
            state.withLock { $0.departed = [:] }  // stale, not recently departed
        }
        return removed
    }
}
