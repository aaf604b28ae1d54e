import BulwarkBPFMaps
import BulwarkBPFObject
import BulwarkProfiles
import CBulwarkABI
import CLibBPF
import Foundation

extension Enforcer {
    // MARK: State

    public struct Status: Sendable, Codable {
        public var pinned: Bool
        public var attachedPrograms: [String]
        public var missingPrograms: [String]
        public var abiVersion: UInt32?
        public var objectMatches: Bool?
        public var loadedAt: UInt64?
        public var bindings: Int
        public var profiles: Int
        public var counters: [String: UInt64]
    }

    public func status() -> Status {
        let fm = FileManager.default
        let links = (try? fm.contentsOfDirectory(atPath: linksDir)) ?? []
        var s = Status(
            pinned: fm.fileExists(atPath: mapPath(BULWARK_MAP_META)),
            attachedPrograms: Self.programs.filter { links.contains($0) },
            missingPrograms: Self.programs.filter { !links.contains($0) },
            abiVersion: nil, objectMatches: nil, loadedAt: nil, bindings: 0, profiles: 0, counters: [:])
        if let meta = try? readMeta() {
            s.abiVersion = meta.abi_version
            s.loadedAt = UInt64(meta.loaded_at)
            s.objectMatches = UInt64(meta.object_id) == BPFObject.identity(of: BPFObject.bulwark)
        }
        if let m = try? map(BULWARK_MAP_BINDINGS) { s.bindings = m.keys().count }
        if let m = try? map(BULWARK_MAP_NAMES) { s.profiles = m.keys().count }
        s.counters = counters()
        return s
    }

    public static let counterNames: [(String, Int32)] = [
        ("events", BULWARK_COUNTER_EVENTS), ("drops", BULWARK_COUNTER_DROPS), ("denials", BULWARK_COUNTER_DENIALS),
        ("stale", BULWARK_COUNTER_STALE), ("armed", BULWARK_COUNTER_ARMED), ("truncated", BULWARK_COUNTER_TRUNCATED),
        ("outside", BULWARK_COUNTER_OUTSIDE),
    ]

    public func counters() -> [String: UInt64] {
        guard let m = try? map(BULWARK_MAP_COUNTERS) else { return [:] }
        var out: [String: UInt64] = [:]
        for (name, index) in Self.counterNames { out[name] = m.perCPUSum(index: UInt32(index)) }
        return out
    }

    func readMeta() throws(EnforcerError) -> bulwark_meta {
        let m = try map(BULWARK_MAP_META)
        guard let bytes = m.lookup(key: Bytes.of(UInt32(0))), let meta = Bytes.load(bulwark_meta.self, from: bytes)
        else { throw EnforcerError("cannot read \(BULWARK_MAP_META)") }
        return meta
    }

    // MARK: Load / adopt / unload

    public enum LoadOutcome: Sendable, Equatable {
        case loaded
        case adopted
        case upgraded
    }

    /// Loads, attaches and pins the programs; adopts a complete pinned state of the same object;
    /// replaces the programs (keeping maps and bindings) when the pinned state has the same ABI but
    /// another object. Idempotent.
    @discardableResult
    public func load(support: KernelSupport? = nil) throws(EnforcerError) -> LoadOutcome {
        let support = support ?? KernelSupport.probe()
        guard support.usable else {
            throw EnforcerError(
                "BPF LSM enforcement is not available on this kernel (\(support.kernelRelease)):\n  - "
                    + support.problems.joined(separator: "\n  - "))
        }
        try makeDirectory(pinPath)
        return try withLock { () throws(EnforcerError) -> LoadOutcome in
            let object = BPFObject.bulwark
            let identity = BPFObject.identity(of: object)
            let st = status()
            if st.pinned {
                let meta = try readMeta()
                guard meta.abi_version == UInt32(BULWARK_ABI_VERSION) else {
                    throw EnforcerError(
                        "pinned enforcer state at \(pinPath) has ABI version \(meta.abi_version), this build "
                            + "has \(BULWARK_ABI_VERSION)",
                        hint: "run `bulwark enforcer unload` (running containers lose BPF confinement until "
                            + "they are bound again), then `bulwark enforcer load`")
                }
                if UInt64(meta.object_id) == identity && st.missingPrograms.isEmpty { return .adopted }
            }
            try loadObject(object, identity: identity, replacing: st.pinned)
            return st.pinned ? .upgraded : .loaded
        }
    }

