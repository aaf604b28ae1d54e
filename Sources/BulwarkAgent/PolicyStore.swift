import BulwarkBPF
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import Foundation
import Logging
import Synchronization

/// The agent's active policies: the last good version of every file in the policy directories,
/// compiled and delivered to the kernel. An invalid file never replaces a good one; a removed file
/// unloads its profiles (a BPF profile stays while containers are still bound to it).
public final class PolicyStore: Sendable {
    /// The policy that owns a profile, as events name it.
    public struct Owner: Sendable, Equatable {
        public var kind: String
        public var name: String
        public var namespace: String
    }

    public struct FileStatus: Sendable, Equatable {
        public var path: String
        public var valid: Bool
        /// Display names of the policies active from this file.
        public var policies: [String]
        /// `file:line: field: message (hint)` lines of the last rejected version.
        public var errors: [String]
        /// The file is invalid now but an earlier valid version stays active.
        public var keptLastGood: Bool
    }

    public struct ProfileStatus: Sendable, Equatable {
        public var name: String
        public var policy: String
        public var mode: String
        public var seccomp: String
        public var appArmor: String
        public var bpf: String
    }

    struct State {
        var good: [String: [Policy]] = [:]
        var files: [String: FileStatus] = [:]
        /// profile name → the policy last delivered under it
        var applied: [String: Policy] = [:]
        /// `applied` indexed for decisions, rebuilt when it changes
        var index = PolicyIndex([])
        var profiles: [String: ProfileStatus] = [:]
        var reloads = 0
        var lastReload = 0.0
    }

    let config: NodeConfig
    let logger: Logger
    let notice: @Sendable (JSONValue) -> Void
    private let state = Mutex(State())
    private let serial = NSLock()

    public init(config: NodeConfig, logger: Logger, notice: @escaping @Sendable (JSONValue) -> Void = { _ in }) {
        self.config = config
        self.logger = logger
        self.notice = notice
    }

    public func owner(ofProfile name: String) -> Owner? {
        state.withLock { s in
            s.applied[name].map {
                Owner(kind: $0.kind.rawValue, name: $0.name, namespace: $0.namespace ?? "")
            }
        }
    }

    public var files: [FileStatus] { state.withLock { $0.files.values.sorted { $0.path < $1.path } } }
    public var profiles: [ProfileStatus] { state.withLock { $0.profiles.values.sorted { $0.name < $1.name } } }
    /// The active policies indexed for decisions (built once per reload, not per container).
    public var activeIndex: PolicyIndex { state.withLock { $0.index } }
    public var reloads: Int { state.withLock { $0.reloads } }

