import BulwarkTestSupport
import Foundation
import Testing

/// Runs a built executable next to `bulwark` with `stdin`.
func run(_ tool: String, _ args: [String], stdin: String) throws -> (code: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: bulwarkDirectory() + "/" + tool)
    p.arguments = args
    let input = Pipe()
    let out = Pipe()
    let err = Pipe()
    p.standardInput = input
    p.standardOutput = out
    p.standardError = err
    try p.run()
    input.fileHandleForWriting.write(Data(stdin.utf8))
    try input.fileHandleForWriting.close()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

func state(id: String, pid: Int?, annotations: [String: String]) -> String {
    var o: [String: Any] = ["ociVersion": "1.0.2-dev", "id": id, "status": "creating", "bundle": "/tmp/bundle-\(id)"]
    if let pid { o["pid"] = pid }
    o["annotations"] = annotations
    return String(decoding: try! JSONSerialization.data(withJSONObject: o), as: UTF8.self)
}

@Suite("bulwark-hook")
struct HookTests {
    let noEnforcer = [
        "--pin-path", "/nonexistent/bulwark-pins", "--state-dir", NSTemporaryDirectory() + "bw-hook-state",
    ]

    @Test func untargetedContainersExitAtOnce() throws {
        let r = try run(
            "bulwark-hook", ["createRuntime"] + noEnforcer, stdin: state(id: "u1", pid: 1, annotations: [:]))
        #expect(r.code == 0 && r.err.isEmpty, "\(r)")
    }

    @Test func aTargetedContainerThatCannotBeConfinedIsRefusedWithOneLine() throws {
        let s = state(id: "t1", pid: Int(getpid()), annotations: ["bulwark.io/bpf-profile": "varmor-ns-p"])
        let r = try run("bulwark-hook", ["createRuntime"] + noEnforcer, stdin: s)
        #expect(r.code == 1)
        #expect(r.err.split(separator: "\n").count == 1, "one line: \(r.err)")
        #expect(r.err.contains("container t1: cannot confine with BPF profile varmor-ns-p"))
        #expect(r.err.contains("bulwark enforcer load"), "names the fix: \(r.err)")
    }

    @Test func failurePolicyIgnoreRunsUnconfinedWithAWarning() throws {
        let s = state(
            id: "t2", pid: Int(getpid()),
            annotations: ["bulwark.io/bpf-profile": "p", "bulwark.io/failure-policy": "Ignore"])
        let r = try run("bulwark-hook", ["createRuntime"] + noEnforcer, stdin: s)
        #expect(r.code == 0)
        #expect(r.err.contains("warning") && r.err.contains("Ignore"))
    }

    @Test func poststopAcceptsRuncAndCrunStates() throws {
        for pid in [nil, 0] as [Int?] {
            let r = try run(
                "bulwark-hook", ["poststop"] + noEnforcer,
                stdin: state(id: "p1", pid: pid, annotations: ["bulwark.io/bpf-profile": "p"]))
            #expect(r.code == 0, "\(r)")
        }
    }

    @Test func malformedStateIsAClearError() throws {
        let r = try run("bulwark-hook", ["createRuntime"] + noEnforcer, stdin: "{\"id\": 3")
        #expect(r.code == 1 && r.err.contains("not JSON"))
        let u = try run("bulwark-hook", ["sideways"], stdin: "{}")
        #expect(u.code == 1 && u.err.contains("usage"))
    }
}

/// Real runc on this machine: the hook refuses a targeted container it cannot confine (this
/// kernel has no BPF LSM), and leaves an untargeted one alone.
@Suite("bulwark-hook with runc")
struct HookRuncTests {
    static func bundle(annotations: [String: String], hook: [String]) throws -> String {
        var b = BusyboxBundle(args: ["/bin/echo", "hello from runc"])
        b.applets = ["echo"]
        b.annotations = annotations
        b.readonlyRoot = true
        b.hooks = ["createRuntime": [["path": hook[0], "args": hook]]]
        return try b.write(below: NSTemporaryDirectory())
    }

    static func runc(_ args: [String]) throws -> (Int32, String) { try capture("/usr/sbin/runc", args) }

    static let needs = Needs(root: true, ["/usr/sbin/runc", "/bin/busybox"], "needs root, runc and busybox-static")

    @Test(.needs(needs)) func runcRefusesATargetedContainerTheHookCannotConfine() throws {
        guard Self.needs.check() else { return }
        let hook = [
            bulwarkDirectory() + "/bulwark-hook", "createRuntime", "--pin-path", "/nonexistent/bulwark-pins",
            "--state-dir", NSTemporaryDirectory() + "bw-hook-state",
        ]
        let targeted = try Self.bundle(annotations: ["bulwark.io/bpf-profile": "varmor-demo-web"], hook: hook)
        let (code, out) = try Self.runc(["run", "--bundle", targeted, "bw-hook-t-\(getpid())"])
        #expect(code != 0, "runc started a container the hook refused: \(out)")
        #expect(out.contains("cannot confine with BPF profile varmor-demo-web"), "\(out)")
        #expect(!out.contains("hello from runc"))
        _ = try? Self.runc(["delete", "--force", "bw-hook-t-\(getpid())"])

        let plain = try Self.bundle(annotations: [:], hook: hook)
        let (code2, out2) = try Self.runc(["run", "--bundle", plain, "bw-hook-u-\(getpid())"])
        #expect(code2 == 0 && out2.contains("hello from runc"), "\(out2)")
    }
}
