import BulwarkClient
import BulwarkOCI
import BulwarkTestSupport
import Foundation
import Testing

/// The image `scripts/build-image.sh` builds (scripts/test.sh builds it before the host tests), run
/// with podman as the DaemonSet runs it: the agent starts and answers on its node socket, reads the
/// policies it is given, finds apparmor_parser; the init container's `bulwark install` puts
/// executables on the node that run there without the image's (or any) shared libraries.
let imageName = ProcessInfo.processInfo.environment["BULWARK_IMAGE"] ?? "localhost/bulwark:dev"
let imageNeeds = Needs(
    met: getuid() == 0 && FileManager.default.isExecutableFile(atPath: PodmanFixture.podman)
        && ((try? capture(PodmanFixture.podman, ["image", "exists", imageName]))?.0 == 0),
    reason: "needs root, podman and the image scripts/build-image.sh builds (\(imageName))")

@Suite("The node image (podman)", .serialized, .needs(imageNeeds))
struct ImageTests {
    @Test func theImageRunsTheAgentAndInstallsStaticExecutables() throws {
        guard imageNeeds.check() else { return }
        let dir = NSTemporaryDirectory() + "bw-image-\(UUID().uuidString.prefix(8))"
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let fm = FileManager.default
        for sub in ["policies", "bin", "run", "state"] {
            try fm.createDirectory(atPath: dir + "/" + sub, withIntermediateDirectories: true)
        }
        try RuntimeWrapperTests.policy.write(toFile: dir + "/policies/nomkdir.yaml", atomically: true, encoding: .utf8)
        // paths the same inside and outside, as the DaemonSet's host paths are
        try """
        policyDirectories: [\(dir)/policies]
        socketPath: \(dir)/run/bulwark.sock
        containerStateDirectory: \(dir)/run/containers
        modelDirectory: \(dir)/state/models
        seccompProfileDirectory: \(dir)/state/seccomp
        appArmorProfileDirectory: \(dir)/state/apparmor
        bpfPinPath: /nonexistent/bulwark-image-test
        enforcers: [Seccomp]
        eventLogFile: ""
        metricsAddress: ""
        kernelLog: ""

        """.write(toFile: dir + "/bulwark.yaml", atomically: true, encoding: .utf8)
        let env = try PodmanFixture.environment(in: dir)
        func podman(_ args: [String]) throws -> (Int32, String) {
            try capture(PodmanFixture.podman, args, environment: env)
        }
        let mount = ["-v", "\(dir):\(dir)"]

        // what would be loaded, read inside the image
        let (checked, plan) = try podman(
            ["run", "--rm", "--network", "none"] + mount + [
                imageName, "/usr/local/bin/bulwarkd", "--check", "--config", dir + "/bulwark.yaml",
            ])
        #expect(checked == 0 && plan.contains("→ profile varmor-cluster-varmor-nomkdir"), "\(plan)")
        let (parser, version) = try podman([
            "run", "--rm", "--network", "none", imageName, "apparmor_parser", "--version",
        ])
        #expect(parser == 0 && version.contains("AppArmor parser"), "\(version)")

        // the init container's step: executables for the node, static
        let (installed, out) = try podman(
            [
                "run", "--rm", "--network", "none", "-v", "\(dir)/bin:/host/opt/bulwark/bin", imageName,
                "/usr/local/bin/bulwark", "install", "--to", "/host/opt/bulwark/bin",
            ])
        #expect(installed == 0, "\(out)")
        for name in ["bulwark-hook", "bulwark-runtime", "bulwark"] {
            let (dynamic, why) = try capture("/usr/bin/ldd", [dir + "/bin/" + name])
            #expect(dynamic != 0 && why.contains("not a dynamic executable"), "\(name): \(why)")
        }
        let (compiled, profile) = try capture(
            dir + "/bin/bulwark", ["policy", "compile", dir + "/policies/nomkdir.yaml", "--enforcer", "seccomp"])
        #expect(compiled == 0 && profile.contains("SCMP_ACT_ERRNO"), "\(profile)")

        // the agent as the DaemonSet runs it: privileged, the host's PID namespace and network
        let name = "bw-image-agent-\(getpid())"
        let (started, id) = try podman(
            ["run", "-d", "--name", name, "--privileged", "--pid", "host", "--network", "host"] + mount
                + [imageName, "/usr/local/bin/bulwarkd", "--config", dir + "/bulwark.yaml"])
        #expect(started == 0, "\(id)")
        defer { _ = try? podman(["rm", "-f", name]) }
        var status: JSONObject?
        for _ in 0..<100 where status == nil {
            status = try? NodeClient.call(
                socketPath: dir + "/run/bulwark.sock", .object(JSONObject([("op", .string("status"))])))
            if status == nil { usleep(100_000) }
        }
        let logs = (try? podman(["logs", name]))?.1 ?? ""
        #expect(status != nil, "the agent in the image does not answer on its socket:\n\(logs)")
        #expect(logs.contains("profile delivered"), "\(logs)")
    }
}