    /// Re-reads every policy file and delivers what changed. Serialized: the inotify watcher and
    /// SIGHUP may ask at the same time.
    @discardableResult
    public func reload() -> (applied: Int, removed: Int, rejected: Int) {
        serial.lock()
        defer { serial.unlock() }
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        let paths = PolicyFiles.directoryContents(config.policyDirectories)
        var s = state.withLock { $0 }
        var rejected = 0
        for file in PolicyFiles.load(paths, options: options) {
            if file.isValid {
                s.good[file.file] = file.policies
                s.files[file.file] = FileStatus(
                    path: file.file, valid: true, policies: file.policies.map(\.displayName), errors: [],
                    keptLastGood: false)
            } else {
                rejected += 1
                let errors = file.errors.map(\.description)
                let kept = s.good[file.file] != nil
                s.files[file.file] = FileStatus(
                    path: file.file, valid: false, policies: (s.good[file.file] ?? []).map(\.displayName),
                    errors: errors, keptLastGood: kept)
                logger.error(
                    "policy file rejected",
                    metadata: [
                        "file": "\(file.file)", "errors": "\(errors.joined(separator: "; "))",
                        "kept": "\(kept ? "the last good version stays active" : "nothing from it is active")",
                    ])
                notice(
                    .object(
                        JSONObject([
                            ("level", .string("error")), ("message", .string("policy file rejected")),
                            ("file", .string(file.file)), ("errors", .array(errors.map(JSONValue.string))),
                            ("keptLastGood", .bool(kept)),
                        ])))
            }
        }
        let present = Set(paths)
        for gone in s.good.keys where !present.contains(gone) {
            s.good[gone] = nil
            s.files[gone] = nil
            logger.info("policy file removed", metadata: ["file": "\(gone)"])
        }
        // profile name → policy; the first file (sorted path order) wins a duplicate name
        var wanted: [String: Policy] = [:]
        for path in s.good.keys.sorted() {
            for p in s.good[path] ?? [] {
                let name = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
                if let other = wanted[name], other != p {
                    logger.warning(
                        "two policies define the same profile; the first is active",
                        metadata: ["profile": "\(name)", "file": "\(path)"])
                    continue
                }
                wanted[name] = p
            }
        }
        var applied = 0
        var removed = 0
        let enforcer = Enforcer(pinPath: config.bpfPinPath)
        let disks = NodeFacts.diskDevices()  // once a reload, not once a profile
        for (name, policy) in wanted.sorted(by: { $0.key < $1.key }) where s.applied[name] != policy {
            s.profiles[name] = deliver(policy, profile: name, enforcer: enforcer, disks: disks)
            s.applied[name] = policy
            applied += 1
        }
        for name in s.applied.keys.sorted() where wanted[name] == nil {
            if let kept = withdraw(name, enforcer: enforcer) {
                s.profiles[name]?.bpf = kept
                continue
            }
            s.applied[name] = nil
            s.profiles[name] = nil
            removed += 1
        }
        if applied > 0 || removed > 0 { s.index = PolicyIndex(Array(s.applied.values)) }
        s.reloads += 1
        s.lastReload = Date().timeIntervalSince1970
        let final = s
        state.withLock { $0 = final }
        logger.info(
            "policies reloaded",
            metadata: [
                "profiles": "\(wanted.count)", "changed": "\(applied)", "removed": "\(removed)",
                "rejectedFiles": "\(rejected)",
            ])
        return (applied, removed, rejected)
    }

    /// What `reload` would load, without touching the kernel or any file (`bulwarkd --check`).
    public func dryRun() -> String {
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        let paths = PolicyFiles.directoryContents(config.policyDirectories)
        var out = ["policy directories: \(config.policyDirectories.joined(separator: ", ")) (\(paths.count) files)"]
        for file in PolicyFiles.load(paths, options: options) {
            if file.isValid {
                for p in file.policies {
                    let name = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
                    let enforcers = p.spec.policy.enforcers.intersection(config.enforcers).names
                    out.append(
                        "ok       \(file.file): \(p.kind.rawValue) \(p.displayName) → profile \(name) "
                            + "[\(enforcers.joined(separator: ", "))]")
                }
            } else {
                out.append("rejected \(file.file):")
                out += file.errors.map { "  " + $0.description }
            }
        }
        return out.joined(separator: "\n")
    }

    // MARK: Delivery

    func deliver(_ policy: Policy, profile name: String, enforcer: Enforcer, disks: [String]) -> ProfileStatus {
        let enforcers = policy.spec.policy.enforcers.intersection(config.enforcers)
        var st = ProfileStatus(
            name: name, policy: policy.displayName, mode: policy.spec.policy.mode.rawValue, seccomp: "not requested",
            appArmor: "not requested", bpf: "not requested")
        if enforcers.contains(.seccomp) {
            let json = SeccompCompiler().compile(policy).json.serialized()
            let path = config.seccompProfileDirectory + "/" + name + ".json"
            do {
                try TrustedDirectory.ensure(config.seccompProfileDirectory)
                try AtomicFile.write(Data(json), to: path, permissions: 0o644)
                st.seccomp = "stored \(path)"
            } catch {
                st.seccomp = "failed: cannot write \(path): \(error)"
                logger.error("cannot store seccomp profile", metadata: ["profile": "\(name)", "error": "\(error)"])
            }
        }
        if enforcers.contains(.appArmor) {
            st.appArmor = loadAppArmor(AppArmorCompiler(diskDevices: disks).compile(policy, profileName: name))
        }
        if enforcers.contains(.bpf) {
            if !enforcer.isLoaded {
                st.bpf = "unavailable: the BPF enforcer is not loaded"
            } else {
                do {
                    let r = try enforcer.apply(BPFCompiler(diskDevices: disks).compile(policy, profileName: name))
                    st.bpf = "loaded as id \(r.id) (\(r.rows) rows\(r.replaced ? ", replaced live" : ""))"
                    if !r.skipped.isEmpty {
                        logger.warning(
                            "BPF rules skipped", metadata: ["profile": "\(name)", "skipped": "\(r.skipped)"])
                    }
                } catch {
                    st.bpf = "failed: \(error.message); the previous version stays in force"
                    logger.error("BPF profile not loaded", metadata: ["profile": "\(name)", "error": "\(error)"])
                }
            }
        }
        logger.info(
            "profile delivered",
            metadata: [
                "profile": "\(name)", "seccomp": "\(st.seccomp)", "apparmor": "\(st.appArmor)", "bpf": "\(st.bpf)",
            ])
        return st
    }

