import BulwarkOCI
import CBulwarkABI
import CLibBPF

#if canImport(Glibc)
    import Glibc
#endif

/// The BPF LSM enforcer as pinned kernel state under `pinPath` (default /sys/fs/bpf/bulwark):
/// `maps/<name>` for every persistent map, `links/<program>` for every attached program. The
/// programs keep enforcing with no process holding them, across agent restarts; a loader that
/// finds the state adopts it instead of reloading.
///
/// Every mutating call takes an exclusive flock on the pin directory, so the agent, the OCI hook
/// and the CLI can share the state.
public struct Enforcer: Sendable {
    public static let defaultPinPath = "/sys/fs/bpf/bulwark"
    public static let persistentMaps = [
        BULWARK_MAP_META, BULWARK_MAP_BINDINGS, BULWARK_MAP_PROFILES, BULWARK_MAP_NAMES, BULWARK_MAP_PATH_PREFIX,
        BULWARK_MAP_PATH_SUFFIX, BULWARK_MAP_COMPOUND, BULWARK_MAP_SOCKETS, BULWARK_MAP_EGRESS4, BULWARK_MAP_EGRESS6,
        BULWARK_MAP_PORT_RANGES, BULWARK_MAP_MOUNTS, BULWARK_MAP_EVENTS, BULWARK_MAP_COUNTERS,
    ]
    /// The programs of bpf/bulwark.bpf.c, one per LSM hook.
    public static let programs = [
        "bw_file_open", "bw_path_symlink", "bw_path_link", "bw_path_rename", "bw_socket_create", "bw_connect",
        "bw_sendmsg", "bw_capable", "bw_ptrace", "bw_mount", "bw_move_mount", "bw_umount",
    ]

    public var pinPath: String
    public init(pinPath: String = Enforcer.defaultPinPath) { self.pinPath = pinPath }

    package var mapsDir: String { pinPath + "/maps" }
    package var linksDir: String { pinPath + "/links" }
    package func mapPath(_ name: String) -> String { mapsDir + "/" + name }
    /// The process tracker's pinned map (syscall recording), kept apart from the enforcer's.
    public var trackerDir: String { pinPath + "/tracker" }

    /// Starts recording the syscalls of `namespace` for behaviour modeling (the OCI hook, before the
    /// container's first instruction; the agent's tracker attaches the recorder). Nothing recorded
    /// so far is reset.
    public func startRecording(namespace: UInt32, profile: String) throws(EnforcerError) {
        let map = try BPFMap(path: trackerDir + "/" + BULWARK_MAP_RECORDING, name: BULWARK_MAP_RECORDING)
        guard map.keySize == 4, map.valueSize == MemoryLayout<bulwark_syscalls>.size else {
            throw EnforcerError("\(BULWARK_MAP_RECORDING): pinned by another Bulwark version")
        }
        var key = namespace
        var value = bulwark_syscalls()
        value.profile = bulwark_u64(FNV1a.hash(profile.utf8))
        let rc = bpf_map_update_elem(map.fd, &key, &value, UInt64(BPF_NOEXIST))
        if rc != 0 && -rc != EEXIST { throw .errno("\(BULWARK_MAP_RECORDING): cannot add namespace \(namespace)", -rc) }
    }

    public func map(_ name: String) throws(EnforcerError) -> BPFMap {
        try BPFMap(path: mapPath(name), name: name)
    }

    /// True when an enforcer is pinned here (one stat; for paths that must stay cheap).
    public var isLoaded: Bool { access(mapPath(BULWARK_MAP_META), F_OK) == 0 }

    package func makeDirectory(_ path: String) throws(EnforcerError) {
        if mkdir(path, 0o700) != 0 && errno != EEXIST { throw .errno("cannot create \(path)") }
    }

    /// Runs `body` holding an exclusive flock on the pin directory.
    package func withLock<T>(_ body: () throws(EnforcerError) -> T) throws(EnforcerError) -> T {
        let fd = open(pinPath, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
        guard fd >= 0 else { throw .errno("cannot open \(pinPath)", hint: "load the enforcer: bulwark enforcer load") }
        defer { close(fd) }
        guard flock(fd, LOCK_EX) == 0 else { throw .errno("cannot lock \(pinPath)") }
        return try body()
    }

    /// Inode of /proc/<pid>/ns/mnt (the key of bw_bindings).
    public static func namespaceInode(pid: Int32) -> UInt64? {
        var st = stat()
        guard stat("/proc/\(pid)/ns/mnt", &st) == 0 else { return nil }
        return UInt64(st.st_ino)
    }

    package static func nameKey(_ name: String) throws(EnforcerError) -> [UInt8] {
        let bytes = Array(name.utf8)
        guard !bytes.isEmpty, bytes.count < Int(BULWARK_PROFILE_NAME_MAX), !bytes.contains(0) else {
            throw EnforcerError(
                "profile name \"\(name)\" must be 1–\(BULWARK_PROFILE_NAME_MAX - 1) bytes without NUL")
        }
        return bytes + [UInt8](repeating: 0, count: Int(BULWARK_PROFILE_NAME_MAX) - bytes.count)
    }

    public struct LoadedProfile: Sendable, Codable, Equatable {
        public var name: String
        public var id: UInt32
        public var mode: String
        public var tables: UInt32
    }

    public func loadedProfiles() -> [LoadedProfile] {
        guard let names = try? map(BULWARK_MAP_NAMES), let profiles = try? map(BULWARK_MAP_PROFILES) else { return [] }
        var out: [LoadedProfile] = []
        for key in names.keys() {
            guard let id = names.lookup(key: key).flatMap({ Bytes.load(UInt32.self, from: $0) }) else { continue }
            let name = String(decoding: key.prefix { $0 != 0 }, as: UTF8.self)
            let p = profiles.lookup(key: Bytes.of(id)).flatMap { Bytes.load(bulwark_profile.self, from: $0) }
            let mode = p.map { $0.mode == UInt32(BULWARK_PROFILE_COMPLAIN) ? "complain" : "enforce" } ?? "missing"
            out.append(.init(name: name, id: id, mode: mode, tables: p?.tables ?? 0))
        }
        return out.sorted { $0.name < $1.name }
    }

    public func profileID(named name: String) throws(EnforcerError) -> UInt32? {
        let names = try map(BULWARK_MAP_NAMES)
        return names.lookup(key: try Self.nameKey(name)).flatMap { Bytes.load(UInt32.self, from: $0) }
    }
}
