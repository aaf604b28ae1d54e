import BulwarkBPFMaps
import BulwarkPolicy
import BulwarkProfiles
import CBulwarkABI
import Foundation

/// `bulwark selftest`: on the running kernel, proves deny, audit and complain for every rule
/// type — and for allow-lists (DefenseInDepth): refused outside, recorded in observation mode —
/// with real throwaway mount namespaces, real profiles compiled from vArmor YAML, and the
/// loaded programs. Each case spawns a probe (`unshare --mount` + the probe executable), binds
/// its namespace, asks it to perform one act, and checks both the act's errno and the ring-buffer
/// event.
public struct Selftest {
    public enum Mode: String, CaseIterable, Sendable { case deny, audit, complain }

    public struct Case: Sendable {
        public var name: String
        /// `enhanceProtect` YAML lines (indented 6) for the rule under test; `{dir}` = fixture dir.
        public var rules: String
        public var act: [String]
        public var event: BPFEvent.Kind
        public var arming: Enforcer.Arming = .firstUse
        /// Acts the probe performs before it is bound (runtime set-up).
        public var setup: [[String]] = []
        /// The act must never be refused nor recorded (regression tests of vArmor's holes).
        public var negative = false
        /// errnos that mean "refused" (the hook returns -EPERM; /proc reports a refused ptrace
        /// check as EACCES).
        public var refusal: Set<Int32> = [EPERM]
        /// An allow-list case: `rules` are the allow entries (`[Q]` = allow) of a DefenseInDepth
        /// profile and `act` lies outside them (deny: refused, audit: observation mode, let through
        /// and recorded ALLOWED) — or, `negative`, inside them (neither refused nor recorded).
        public var allowList = false
    }

    public struct Result: Sendable {
        public var name: String
        public var mode: Mode
        public var passed: Bool
        public var detail: String
    }

    public var enforcer: Enforcer
    /// argv that starts a probe (`bulwark selftest-probe`).
    public var probe: [String]
    public var unshare = "/usr/bin/unshare"

    public init(enforcer: Enforcer, probe: [String]) {
        self.enforcer = enforcer
        self.probe = probe
    }

