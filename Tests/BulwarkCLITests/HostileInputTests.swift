import BulwarkTestSupport
import Foundation
import Testing

/// Runs `path` with a deadline: nil when it had to be killed (a hang is the defect under test).
func runWithDeadline(_ path: String, _ args: [String], environment: [String: String], seconds: Double = 15)
    throws -> (code: Int32, out: String)?
{
    let file = NSTemporaryDirectory() + "bw-out-\(UUID().uuidString)"
    defer { unlink(file) }
    let pid = try spawn(path, args, environment: environment, output: file)
    let deadline = Date().addingTimeInterval(seconds)
    var status: Int32 = 0
    while waitpid(pid, &status, WNOHANG) == 0 {
        if Date() > deadline {
            kill(pid, SIGKILL)
            _ = waitpid(pid, &status, 0)
            return nil
        }
        usleep(10_000)
    }
    let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
    return (code, (try? String(contentsOfFile: file, encoding: .utf8)) ?? "")
}

let runcPath = ["/usr/bin/runc", "/usr/sbin/runc"].first { FileManager.default.isExecutableFile(atPath: $0) }
let crunPath = ["/usr/bin/crun", "/usr/sbin/crun"].first { FileManager.default.isExecutableFile(atPath: $0) }
let canRunContainers = getuid() == 0 && FileManager.default.fileExists(atPath: "/bin/busybox")

/// Issue 12: defects 4, 5 and 7 reproduced through the built executables.
@Suite("Hostile input through the executables", .serialized)
struct HostileInputTests {
    static let policy = RuntimeWrapperTests.policy

