import BulwarkBPF
import BulwarkBPFMaps
import BulwarkBPFObject
import BulwarkPolicy
import BulwarkProfiles
import BulwarkTestSupport
import CBulwarkABI
import Foundation
import Testing

// The kernel tier: real BPF LSM programs on the running kernel. These tests run as root on a
// kernel with BPF LSM active — in CI, inside the VM started by scripts/kernel-tests.sh (this
// machine's own kernel refuses BPF LSM programs). Elsewhere the framework skips them with the
// reason (`.needs(kernelNeeds)`); with BULWARK_REQUIRE_KERNEL=1 (set by the VM runner) a missing BPF
// LSM is a failure instead.

let requireKernel = ProcessInfo.processInfo.environment["BULWARK_REQUIRE_KERNEL"] == "1"

/// The kernel's support, probed once.
let support = KernelSupport.probe()

/// Root on a kernel with a usable BPF LSM.
let kernelNeeds = Needs(
    met: getuid() == 0 && support.usable,
    reason: getuid() != 0
        ? "needs root"
        : "BPF LSM unavailable on \(support.kernelRelease) (scripts/kernel-tests.sh runs this tier in a VM); "
            + (support.problems.last ?? ""),
    requiredBy: "BULWARK_REQUIRE_KERNEL")

/// Kernel-tier tools, required with the kernel (the VM has them all).
func kernelNeeds(_ paths: [String?], _ reason: String) -> Needs {
    kernelNeeds.and(
        Needs(
            met: paths.allSatisfy { $0.map { FileManager.default.isExecutableFile(atPath: $0) } ?? false },
            reason: reason, requiredBy: "BULWARK_REQUIRE_KERNEL"))
}

/// The shared enforcer, or nil after a recorded failure (reached only where the kernel tier is
/// required: elsewhere the suite's `.needs(kernelNeeds)` trait skipped the test).
func kernelOrSkip() -> Enforcer? {
    kernelNeeds.check() ? Kernel.shared : nil
}

/// One enforcer for the whole run, pinned apart from a production one.
enum Kernel {
    static let pinPath = "/sys/fs/bpf/bulwark-test-\(getpid())"
    static let shared: Enforcer = {
        let e = Enforcer(pinPath: pinPath)
        do { try e.load(support: support) } catch { fatalError("enforcer load failed: \(error)") }
        atexit { try? Enforcer(pinPath: Kernel.pinPath).unload() }
        return e
    }()
}

