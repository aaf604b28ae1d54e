import BulwarkAgent
import BulwarkDelivery
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import Foundation
import Testing

/// Issue 12 (10): with `protected_symlinks`/`protected_regular` off (as on these machines), a
/// directory or file another user controls is never trusted.
@Suite("Trust in shared directories", .serialized, .enabled(if: getuid() == 0, "chown needs root"))
struct TrustTests {
    static let nobody: uid_t = 65534

    func scratch() throws -> String {
        let dir = NSTemporaryDirectory() + "bw-trust-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        return dir
    }

    @Test func directoriesOthersControlAreRefused() throws {
        let base = try scratch()
        defer { try? FileManager.default.removeItem(atPath: base) }
        // created with its parents, mode as asked, below the sticky /tmp
        try TrustedDirectory.ensure(base + "/a/b", mode: 0o700)
        var st = stat()
        #expect(lstat(base + "/a/b", &st) == 0 && st.st_mode & 0o777 == 0o700)
        // owned by another user
        #expect(mkdir(base + "/theirs", 0o755) == 0 && chown(base + "/theirs", Self.nobody, Self.nobody) == 0)
        #expect(throws: TrustedDirectory.Untrusted.self) { try TrustedDirectory.ensure(base + "/theirs") }
        // a parent owned by another user
        #expect(throws: TrustedDirectory.Untrusted.self) { try TrustedDirectory.ensure(base + "/theirs/mine") }
        // writable by others
        #expect(mkdir(base + "/open", 0o755) == 0 && chmod(base + "/open", 0o777) == 0)
        #expect(throws: TrustedDirectory.Untrusted.self) { try TrustedDirectory.ensure(base + "/open") }
        // a symbolic link as the directory itself
        #expect(symlink(base + "/a", base + "/link") == 0)
        #expect(throws: TrustedDirectory.Untrusted.self) { try TrustedDirectory.ensure(base + "/link") }
        #expect(throws: TrustedDirectory.Untrusted.self) { try TrustedDirectory.ensure(base + "/a/../a") }
    }

    /// The violation log: a file another user created (or a hard link to one) is not appended to;
    /// the agent refuses to start and says why.
    @Test func theEventLogIsNeverAnotherUsersFile() throws {
        var node = try Node("trust-log")
        defer { node.remove() }
        let dir = (node.config.eventLogFile as NSString).deletingLastPathComponent
        try TrustedDirectory.ensure(dir, mode: 0o750)
        #expect(FileManager.default.createFile(atPath: node.config.eventLogFile, contents: nil))
        #expect(chown(node.config.eventLogFile, Self.nobody, Self.nobody) == 0)
        #expect(throws: Agent.StartFailure.self) { _ = try Agent(config: node.config, logger: quietLogger) }
        unlink(node.config.eventLogFile)
        let elsewhere = node.dir + "/elsewhere"
        #expect(FileManager.default.createFile(atPath: elsewhere, contents: nil))
        #expect(link(elsewhere, node.config.eventLogFile) == 0)
        #expect(throws: Agent.StartFailure.self) { _ = try Agent(config: node.config, logger: quietLogger) }
        unlink(node.config.eventLogFile)
        // a log directory others may write to
        chmod(dir, 0o777)
        #expect(throws: Agent.StartFailure.self) { _ = try Agent(config: node.config, logger: quietLogger) }
        chmod(dir, 0o750)
        node.config.eventLogFile = dir + "/ok.log"
        _ = try Agent(config: node.config, logger: quietLogger)
    }