    private func loadObject(_ object: [UInt8], identity: UInt64, replacing: Bool) throws(EnforcerError) {
        try makeDirectory(mapsDir)
        try makeDirectory(linksDir)
        let hostNS = UInt32(truncatingIfNeeded: Self.namespaceInode(pid: 1) ?? 0)
        var failure: EnforcerError?
        LibBPFLog.capture { log in
            object.withUnsafeBytes { raw in
                var opts = bpf_object_open_opts()
                opts.sz = MemoryLayout<bpf_object_open_opts>.size
                guard let obj = bpf_object__open_mem(raw.baseAddress, raw.count, &opts) else {
                    failure = .errno("cannot open the embedded BPF object")
                    return
                }
                defer { bpf_object__close(obj) }
                var m = bpf_object__next_map(obj, nil)
                while let map = m {
                    let name = String(cString: bpf_map__name(map))
                    if Self.persistentMaps.contains(name) {
                        bpf_map__set_pin_path(map, mapPath(name))
                    } else if name.hasSuffix(".rodata") {
                        // .rodata holds exactly one variable: `const volatile u32 host_mnt_ns`.
                        var size = 0
                        guard let data = bpf_map__initial_value(map, &size), size == 4 else {
                            failure = EnforcerError("unexpected .rodata layout in the BPF object (\(size) bytes)")
                            return
                        }
                        UnsafeMutableRawPointer(mutating: data).storeBytes(of: hostNS, as: UInt32.self)
                    }
                    m = bpf_object__next_map(obj, map)
                }
                let rc = bpf_object__load(obj)
                guard rc == 0 else {
                    failure = .errno("loading the BPF programs failed", -rc)
                    if let e = log.lastError { failure!.message += " (libbpf: \(e))" }
                    return
                }
                var links: [(String, OpaquePointer)] = []
                var p = bpf_object__next_program(obj, nil)
                while let prog = p {
                    let name = String(cString: bpf_program__name(prog))
                    guard let link = bpf_program__attach(prog) else {
                        failure = .errno("attaching \(name) failed")
                        break
                    }
                    links.append((name, link))
                    p = bpf_object__next_program(obj, prog)
                }
                defer { for (_, l) in links { bpf_link__destroy(l) } }
                if failure != nil { return }  // nothing pinned yet: destroying the links detaches them
                for (name, link) in links {
                    let path = linksDir + "/" + name
                    if replacing { unlink(path) }  // the old program detaches when its last pin goes
                    let rc = bpf_link__pin(link, path)
                    if rc != 0 {
                        failure = .errno("pinning \(path) failed", -rc)
                        return
                    }
                    bpf_link__disconnect(link)  // the pin keeps it attached
                }
                // meta: keep next_tables across upgrades
                var meta = bulwark_meta()
                if let old = try? readMeta() { meta.next_tables = old.next_tables }
                if meta.next_tables == 0 { meta.next_tables = 1 }
                meta.abi_version = UInt32(BULWARK_ABI_VERSION)
                meta.object_id = bulwark_u64(identity)
                meta.loaded_at = bulwark_u64(time(nil))
                do throws(EnforcerError) {
                    try map(BULWARK_MAP_META).update(key: Bytes.of(UInt32(0)), value: Bytes.of(meta))
                } catch {
                    failure = error
                }
            }
        }
        if let failure { throw failure }
    }

    /// Detaches every program and removes all pinned state. Containers lose BPF confinement.
    public func unload() throws(EnforcerError) {
        let fm = FileManager.default
        guard fm.fileExists(atPath: pinPath) else { return }
        for dir in [linksDir, mapsDir, trackerDir] {
            for name in (try? fm.contentsOfDirectory(atPath: dir)) ?? [] {
                if unlink(dir + "/" + name) != 0 { throw .errno("cannot remove \(dir)/\(name)") }
            }
            if rmdir(dir) != 0 && errno != ENOENT { throw .errno("cannot remove \(dir)") }
        }
        if rmdir(pinPath) != 0 && errno != ENOENT { throw .errno("cannot remove \(pinPath)") }
    }

}

extension Enforcer {
    /// Per-program run count and run time, as the kernel accounts them while
    /// `kernel.bpf_stats_enabled` is 1 (see `withProgramStats`).
    public struct ProgramStats: Sendable, Equatable {
        public var runs: UInt64
        public var nanoseconds: UInt64
    }

    public func programStats() -> [String: ProgramStats] {
        var out: [String: ProgramStats] = [:]
        for name in Self.programs {
            let linkFD = bpf_obj_get(linksDir + "/" + name)
            guard linkFD >= 0 else { continue }
            defer { close(linkFD) }
            var link = bpf_link_info()
            var len = UInt32(MemoryLayout<bpf_link_info>.size)
            guard bpf_obj_get_info_by_fd(linkFD, &link, &len) == 0 else { continue }
            let progFD = bpf_prog_get_fd_by_id(link.prog_id)
            guard progFD >= 0 else { continue }
            defer { close(progFD) }
            var prog = bpf_prog_info()
            var plen = UInt32(MemoryLayout<bpf_prog_info>.size)
            guard bpf_obj_get_info_by_fd(progFD, &prog, &plen) == 0 else { continue }
            out[name] = ProgramStats(runs: UInt64(prog.run_cnt), nanoseconds: UInt64(prog.run_time_ns))
        }
        return out
    }

    /// Runs `body` with BPF run-time statistics enabled (they cost a little; off by default).
    public static func withProgramStats<T>(_ body: () throws -> T) rethrows -> T {
        let path = "/proc/sys/kernel/bpf_stats_enabled"
        let previous = (try? String(contentsOfFile: path, encoding: .utf8))?.trimmingCharacters(in: .whitespaces)
        try? "1\n".write(toFile: path, atomically: false, encoding: .utf8)
        defer { try? ((previous ?? "0") + "\n").write(toFile: path, atomically: false, encoding: .utf8) }
        return try body()
    }
}
