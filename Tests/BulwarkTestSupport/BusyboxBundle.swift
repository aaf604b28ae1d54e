import Foundation

/// An OCI bundle around a busybox-static rootfs (no image pulls), as the end-to-end tests use it:
/// `/proc`, a tmpfs `/dev` and `/tmp`, pid/mount/ipc/uts namespaces, `noNewPrivileges`.
public struct BusyboxBundle {
    public var args: [String]
    public var annotations: [String: String] = [:]
    /// Applets as symlinks to /bin/busybox.
    public var applets: [String] = []
    /// Applets as their own copy of busybox: an exec rule matches the file that is executed.
    public var copies: [String] = []
    /// Rootfs-relative path → contents.
    public var files: [String: String] = [:]
    /// OCI `hooks` by stage (`createRuntime`, `poststop` …).
    public var hooks: [String: [[String: Any]]] = [:]
    public var extraNamespaces: [String] = []
    public var readonlyRoot = false
    /// `process.apparmorProfile` (the runtime confines the entrypoint with it).
    public var appArmorProfile: String?
    /// `process.noNewPrivileges`.
    public var noNewPrivileges = true
    /// More top-level fields (a field Bulwark does not know must survive a rewrite).
    public var extra: [String: Any] = [:]

    public init(args: [String]) { self.args = args }

    /// Writes the bundle into a new directory below `parent` and returns its path.
    public func write(below parent: String) throws -> String {
        let b = parent + "/bundle-\(UUID().uuidString.prefix(8))"
        let fm = FileManager.default
        try Self.rootfs(at: b + "/rootfs", applets: applets, copies: copies)
        for (path, text) in files { _ = fm.createFile(atPath: "\(b)/rootfs/\(path)", contents: Data(text.utf8)) }
        var spec: [String: Any] = [
            "ociVersion": "1.0.2",
            "process": [
                "terminal": false, "user": ["uid": 0, "gid": 0], "args": args, "env": ["PATH=/bin"], "cwd": "/",
                "noNewPrivileges": noNewPrivileges,
            ],
            "root": ["path": "rootfs", "readonly": readonlyRoot],
            "annotations": annotations,
            "mounts": [
                ["destination": "/proc", "type": "proc", "source": "proc"],
                ["destination": "/dev", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "mode=755"]],
                ["destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"]],
            ],
            "linux": ["namespaces": (["pid", "mount", "ipc", "uts"] + extraNamespaces).map { ["type": $0] }],
        ]
        if !hooks.isEmpty { spec["hooks"] = hooks }
        if let appArmorProfile, var process = spec["process"] as? [String: Any] {
            process["apparmorProfile"] = appArmorProfile
            spec["process"] = process
        }
        spec.merge(extra) { _, new in new }
        try JSONSerialization.data(withJSONObject: spec, options: [.sortedKeys]).write(
            to: URL(fileURLWithPath: "\(b)/config.json"))
        return b
    }

    /// A busybox rootfs at `path`: bin, proc, dev, tmp, sys, etc; applets as symlinks to
    /// /bin/busybox, `copies` as their own copy of it.
    public static func rootfs(at path: String, applets: [String], copies: [String] = []) throws {
        let fm = FileManager.default
        for d in ["bin", "proc", "dev", "tmp", "sys", "etc"] {
            try fm.createDirectory(atPath: "\(path)/\(d)", withIntermediateDirectories: true)
        }
        try fm.copyItem(atPath: "/bin/busybox", toPath: path + "/bin/busybox")
        for a in copies { try fm.copyItem(atPath: "/bin/busybox", toPath: "\(path)/bin/\(a)") }
        for a in applets { try fm.createSymbolicLink(atPath: "\(path)/bin/\(a)", withDestinationPath: "busybox") }
    }
}