    /// The node socket's directory and the seccomp profile directory: another user's directory
    /// is refused (the socket could be swapped; profiles could be rewritten before runc reads them).
    @Test func socketAndProfileDirectoriesMustBeOurs() throws {
        var node = try Node("trust-dirs")
        defer { node.remove() }
        let theirs = node.dir + "/theirs"
        #expect(mkdir(theirs, 0o755) == 0 && chown(theirs, Self.nobody, Self.nobody) == 0)
        node.config.socketPath = theirs + "/bulwark.sock"
        let agent = try Agent(config: node.config, logger: quietLogger)
        #expect(throws: (any Error).self) { try agent.start(sources: false) }
        agent.stop()
        node.config.socketPath = node.dir + "/run/bulwark.sock"
        node.config.seccompProfileDirectory = theirs
        node.config.enforcers = [.seccomp]
        try node.write(policy: "web.yaml", shopPolicy)
        let store = PolicyStore(config: node.config, logger: quietLogger)
        _ = store.reload()
        let status = store.profiles.map(\.seccomp).joined(separator: " ")
        #expect(status.contains("failed") && status.contains("owned by uid 65534"), "\(status)")
        #expect(!FileManager.default.fileExists(atPath: theirs + "/varmor-shop-web.json"))
    }
}

@Suite("Spawned helpers")
struct SpawnTests {
    /// A helper that hangs (a stuck `bulwark deliver` under the runtime wrapper, a stuck
    /// `apparmor_parser` in a reload) is killed at its deadline instead of hanging the caller.
    @Test func aHungHelperIsKilledAtItsDeadline() {
        let start = Date()
        let r = Spawn.run("/bin/sleep", ["30"], timeoutSeconds: 1)
        #expect(r.status == -1 && r.stderr.contains("did not finish within 1 s"), "\(r)")
        #expect(Date().timeIntervalSince(start) < 10)
        let ok = Spawn.run("/bin/sh", ["-c", "echo oops >&2; exit 3"])
        #expect(ok.status == 3 && ok.stderr == "oops\n")
    }

    /// A helper inherits descriptors 0-2 only: the agent's connections (NIO accepts them without
    /// close-on-exec) must not stay open in a helper, nor its files reach one. Before the fix a
    /// spawned process held every accepted node-socket and metrics connection of the agent.
    @Test func aHelperInheritsNoOtherDescriptor() throws {
        let leaky = socket(AF_UNIX, Int32(SOCK_STREAM.rawValue), 0)  // no close-on-exec, as NIO's
        #expect(leaky > 2)
        defer { close(leaky) }
        #expect(fcntl(leaky, F_GETFD) & FD_CLOEXEC == 0)
        let r = Spawn.run("/bin/sh", ["-c", "ls /proc/self/fd >&2"])
        #expect(r.status == 0, "\(r)")
        let seen = Set(r.stderr.split(separator: "\n").compactMap { Int32($0) })
        #expect(seen.contains(2))
        #expect(!seen.contains(leaky), "the child had descriptor \(leaky): \(seen.sorted())")
    }
}

@Suite("AppArmor delivery")
struct AppArmorDeliveryTests {
    /// Observation mode (DefenseInDepth with allowViolations, BehaviorModeling) is loaded with
    /// `apparmor_parser -C`: before, the profile was loaded enforcing while the status said
    /// "loaded (complain)". (The kernel side — the kernel lists the profile in complain mode and
    /// lets a denied read through — is `AppArmorKernelTests` in the VM tier.)
    @Test func complainProfilesAreLoadedInComplainMode() throws {
        let policy = PolicyParser.inline(
            "    enforcer: AppArmor\n    mode: BehaviorModeling\n    modelingOptions: {duration: 5}", name: "m")
        let parsed = try #require(policy.policies.first, "\(policy.errors)")
        let profile = try AppArmorCompiler().compile(parsed, profileName: "varmor-m")
        #expect(profile.complain)
        #expect(ProfileDelivery.appArmorParserArguments(profile, path: "/p") == ["-C", "-r", "-W", "/p"])
        let runtimeDefault = PolicyParser.inline("    enforcer: AppArmor\n    mode: RuntimeDefault", name: "r")
        let enforce = try AppArmorCompiler().compile(
            try #require(runtimeDefault.policies.first, "\(runtimeDefault.errors)"), profileName: "varmor-r")
        #expect(!enforce.complain)
        #expect(ProfileDelivery.appArmorParserArguments(enforce, path: "/p") == ["-r", "-W", "/p"])
    }
}
