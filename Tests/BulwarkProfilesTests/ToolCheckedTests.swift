import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkTestSupport
import CSeccomp
import Foundation
import Testing

/// Every AppArmor profile the tests produce passes `apparmor_parser -Q -K`; every seccomp
/// profile is loaded rule by rule into libseccomp.
@Suite("Tool-checked artifacts")
struct ToolCheckedTests {
    static func allPolicies() -> [(String, Policy)] {
        representative
            + Examples.files().flatMap { url in Examples.parse(url).policies.map { (url.lastPathComponent, $0) } }
    }

    static let needsParser = Needs(
        met: which("apparmor_parser") != nil, reason: "apparmor_parser not installed (Debian package `apparmor`)")

    @Test(.needs(needsParser)) func appArmorProfilesCompileWithApparmorParser() throws {
        guard Self.needsParser.check(), let parser = which("apparmor_parser") else { return }
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bulwark-aa-\(getpid())")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: dir) }
        var checked = 0
        for (name, p) in Self.allPolicies() where p.spec.policy.enforcers.contains(.appArmor) {
            let profileName = ProfileNaming.profileName(for: p)
            let profile = try AppArmorCompiler(diskDevices: ["vda", "sda1"]).compile(p, profileName: profileName)
            let file = dir.appendingPathComponent(profileName)
            try profile.text.write(to: file, atomically: true, encoding: .utf8)
            let proc = Process()
            proc.executableURL = URL(fileURLWithPath: parser)
            proc.arguments = ["-Q", "-K", file.path]
            let err = Pipe()
            proc.standardError = err
            proc.standardOutput = FileHandle.nullDevice
            try proc.run()
            let stderr = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            proc.waitUntilExit()
            #expect(proc.terminationStatus == 0, "\(name): \(stderr)\n\(profile.text)")
            checked += 1
        }
        #expect(checked >= 10)
    }

    @Test func seccompProfilesLoadIntoLibseccomp() throws {
        var checked = 0
        for (name, p) in Self.allPolicies() where p.spec.policy.enforcers.contains(.seccomp) {
            let profile = try SeccompCompiler().compile(p)
            let problems = Self.load(profile)
            #expect(problems.isEmpty, "\(name): \(problems)")
            checked += 1
        }
        #expect(checked >= 8)
        // The check itself rejects bad input.
        let bad = LinuxSeccomp(
            defaultAction: "SCMP_ACT_ALLOW",
            syscalls: [LinuxSyscall(names: ["not_a_syscall"], action: "SCMP_ACT_ERRNO")])
        #expect(!Self.load(bad).isEmpty)
    }

    /// Syscalls newer than Debian 12's libseccomp 2.5.4; runc skips names it cannot resolve.
    static let newerThanLibseccomp: Set<String> = ["fchmodat2"]
    /// Names in vArmor's own examples that no x86_64 kernel has (`sysctl` is `_sysctl`); runc
    /// skips them. Bulwark passes user-written names through, so only these may fail to resolve.
    static let unknownInVArmorExamples: Set<String> = ["sysctl"]

    static func action(_ name: String, errno: UInt32?) -> UInt32? {
        switch name {
        case "SCMP_ACT_ALLOW": return UInt32(SCMP_ACT_ALLOW)
        case "SCMP_ACT_LOG": return UInt32(SCMP_ACT_LOG)
        case "SCMP_ACT_ERRNO": return UInt32(0x0005_0000) | (errno ?? 1)
        case "SCMP_ACT_KILL", "SCMP_ACT_KILL_THREAD": return 0
        case "SCMP_ACT_KILL_PROCESS": return 0x8000_0000
        case "SCMP_ACT_TRAP": return 0x0003_0000
        default: return nil
        }
    }

    static func op(_ name: String) -> scmp_compare? {
        switch name {
        case "SCMP_CMP_NE": return SCMP_CMP_NE
        case "SCMP_CMP_LT": return SCMP_CMP_LT
        case "SCMP_CMP_LE": return SCMP_CMP_LE
        case "SCMP_CMP_EQ": return SCMP_CMP_EQ
        case "SCMP_CMP_GE": return SCMP_CMP_GE
        case "SCMP_CMP_GT": return SCMP_CMP_GT
        case "SCMP_CMP_MASKED_EQ": return SCMP_CMP_MASKED_EQ
        default: return nil
        }
    }

    /// Loads `profile` the way runc does: several conditions on one argument index become
    /// separate rules. Returns the problems.
    static func load(_ profile: LinuxSeccomp) -> [String] {
        guard let def = action(profile.defaultAction, errno: profile.defaultErrnoRet), let ctx = seccomp_init(def)
        else {
            return ["bad default action \(profile.defaultAction)"]
        }
        defer { seccomp_release(ctx) }
        var problems: [String] = []
        for entry in profile.syscalls ?? [] {
            guard let act = action(entry.action, errno: entry.errnoRet) else {
                problems.append("bad action \(entry.action)")
                continue
            }
            for name in entry.names {
                let nr = seccomp_syscall_resolve_name(name)
                if nr == __NR_SCMP_ERROR {
                    if !newerThanLibseccomp.contains(name) && !unknownInVArmorExamples.contains(name) {
                        problems.append("unknown syscall \(name)")
                    }
                    continue
                }
                if act == def { continue }  // libseccomp refuses rules equal to the default
                let args = entry.args ?? []
                let byIndex = Dictionary(grouping: args, by: \.index)
                let multi = byIndex.values.contains { $0.count > 1 }
                let groups: [[LinuxSeccompArg]] = multi ? args.map { [$0] } : [args]
                for group in groups {
                    var cmps: [scmp_arg_cmp] = []
                    for a in group {
                        guard let o = op(a.op) else {
                            problems.append("bad op \(a.op)")
                            continue
                        }
                        cmps.append(scmp_arg_cmp(arg: a.index, op: o, datum_a: a.value, datum_b: a.valueTwo ?? 0))
                    }
                    let rc = cmps.withUnsafeBufferPointer {
                        seccomp_rule_add_array(ctx, act, nr, UInt32($0.count), $0.baseAddress)
                    }
                    if rc != 0 { problems.append("\(name): seccomp_rule_add_array failed (\(rc))") }
                }
            }
        }
        return problems
    }
}
