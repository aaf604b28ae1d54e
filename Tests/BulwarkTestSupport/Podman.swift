import Foundation

/// What the podman end-to-end tests (host and kernel tier) share: the machine's podman settings
/// in a private `CONTAINERS_CONF` (environment.md §2.1; /etc is not touched), a busybox rootfs for
/// `--rootfs`, a `--runtime` shim, and the repository's hooks.d files pointed at this build.
public enum PodmanFixture {
    public static let podman = "/usr/bin/podman"

    public static let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
        .deletingLastPathComponent().deletingLastPathComponent()

    public struct BadHookFile: Error, CustomStringConvertible {
        public var description: String
    }

    /// Writes `dir/containers.conf` and returns an environment that makes podman use it.
    public static func environment(in dir: String) throws -> [String: String] {
        try """
        [containers]
        log_driver = "k8s-file"
        default_ulimits = ["nofile=20000:20000", "nproc=32768:32768"]
        [engine]
        cgroup_manager = "cgroupfs"
        events_logger = "file"
        runtime = "runc"
        """.write(toFile: dir + "/containers.conf", atomically: true, encoding: .utf8)
        var env = ProcessInfo.processInfo.environment
        env["CONTAINERS_CONF"] = dir + "/containers.conf"
        return env
    }

    /// Podman clears the environment before it runs the OCI runtime, so `BULWARK_CONFIG` cannot
    /// reach the wrapper: a two-line shim sets it and `exec`s `bulwark-runtime` (operators use
    /// /etc/bulwark/bulwark.yaml and no shim).
    public static func runtimeShim(at path: String, config: String) throws {
        try "#!/bin/sh\nBULWARK_CONFIG='\(config)' exec '\(bulwarkDirectory())/bulwark-runtime' \"$@\"\n"
            .write(toFile: path, atomically: true, encoding: .utf8)
        chmod(path, 0o755)
    }

    /// hooks/*.json from the repository with the hook path, pin path and state directory of this build.
    public static func hooksDirectory(in dir: String, pinPath: String) throws -> String {
        let source = repository.appendingPathComponent("hooks")
        let out = dir + "/hooks.d"
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        for file in try FileManager.default.contentsOfDirectory(atPath: source.path) where file.hasSuffix(".json") {
            let data = try Data(contentsOf: source.appendingPathComponent(file))
            guard var hook = try JSONSerialization.jsonObject(with: data) as? [String: Any],
                var h = hook["hook"] as? [String: Any], let args = h["args"] as? [String]
            else { throw BadHookFile(description: "hooks/\(file) is not a hooks.d document") }
            h["path"] = bulwarkDirectory() + "/bulwark-hook"
            h["args"] = args + ["--pin-path", pinPath, "--state-dir", dir + "/hook-state"]
            hook["hook"] = h
            try JSONSerialization.data(withJSONObject: hook).write(to: URL(fileURLWithPath: out + "/" + file))
        }
        return out
    }
}