    public static let cases: [Case] = [
        Case(
            name: "file read", rules: files("{dir}/secret", "read"), act: ["read", "{dir}/secret"], event: .file),
        Case(
            name: "file write", rules: files("{dir}/secret", "write"), act: ["write", "{dir}/secret"], event: .file),
        Case(
            name: "file append", rules: files("{dir}/secret", "append"), act: ["append", "{dir}/secret"],
            event: .file),
        Case(
            name: "file create", rules: files("{dir}/newfile", "write"), act: ["create", "{dir}/newfile"], event: .file),
        Case(
            name: "file prefix", rules: files("{dir}/sub/**", "read"), act: ["read", "{dir}/sub/deep/file"],
            event: .file),
        Case(
            name: "file suffix", rules: files("/**/deep/file", "read"), act: ["read", "{dir}/sub/deep/file"],
            event: .file),
        Case(
            name: "file exact (not a prefix)", rules: files("{dir}/passwd", "read"), act: ["read", "{dir}/passwd-"],
            event: .file, negative: true),
        Case(
            name: "link", rules: files("{dir}/newlink", "write"), act: ["link", "{dir}/plain", "{dir}/newlink"],
            event: .file),
        Case(
            name: "rename", rules: files("{dir}/renamed", "write"), act: ["rename", "{dir}/plain", "{dir}/renamed"],
            event: .file),
        Case(
            name: "symlink", rules: files("{dir}/sym", "write"), act: ["symlink", "{dir}/plain", "{dir}/sym"],
            event: .file),
        Case(
            name: "exec", rules: processes("{dir}/denied-bin"), act: ["exec", "{dir}/denied-bin"], event: .exec),
        Case(
            name: "exec (entrypoint arms)", rules: processes("{dir}/denied-bin"), act: ["exec", "{dir}/denied-bin"],
            event: .exec, arming: .exec),
        Case(
            name: "socket tcp (protocol 0)",
            rules:
                "        network:\n          sockets:\n          - {qualifiers: [Q], domains: [inet], protocols: [tcp]}",
            act: ["socket", "2", "1", "0"], event: .network),
        Case(
            name: "connect ipv4", rules: egress("{ip: 127.0.0.1, ports: [{port: 9}]}"),
            act: ["connect", "127.0.0.1", "9"], event: .network),
        Case(
            name: "connect ipv4-mapped ipv6", rules: egress("{ip: 169.254.169.254}"),
            act: ["connect", "::ffff:169.254.169.254", "80"], event: .network),
        Case(
            name: "connect ipv6", rules: egress("{cidr: \"::1/128\", ports: [{port: 9}]}"),
            act: ["connect", "::1", "9"], event: .network),
        Case(
            name: "sendto udp (unconnected)", rules: egress("{ip: 127.0.0.1, ports: [{port: 9}]}"),
            act: ["sendto", "127.0.0.1", "9"], event: .network),
        Case(
            name: "ptrace read", rules: "        ptrace: {qualifiers: [Q], strictMode: true, permissions: [read]}",
            act: ["read", "/proc/{host}/environ"], event: .ptrace, refusal: [EPERM, EACCES]),
        Case(
            name: "ptrace trace", rules: "        ptrace: {qualifiers: [Q], strictMode: true, permissions: [trace]}",
            act: ["read", "/proc/{host}/mem"], event: .ptrace, refusal: [EPERM, EACCES]),
        Case(
            name: "mount",
            rules: "        mounts:\n        - {qualifiers: [Q], sourcePattern: \"**\", fstype: tmpfs, flags: [all]}",
            act: ["mount", "{dir}/mnt"], event: .mount),
        Case(
            name: "umount",
            rules:
                "        mounts:\n        - {qualifiers: [Q], sourcePattern: \"**\", fstype: \"*\", flags: [umount]}",
            act: ["umount", "{dir}/mnt"], event: .mount, setup: [["mount", "{dir}/mnt"]]),
        Case(
            name: "capability (root, full set)", rules: "", act: ["chown", "{dir}/plain", "1"], event: .capability),
        // allow-lists: the same hooks, refusing what no entry allows
        Case(
            name: "allow-list: file outside", rules: files("{dir}/plain", "read"), act: ["read", "{dir}/secret"],
            event: .file, allowList: true),
        Case(
            name: "allow-list: file inside", rules: files("{dir}/sub/**", "read"),
            act: ["read", "{dir}/sub/deep/file"],
            event: .file, negative: true, allowList: true),
        Case(
            name: "allow-list: exec outside", rules: processes("{dir}/sub/**"), act: ["exec", "{dir}/denied-bin"],
            event: .exec, allowList: true),
        Case(
            name: "allow-list: connect outside",
            rules: "        network:\n          sockets:\n          - {qualifiers: [Q], domains: [inet]}\n"
                + "          egress:\n            toDestinations:\n            - {qualifiers: [Q], ip: 127.0.0.2}",
            act: ["connect", "127.0.0.1", "9"], event: .network, allowList: true),
        Case(
            name: "allow-list: capability outside", rules: files("{dir}/plain", "read"),
            act: ["chown", "{dir}/plain", "1"], event: .capability, allowList: true),
        Case(
            name: "allow-list: ptrace outside",
            rules: files("/proc/**", "read")
                + "\n        ptrace: {qualifiers: [Q], strictMode: true, permissions: [trace]}",
            act: ["read", "/proc/{host}/environ"], event: .ptrace, refusal: [EPERM, EACCES], allowList: true),
        Case(
            name: "allow-list: mount outside",
            rules: "        mounts:\n        - {qualifiers: [Q], sourcePattern: /nowhere, fstype: proc, flags: [all]}",
            act: ["mount", "{dir}/mnt"], event: .mount, allowList: true),
    ]