/// The built `bulwark` executable (the probe).
let bulwarkBinary: String = {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    for _ in 0..<4 {
        if FileManager.default.isExecutableFile(atPath: dir.appendingPathComponent("bulwark").path) {
            return dir.appendingPathComponent("bulwark").path
        }
        dir.deleteLastPathComponent()
    }
    var repo = URL(fileURLWithPath: #filePath)
    for _ in 0..<3 { repo.deleteLastPathComponent() }
    return repo.appendingPathComponent(".build/debug/bulwark").path
}()

func probe() throws -> Probe {
    try Probe(argv: ["/usr/bin/unshare", "--mount", "--propagation", "private", "--", bulwarkBinary, "selftest-probe"])
}

func compile(_ rules: String, name: String, mode: String = "deny, audit") -> BPFProfile {
    let body = """
            enforcer: BPF
            mode: EnhanceProtect
            enhanceProtect:
              privileged: true
              auditViolations: true
              bpfRawRules:
        \(rules.replacingOccurrences(of: "[Q]", with: "[\(mode)]"))
        """
    let r = PolicyParser.inline(body, name: "k")
    precondition(r.isValid, "\(r.errors)")
    return try! BPFCompiler().compile(r.policies[0], profileName: name)  // EnhanceProtect: cannot throw
}

/// "A running container": `sleep 60` in a mount namespace of its own, and that namespace's inode.
func containerLikeProcess() throws -> (process: Process, namespace: UInt64) {
    let sleeper = Process()
    sleeper.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
    sleeper.arguments = ["--mount", "--propagation", "private", "--", "/bin/sleep", "60"]
    try sleeper.run()
    for _ in 0..<50 {
        if let n = Enforcer.namespaceInode(pid: sleeper.processIdentifier),
            n != Enforcer.namespaceInode(pid: getpid())
        {
            return (sleeper, n)
        }
        usleep(100_000)
    }
    sleeper.terminate()
    throw EnforcerError("the process did not get its own mount namespace")
}

/// A TCP connect from `pid`'s mount namespace (where its binding applies), as bash's `/dev/tcp`
/// does it; bash's message, lower-cased ("operation not permitted" when the enforcer refused it).
func connect(from pid: Int32, _ host: String, _ port: Int) -> String {
    let out = try? capture(
        "/usr/bin/nsenter", ["-t", "\(pid)", "-m", "--", "/bin/bash", "-c", "exec 3<>/dev/tcp/\(host)/\(port)"])
    return out?.1.lowercased() ?? "nsenter failed"
}

func fixture() throws -> String {
    var template = Array("/tmp/bulwark-kt.XXXXXX".utf8CString)
    guard mkdtemp(&template) != nil else { throw EnforcerError("mkdtemp failed") }
    let dir = String(decoding: template.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    for f in ["x", "y", "z"] { _ = FileManager.default.createFile(atPath: "\(dir)/\(f)", contents: Data("1".utf8)) }
    return dir
}

@Suite("Kernel tier (BPF LSM)", .serialized, .needs(kernelNeeds))
struct KernelTests {
    @Test func selftestPassesEveryCase() throws {
        guard let e = kernelOrSkip() else { return }
        let results = try Selftest(enforcer: e, probe: [bulwarkBinary, "selftest-probe"]).run()
        #expect(results.count == Selftest.cases.count * 3)
        for r in results where !r.passed { Issue.record("\(r.name) [\(r.mode.rawValue)]: \(r.detail)") }
    }

    @Test func unboundNamespacesAndTheHostAreUnaffected() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        try e.apply(
            compile(
                "        files:\n        - {qualifiers: [Q], pattern: \(dir)/x, permissions: [read]}",
                name: "kt-unbound"))
        defer { try? e.remove(profile: "kt-unbound") }
        let bound = try probe()
        defer { bound.finish() }
        try e.bind(pid: bound.pid, profile: "kt-unbound", arming: .firstUse)
        let unbound = try probe()
        defer { unbound.finish() }
        #expect(bound.perform(["read", "\(dir)/x"]) == EPERM)
        #expect(unbound.perform(["read", "\(dir)/x"]) == 0)
        #expect(SelftestProbe.perform("read", ["\(dir)/x"]) == 0)  // this process: the host namespace
    }

    /// A container spec without its own mount namespace must not confine the host: bind refuses.
    @Test func aProcessInTheHostMountNamespaceIsNeverBound() throws {
        guard let e = kernelOrSkip() else { return }
        try e.apply(
            compile(
                "        files:\n        - {qualifiers: [Q], pattern: /nonexistent-x, permissions: [read]}",
                name: "kt-host"))
        defer { try? e.remove(profile: "kt-host") }
        #expect(throws: EnforcerError.self) { try e.bind(pid: getpid(), profile: "kt-host", arming: .firstUse) }
        #expect(!e.bindings().contains { $0.profileName == "kt-host" })
    }

    @Test func aReusedNamespaceInodeIsNotConfinedByAStaleBinding() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        try e.apply(
            compile(
                "        files:\n        - {qualifiers: [Q], pattern: \(dir)/x, permissions: [read]}", name: "kt-reuse")
        )
        defer { try? e.remove(profile: "kt-reuse") }
        var reused = false
        for _ in 0..<5 {
            let a = try probe()
            let ns = Enforcer.namespaceInode(pid: a.pid)!
            try e.bind(pid: a.pid, profile: "kt-reuse", arming: .firstUse)
            #expect(a.perform(["read", "\(dir)/x"]) == EPERM)  // armed
            a.finish()  // namespace dies; the binding stays (no poststop here, on purpose)
            let staleBefore = e.counters()["stale"] ?? 0
            let b = try probe()
            defer { b.finish() }
            guard Enforcer.namespaceInode(pid: b.pid) == ns else {
                _ = try? e.unbind(namespace: UInt32(ns))
                continue
            }
            reused = true
            #expect(e.bindings().contains { $0.namespace == UInt32(ns) && $0.armed })
            #expect(b.perform(["read", "\(dir)/x"]) == 0, "the new namespace with the same inode must not be confined")
            #expect((e.counters()["stale"] ?? 0) > staleBefore)
            _ = try? e.unbind(namespace: UInt32(ns))
            break
        }
        if !reused {
            // the tier must not report a case it never exercised as passed
            if requireKernel { Issue.record("the kernel did not reuse the namespace inode in 5 tries") }
            try Test.cancel("the kernel did not reuse the namespace inode in 5 tries")
        }
    }

    @Test func liveUpdateSwitchesBoundContainersAtOnce() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        let rule = { (f: String) in
            "        files:\n        - {qualifiers: [Q], pattern: \(dir)/\(f), permissions: [read]}"
        }
        let first = try e.apply(compile(rule("x"), name: "kt-live"))
        defer { try? e.remove(profile: "kt-live") }
        let p = try probe()
        defer { p.finish() }
        try e.bind(pid: p.pid, profile: "kt-live", arming: .firstUse)
        #expect(p.perform(["read", "\(dir)/x"]) == EPERM)
        #expect(p.perform(["read", "\(dir)/y"]) == 0)
        let second = try e.apply(compile(rule("y"), name: "kt-live"))
        #expect(second.replaced && second.id == first.id && second.tables != first.tables)
        #expect(p.perform(["read", "\(dir)/x"]) == 0)
        #expect(p.perform(["read", "\(dir)/y"]) == EPERM)
        // the old version's rows are gone
        let pfx = try e.map(BULWARK_MAP_PATH_PREFIX)
        let oldRows = pfx.keys().filter { k in
            UInt32(bigEndian: k[4..<8].withUnsafeBytes { $0.loadUnaligned(as: UInt32.self) }) == first.tables
        }
        #expect(oldRows.isEmpty)
    }

    @Test func loadAdoptsPinnedStateAndKeepsEnforcing() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        try e.apply(
            compile(
                "        files:\n        - {qualifiers: [Q], pattern: \(dir)/z, permissions: [read]}", name: "kt-adopt")
        )
        defer { try? e.remove(profile: "kt-adopt") }
        let p = try probe()
        defer { p.finish() }
        try e.bind(pid: p.pid, profile: "kt-adopt", arming: .firstUse)
        #expect(p.perform(["read", "\(dir)/z"]) == EPERM)
        let before = e.bindings().count
        #expect(try e.load(support: support) == .adopted)  // a restarted agent
        #expect(e.bindings().count == before)
        #expect(p.perform(["read", "\(dir)/z"]) == EPERM)
        #expect(e.status().missingPrograms.isEmpty)
    }

    @Test func loadUpgradesProgramsOfAnotherBuildKeepingBindings() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        try e.apply(
            compile(
                "        files:\n        - {qualifiers: [Q], pattern: \(dir)/z, permissions: [read]}",
                name: "kt-upgrade"))
        defer { try? e.remove(profile: "kt-upgrade") }
        let p = try probe()
        defer { p.finish() }
        try e.bind(pid: p.pid, profile: "kt-upgrade", arming: .firstUse)
        #expect(p.perform(["read", "\(dir)/z"]) == EPERM)
        // Pretend the pinned programs came from another build of the same ABI.
        let meta = try e.map(BULWARK_MAP_META)
        let key = withUnsafeBytes(of: UInt32(0)) { Array($0) }
        let current = meta.lookup(key: key)
        var value = try #require(current)
        value[8] ^= 0xff  // object_id
        try meta.update(key: key, value: value)
        #expect(e.status().objectMatches == false)
        #expect(try e.load(support: support) == .upgraded)
        #expect(e.status().objectMatches == true)
        #expect(e.status().missingPrograms.isEmpty)
        #expect(p.perform(["read", "\(dir)/z"]) == EPERM, "binding and profile survive the upgrade")
    }

    @Test func ringBufferEventsCarryTheOperation() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        let rules = """
                    files:
                    - {qualifiers: [Q], pattern: \(dir)/x, permissions: [write]}
                    network:
                      egress:
                        toDestinations:
                        - {qualifiers: [Q], ip: 127.0.0.1, ports: [{port: 9}]}
            """
        let applied = try e.apply(compile(rules, name: "kt-events"))
        defer { try? e.remove(profile: "kt-events") }
        let reader = try EventReader(enforcer: e)
        _ = reader.drain()
        let p = try probe()
        defer { p.finish() }
        let ns = UInt32(Enforcer.namespaceInode(pid: p.pid)!)
        try e.bind(pid: p.pid, profile: "kt-events", arming: .firstUse)
        #expect(p.perform(["write", "\(dir)/x"]) == EPERM)
        #expect(p.perform(["connect", "127.0.0.1", "9"]) == EPERM)
        let events = reader.drain().filter { $0.mountNamespace == ns }
        let file = try #require(events.first { $0.kind == .file })
        #expect(file.action == .denied)
        #expect(file.path == "\(dir)/x")
        #expect(file.permissionNames == ["write"])
        #expect(file.pid == UInt32(p.pid))
        #expect(file.profileID == applied.id)
        #expect(file.comm == "bulwark")
        #expect(file.bootTimeNanoseconds > 0)
        let net = try #require(events.first { $0.kind == .network })
        #expect(net.address == "127.0.0.1" && net.port == 9 && net.family == 2 && net.socketType == 1)
        #expect(net.detail == UInt32(BULWARK_NET_CONNECT))
    }

    /// Issue 12: a vArmor 0.8 policy (raw rules without `qualifiers`, the release notes' CIDR
    /// rule with a port range) denies by default, as 0.8 did: inside the CIDR and the range the
    /// connect is refused; outside either it is not.
    @Test func aVArmor08CIDRAndPortRangeRuleIsEnforced() throws {
        guard let e = kernelOrSkip() else { return }
        let r = PolicyParser.inline(
            """
                enforcer: BPF
                mode: EnhanceProtect
                enhanceProtect:
                  bpfRawRules:
                    network:
                      egress:
                        toDestinations:
                        - cidr: 127.0.0.1/24
                          ports:
                          - port: 80
                            endPort: 8080
            """, name: "v08")
        #expect(r.isValid && r.diagnostics.contains { $0.message.contains("vArmor 0.8 form") }, "\(r.diagnostics)")
        let profile = try BPFCompiler().compile(try #require(r.policies.first), profileName: "kt-v08")
        _ = try e.apply(profile)
        defer { try? e.remove(profile: "kt-v08") }
        let p = try probe()
        defer { p.finish() }
        try e.bind(pid: p.pid, profile: "kt-v08", arming: .firstUse)
        #expect(p.perform(["connect", "127.0.0.2", "8000"]) == EPERM)
        #expect(p.perform(["connect", "127.0.0.2", "80"]) == EPERM)
        #expect(p.perform(["connect", "127.0.0.2", "8080"]) == EPERM)
        #expect(p.perform(["connect", "127.0.0.2", "8081"]) != EPERM)
        #expect(p.perform(["connect", "127.0.1.2", "8000"]) != EPERM)
    }

    @Test func capacity1024RulesPerTypeAnd4096Bindings() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        var rules = "        files:\n"
        for i in 0..<1024 { rules += "        - {qualifiers: [Q], pattern: \(dir)/f\(i), permissions: [read]}\n" }
        rules += "        processes:\n"
        for i in 0..<1024 { rules += "        - {qualifiers: [Q], pattern: /opt/p\(i)/**, permissions: [exec]}\n" }
        rules += "        network:\n          egress:\n            toDestinations:\n"
        for i in 0..<1024 {
            rules += "            - {qualifiers: [Q], ip: 10.\(i / 256).\(i % 256).1, ports: [{port: 443}]}\n"
        }
        let profile = compile(rules, name: "kt-capacity")
        let applied = try e.apply(profile)
        defer { try? e.remove(profile: "kt-capacity") }
        #expect(applied.skipped.isEmpty)
        _ = FileManager.default.createFile(atPath: "\(dir)/f1023", contents: Data("1".utf8))
        let p = try probe()
        defer { p.finish() }
        try e.bind(pid: p.pid, profile: "kt-capacity", arming: .firstUse)
        #expect(p.perform(["read", "\(dir)/f1023"]) == EPERM)
        #expect(p.perform(["read", "\(dir)/x"]) == 0)
        // 4096 bindings (namespaces that do not exist: the map must hold them)
        let bindings = try e.map(BULWARK_MAP_BINDINGS)
        var b = bulwark_binding()
        b.profile = applied.id
        b.arm = UInt32(BULWARK_ARM_FIRST_USE)
        let value = withUnsafeBytes(of: b) { Array($0) }
        for i in 0..<4096 {
            try bindings.update(key: withUnsafeBytes(of: UInt32(0x7000_0000 + i)) { Array($0) }, value: value)
        }
        #expect(bindings.keys().count >= 4096)
        for i in 0..<4096 { bindings.delete(key: withUnsafeBytes(of: UInt32(0x7000_0000 + i)) { Array($0) }) }
    }

    @Test func ptraceTracebyAndReadbyProtectTheTracee() throws {
        guard let e = kernelOrSkip() else { return }
        let rules = "        ptrace: {qualifiers: [Q], strictMode: true, permissions: [traceby, readby]}"
        try e.apply(compile(rules, name: "kt-traceby"))
        defer { try? e.remove(profile: "kt-traceby") }
        let tracee = try probe()
        defer { tracee.finish() }
        try e.bind(pid: tracee.pid, profile: "kt-traceby", arming: .firstUse)
        let other = try probe()  // another, unconfined container
        defer { other.finish() }
        // /proc reports a refused ptrace check as EACCES
        #expect(other.perform(["read", "/proc/\(tracee.pid)/environ"]) == EACCES)  // readby
        #expect(other.perform(["read", "/proc/\(tracee.pid)/mem"]) == EACCES)  // traceby
        // the host's own namespace is exempt from tracee-side rules (as vArmor)
        #expect(SelftestProbe.perform("read", ["/proc/\(tracee.pid)/environ"]) == 0)
    }

    @Test func eventsThatDoNotFitAreCountedAsDrops() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        // complain mode records every operation; nobody reads the ring buffer meanwhile
        var complain = compile("        files: []", name: "kt-drops")
        complain.mode = .complain
        try e.apply(complain)
        defer { try? e.remove(profile: "kt-drops") }
        let p = try probe()
        defer { p.finish() }
        try e.bind(pid: p.pid, profile: "kt-drops", arming: .firstUse)
        let before = e.counters()
        let records = Int(BULWARK_EVENTS_BYTES) / MemoryLayout<bulwark_event>.size
        #expect(p.perform(["repeat", String(records + 500), "read", "\(dir)/x"]) == 0, "complain never refuses")
        let after = e.counters()
        #expect((after["drops"] ?? 0) > (before["drops"] ?? 0), "a full ring buffer must count drops")
        #expect((after["events"] ?? 0) > (before["events"] ?? 0))
        _ = try EventReader(enforcer: e).drain()
    }

    @Test func removingAProfileUnbindsItsContainers() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        try e.apply(
            compile(
                "        files:\n        - {qualifiers: [Q], pattern: \(dir)/x, permissions: [read]}", name: "kt-remove"
            ))
        let p = try probe()
        defer { p.finish() }
        try e.bind(pid: p.pid, profile: "kt-remove", arming: .firstUse)
        #expect(p.perform(["read", "\(dir)/x"]) == EPERM)
        try e.remove(profile: "kt-remove")
        #expect(p.perform(["read", "\(dir)/x"]) == 0)
        #expect(!e.bindings().contains { $0.pid == UInt32(p.pid) })
    }
}