    /// A node whose `runtime` is `runtime` (default /bin/true: the wrapper's decision is observed in
    /// the bundle it rewrites, nothing runs).
    static func node(runtime: String = "/bin/true") throws -> (dir: String, env: [String: String]) {
        let dir = NSTemporaryDirectory() + "bw-hostile-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: dir + "/policies", withIntermediateDirectories: true)
        try policy.write(toFile: dir + "/policies/nomkdir.yaml", atomically: true, encoding: .utf8)
        try "policyDirectories: [\(dir)/policies]\nruntime: \(runtime)\nbpfPinPath: /nonexistent/bulwark-pins\n"
            .write(toFile: dir + "/bulwark.yaml", atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["BULWARK_CONFIG"] = dir + "/bulwark.yaml"
        return (dir, env)
    }

    static func bundle(_ dir: String, spec: String) throws -> String {
        let b = dir + "/b-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: b, withIntermediateDirectories: true)
        try spec.write(toFile: b + "/config.json", atomically: true, encoding: .utf8)
        return b
    }

    static let wrapper = bulwarkDirectory() + "/bulwark-runtime"
    static let cli = bulwarkDirectory() + "/bulwark"

    /// Defect 7: a FIFO named like a policy or given as the node config blocked the wrapper, the
    /// agent's reload and `bulwarkd --check` forever. Only regular files are read.
    @Test func aFIFONeverBlocks() throws {
        let (dir, env) = try Self.node()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        #expect(mkfifo(dir + "/policies/trap.yaml", 0o644) == 0)
        #expect(mkfifo(dir + "/fifo.yaml", 0o644) == 0)
        let validate = try #require(
            try runWithDeadline(Self.cli, ["policy", "validate", dir + "/policies/trap.yaml"], environment: env))
        #expect(validate.code == 1 && validate.out.contains("FIFO"), "\(validate.out)")
        var fifoConfig = env
        fifoConfig["BULWARK_CONFIG"] = dir + "/fifo.yaml"
        let config = try #require(
            try runWithDeadline(
                Self.cli, ["policy", "validate", dir + "/policies/nomkdir.yaml"], environment: fifoConfig))
        #expect(config.code != 0 && config.out.contains("FIFO"), "\(config.out)")
        let check = try #require(
            try runWithDeadline(bulwarkDirectory() + "/bulwarkd", ["--check"], environment: env),
            "bulwarkd --check blocked on a FIFO")
        #expect(check.out.contains("FIFO"), "\(check.out)")
        // the wrapper still decides (the FIFO is refused, the real policy applies)
        let b = try Self.bundle(dir, spec: #"{"ociVersion":"1.0.2","annotations":{"bulwark.io/policy":"nomkdir"}}"#)
        let run = try #require(
            try runWithDeadline(Self.wrapper, ["create", "--bundle", b, "c1"], environment: env),
            "bulwark-runtime blocked on a FIFO in a policy directory")
        #expect(run.code == 0, "\(run.out)")
        #expect(try String(contentsOfFile: b + "/config.json", encoding: .utf8).contains("bulwark.io/applied-policy"))
    }

    /// Defect 4: runc merges duplicate members and matches keys case-insensitively; the wrapper
    /// read exactly and kept the last duplicate, so these specs ran unconfined. Now refused, with
    /// the spec untouched; the plain spelling is still confined.
    @Test(arguments: [
        #"{"ociVersion":"1.0.2","annotations":{"bulwark.io/policy":"nomkdir"},"annotations":{}}"#,
        #"{"ociVersion":"1.0.2","Annotations":{"bulwark.io/policy":"nomkdir"}}"#,
        #"{"ociVersion":"1.0.2","annotations":{"bulwark.io/policy":"nomkdir"},"Linux":{"seccomp":null}}"#,
        #"{"ociVersion":"1.0.2","annotations":{"bulwark.io/policy":"nomkdir"},"linux":{"namespaces":[]},"linux":{}}"#,
        #"{"ociVersion":"1.0.2","annotation\u017f":{"bulwark.io/policy":"nomkdir"}}"#,
        #"{"ociVersion":"1.0.2","annotations":{"bulwark.io/policy":"nomkdir"},"linux\u0000x":{}}"#,
    ])
    func specsRuncReadsDifferentlyAreRefused(spec: String) throws {
        let (dir, env) = try Self.node()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let b = try Self.bundle(dir, spec: spec)
        let r = try #require(try runWithDeadline(Self.wrapper, ["create", "--bundle", b, "c2"], environment: env))
        #expect(r.code != 0 && r.out.contains("bulwark-runtime:"), "\(r.out)")
        #expect(try String(contentsOfFile: b + "/config.json", encoding: .utf8) == spec)
    }

    /// Defect 5 with /bin/true as the runtime: where the runtime's grammar says the bundle is, the
    /// wrapper rewrites; a spelling it cannot read is refused, never passed on.
    @Test func argvSpellingsReachTheRightBundle() throws {
        let (dir, env) = try Self.node()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let spec = #"{"ociVersion":"1.0.2","annotations":{"bulwark.io/policy":"nomkdir"}}"#
        for form in [["--bundle=B", "c3"], ["--bundle", "B", "c3"], ["-b", "B", "c3"]] {
            let b = try Self.bundle(dir, spec: spec)
            let args = ["create"] + form.map { $0.replacingOccurrences(of: "B", with: b) }
            let r = try #require(try runWithDeadline(Self.wrapper, args, environment: env))
            #expect(r.code == 0, "\(args): \(r.out)")
            #expect(
                try String(contentsOfFile: b + "/config.json", encoding: .utf8).contains("applied-policy"), "\(args)")
        }
        // runc and crun read these differently (or one refuses them): neither is guessed
        for form in [
            ["-b=B", "c3"], ["c3", "-b", "B"], ["-bundle", "B", "c3"], ["-bB", "c3"], ["--bund=B", "c3"],
            ["--no-such-flag", "-b", "B", "c3"], ["--help=false", "-b", "B", "c3"],
        ] {
            let b = try Self.bundle(dir, spec: spec)
            let args = ["create"] + form.map { $0.replacingOccurrences(of: "B", with: b) }
            let r = try #require(try runWithDeadline(Self.wrapper, args, environment: env))
            #expect(r.code != 0 && r.out.contains("refused"), "\(args): \(r.out)")
        }
        // restore of a targeted container cannot carry its confinement
        let b = try Self.bundle(dir, spec: spec)
        let r = try #require(try runWithDeadline(Self.wrapper, ["restore", "-b", b, "c4"], environment: env))
        #expect(r.code != 0 && r.out.contains("refused restore"), "\(r.out)")
    }

    /// Defect 5 with the real runtimes: every spelling each runtime accepts either confines the
    /// entrypoint (its mkdir is refused) or is refused by the wrapper; the engines' own spelling
    /// confines. Before the fix runc ran `-b=PATH` unconfined.
    @Test(
        .enabled(
            if: canRunContainers && runcPath != nil && crunPath != nil, "needs root, runc, crun and busybox-static"),
        arguments: [
            ("runc", ["-b=B", "ID"]), ("runc", ["--bundle=B", "ID"]), ("runc", ["ID", "--bundle", "B"]),
            ("runc", ["-bundle", "B", "ID"]), ("runc", ["--help=false", "-b", "B", "ID"]), ("crun", ["-bB", "ID"]),
            ("crun", ["--bund=B", "ID"]), ("crun", ["--bundle", "B", "ID"]), ("runc", ["--bundle", "B", "ID"]),
        ])
    func realRuntimesNeverRunAnEntrypointUnconfined(runtime: String, form: [String]) throws {
        guard RuntimeWrapperTests.crunCanRun(runtime) else { return }
        let (dir, env) = try Self.node(runtime: runtime == "runc" ? runcPath! : crunPath!)
        defer { try? FileManager.default.removeItem(atPath: dir) }
        var bb = BusyboxBundle(args: ["/bin/mkdir", "/tmp/escape"])
        bb.annotations = ["bulwark.io/policy": "nomkdir"]
        bb.applets = ["mkdir"]
        let b = try bb.write(below: dir)
        let id = "bw-argv-\(runtime)-\(getpid())-\(UUID().uuidString.prefix(4))"
        let args =
            ["run"] + form.map { $0.replacingOccurrences(of: "B", with: b).replacingOccurrences(of: "ID", with: id) }
        let r = try #require(try runWithDeadline(Self.wrapper, args, environment: env, seconds: 60))
        let confined = r.code != 0 && r.out.contains("Operation not permitted")
        let refused = r.code != 0 && r.out.contains("bulwark-runtime: refused")
        #expect(confined || refused, "\(runtime) \(args): exit \(r.code): \(r.out)")
        if form.first == "--bundle" { #expect(confined, "the engines' spelling must be read: \(r.out)") }
    }
}