    /// Unloads a profile whose policy is gone. Returns a status when its BPF profile must stay
    /// (containers are still bound to it; unloading would leave them unconfined).
    func withdraw(_ name: String, enforcer: Enforcer) -> String? {
        if enforcer.isLoaded, let id = try? enforcer.profileID(named: name) {
            let bound = enforcer.bindings().filter { $0.profileID == id }.count
            if bound > 0 {
                logger.warning(
                    "policy removed but containers are still bound to its BPF profile; kept until they stop",
                    metadata: ["profile": "\(name)", "containers": "\(bound)"])
                return "kept: policy removed, \(bound) container(s) still bound"
            }
            do { try enforcer.remove(profile: name) } catch {
                logger.error("cannot unload BPF profile", metadata: ["profile": "\(name)", "error": "\(error)"])
            }
        }
        unlink(config.seccompProfileDirectory + "/" + name + ".json")
        let aaFile = config.appArmorProfileDirectory + "/" + name
        if NodeFacts.appArmorEnabled, access(aaFile, F_OK) == 0, let parser = Spawn.find("apparmor_parser") {
            let r = Spawn.run(parser, ["-R", aaFile])
            if r.status != 0 {
                logger.error("apparmor_parser -R failed", metadata: ["profile": "\(name)", "stderr": "\(r.stderr)"])
            }
        }
        unlink(aaFile)
        logger.info("profile unloaded", metadata: ["profile": "\(name)"])
        return nil
    }

    func loadAppArmor(_ profile: AppArmorProfile) -> String {
        guard NodeFacts.appArmorEnabled else { return "unavailable: AppArmor is not enabled in this kernel" }
        guard let parser = Spawn.find("apparmor_parser") else { return "unavailable: apparmor_parser not installed" }
        let path = config.appArmorProfileDirectory + "/" + profile.name
        do {
            try TrustedDirectory.ensure(config.appArmorProfileDirectory)
            try AtomicFile.write(Data(profile.text.utf8), to: path, permissions: 0o644)
        } catch {
            return "failed: cannot write \(path): \(error)"
        }
        let r = Spawn.run(parser, ["-r", "-W", path])
        guard r.status == 0 else {
            let first = r.stderr.split(separator: "\n").first.map(String.init) ?? "exit \(r.status)"
            logger.error("apparmor_parser failed", metadata: ["profile": "\(profile.name)", "stderr": "\(r.stderr)"])
            return "failed: apparmor_parser: \(first); the previous version stays in force"
        }
        return "loaded" + (profile.complain ? " (complain)" : "")
    }
}

/// Facts about this node the agent reads once in a while.
enum NodeFacts {
    static var appArmorEnabled: Bool {
        guard let s = try? String(contentsOfFile: "/sys/module/apparmor/parameters/enabled", encoding: .utf8) else {
            return false
        }
        return s.hasPrefix("Y") && access("/sys/kernel/security/apparmor/.replace", F_OK) == 0
    }

    /// Whole-disk names from /proc/partitions (sda, nvme0n1, vda — not their partitions).
    static func diskDevices() -> [String] {
        guard let text = try? String(contentsOfFile: "/proc/partitions", encoding: .utf8) else { return [] }
        return text.split(separator: "\n").dropFirst().compactMap { line -> String? in
            guard let name = line.split(separator: " ").last, name != "name" else { return nil }
            let n = String(name)
            if n.hasPrefix("nvme") || n.hasPrefix("mmcblk") { return n.contains("p") ? nil : n }
            return n.last?.isNumber == true ? nil : n
        }
    }

    static func hostName() -> String {
        var buf = [UInt8](repeating: 0, count: 256)
        gethostname(&buf, buf.count - 1)
        return String(decoding: buf.prefix { $0 != 0 }, as: UTF8.self)
    }
}