    static func files(_ pattern: String, _ perm: String) -> String {
        "        files:\n        - {qualifiers: [Q], pattern: \"\(pattern)\", permissions: [\(perm)]}"
    }
    static func processes(_ pattern: String) -> String {
        "        processes:\n        - {qualifiers: [Q], pattern: \"\(pattern)\", permissions: [exec]}"
    }
    static func egress(_ dest: String) -> String {
        "        network:\n          egress:\n            toDestinations:\n            - \(dest.replacingOccurrences(of: "{ip", with: "{qualifiers: [Q], ip").replacingOccurrences(of: "{cidr", with: "{qualifiers: [Q], cidr"))"
    }

    /// The vArmor `spec.policy` for a case in a mode.
    public static func policyYAML(_ c: Case, _ mode: Mode, dir: String) -> String {
        var body: String
        switch mode {
        case .complain:
            body = "    mode: BehaviorModeling\n    modelingOptions: {duration: 1}"
        case .deny where c.allowList, .audit where c.allowList:
            let rules = c.rules.replacingOccurrences(of: "[Q]", with: "[allow]")
                .replacingOccurrences(of: "{dir}", with: dir).split(separator: "\n").map { "  " + $0 }
                .joined(separator: "\n")
            body = """
                    mode: DefenseInDepth
                    defenseInDepth:
                      allowViolations: \(mode == .audit)
                      bpf:
                        profileType: Custom
                        bpfRawRules:
                """
            body += "\n" + rules
        case .deny, .audit:
            let q = mode == .deny ? "deny, audit" : "audit"
            var rules = c.rules.replacingOccurrences(of: "[Q]", with: "[\(q)]")
            rules = rules.replacingOccurrences(of: "{dir}", with: dir)
            let hardening = c.event == .capability ? "\n      hardeningRules: [disable-cap-chown]" : ""
            body = """
                    mode: EnhanceProtect
                    enhanceProtect:
                      privileged: true
                      auditViolations: true
                      allowViolations: \(mode == .audit)\(hardening)
                """
            if !rules.isEmpty { body += "\n      bpfRawRules:\n" + rules }
        }
        return "    enforcer: BPF\n" + body
    }

    public func run(log: (String) -> Void = { _ in }) throws(EnforcerError) -> [Result] {
        let reader = try EventReader(enforcer: enforcer)
        var results: [Result] = []
        let root = try makeTemporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: root) }
        var n = 0
        for c in Self.cases {
            for mode in Mode.allCases {
                n += 1
                let dir = root + "/\(n)"
                let r: Result
                do {
                    try makeFixtures(dir)
                    r = try runCase(c, mode, dir: dir, profileName: "bulwark-selftest-\(n)", reader: reader)
                } catch {
                    r = Result(name: c.name, mode: mode, passed: false, detail: "\(error)")
                }
                log("\(r.passed ? "PASS" : "FAIL")  \(r.name) [\(r.mode.rawValue)]: \(r.detail)")
                results.append(r)
            }
        }
        return results
    }

    func runCase(_ c: Case, _ mode: Mode, dir: String, profileName: String, reader: EventReader) throws -> Result {
        let parsed = PolicyParser.inline(Self.policyYAML(c, mode, dir: dir), name: "selftest")
        guard parsed.isValid, let policy = parsed.policies.first else {
            throw EnforcerError("selftest policy does not validate: \(parsed.errors.map(\.description))")
        }
        let profile = try BPFCompiler().compile(policy, profileName: profileName)
        try enforcer.apply(profile)
        defer { try? enforcer.remove(profile: profileName) }

        let host = String(getpid())
        let subst = { (w: String) in
            w.replacingOccurrences(of: "{dir}", with: dir).replacingOccurrences(of: "{host}", with: host)
        }
        let probe = try Probe(argv: [unshare, "--mount", "--propagation", "private", "--"] + self.probe)
        defer { probe.finish() }
        for s in c.setup {
            let rc = probe.perform(s.map(subst))
            guard rc == 0 else { throw EnforcerError("setup \(s.joined(separator: " ")) failed: errno \(rc ?? -1)") }
        }
        guard let ns = Enforcer.namespaceInode(pid: probe.pid) else { throw EnforcerError("probe vanished") }
        _ = reader.drain()
        try enforcer.bind(pid: probe.pid, profile: profileName, arming: c.arming)
        defer { _ = try? enforcer.unbind(namespace: UInt32(ns)) }

        let act = c.act.map(subst)
        let rc: Int32
        if act.first == "exec" {
            rc = probe.performExec(act)
        } else {
            rc = probe.perform(act) ?? -1
        }
        let events = reader.drain().filter { $0.mountNamespace == UInt32(ns) && $0.kind == c.event }
        let action = events.first?.action
        let seen = events.isEmpty ? "no event" : "event \(action!.rawValue)\(events.first!.path.map { " " + $0 } ?? "")"
        let outcome = rc == 0 ? "allowed" : (rc == EPERM ? "EPERM" : rc == EACCES ? "EACCES" : "errno \(rc)")
        let refused = c.refusal.contains(rc)
        let passed: Bool
        if c.negative {
            passed = !refused && (mode == .complain ? action == .allowed : events.isEmpty)
        } else {
            switch mode {
            case .deny: passed = refused && action == .denied
            case .audit: passed = !refused && action == (c.allowList ? .allowed : .audit)
            case .complain: passed = !refused && action == .allowed
            }
        }
        return Result(name: c.name, mode: mode, passed: passed, detail: "\(outcome), \(seen)")
    }

    func makeTemporaryDirectory() throws(EnforcerError) -> String {
        var template = Array("/tmp/bulwark-selftest.XXXXXX".utf8CString)
        guard mkdtemp(&template) != nil else { throw .errno("mkdtemp") }
        return String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    func makeFixtures(_ dir: String) throws {
        let fm = FileManager.default
        try fm.createDirectory(atPath: dir + "/sub/deep", withIntermediateDirectories: true)
        try fm.createDirectory(atPath: dir + "/mnt", withIntermediateDirectories: true)
        for f in ["secret", "plain", "passwd", "passwd-", "sub/deep/file"] {
            guard fm.createFile(atPath: dir + "/" + f, contents: Data("x\n".utf8)) else {
                throw EnforcerError("cannot create \(dir)/\(f)")
            }
        }
        let bin = dir + "/denied-bin"
        try fm.copyItem(atPath: "/bin/true", toPath: bin)
        chmod(bin, 0o755)
    }
}

/// A probe process in its own mount namespace, driven line by line (`bulwark selftest-probe`
/// started through `unshare --mount`).
public final class Probe {
    let process = Process()
    let input = Pipe()
    let output = Pipe()
    var buffer: [UInt8] = []
    public var pid: Int32 { process.processIdentifier }

    public init(argv: [String]) throws {
        process.executableURL = URL(fileURLWithPath: argv[0])
        process.arguments = Array(argv.dropFirst())
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        guard readLine() == "ready" else {
            process.terminate()
            throw EnforcerError("the selftest probe did not start (\(argv.joined(separator: " ")))")
        }
    }

    /// Sends one line to the probe.
    public func send(_ line: String) {
        input.fileHandleForWriting.write(Data((line + "\n").utf8))
    }

    public func readLine() -> String? {
        while true {
            if let i = buffer.firstIndex(of: 10) {
                let line = String(decoding: buffer[..<i], as: UTF8.self)
                buffer.removeSubrange(...i)
                return line
            }
            let chunk = output.fileHandleForReading.availableData
            if chunk.isEmpty { return nil }
            buffer += chunk
        }
    }

    /// Returns 0, the errno, or nil if the probe died.
    public func perform(_ act: [String]) -> Int32? {
        input.fileHandleForWriting.write(Data((act.joined(separator: " ") + "\n").utf8))
        guard let line = readLine() else { return nil }
        if line == "ok" { return 0 }
        return Int32(line.split(separator: " ").last ?? "") ?? -1
    }

    /// exec replaces the probe: success shows as exit status 0 of the exec'd /bin/true copy.
    public func performExec(_ act: [String]) -> Int32 {
        input.fileHandleForWriting.write(Data((act.joined(separator: " ") + "\n").utf8))
        if let line = readLine() {
            return Int32(line.split(separator: " ").last ?? "") ?? -1
        }
        process.waitUntilExit()
        return process.terminationStatus == 0 ? 0 : -1
    }

    public func finish() {
        try? input.fileHandleForWriting.close()
        process.waitUntilExit()
    }
}
