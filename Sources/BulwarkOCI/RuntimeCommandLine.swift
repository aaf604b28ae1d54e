/// The command line an OCI runtime (runc, crun) receives from podman/conmon, containerd's shim or
/// CRI-O, parsed just enough for a wrapper (`nri-oci.md` §6.4–§6.5): global options are skipped
/// (knowing which take a value, `--x=v` forms too), the subcommand is found, and for
/// `create`/`run` the bundle, crun's `--config`, and the container id.
public struct RuntimeCommandLine: Sendable, Equatable {
    public var subcommand: String?
    public var bundle: String?
    /// crun `--config FILE` (relative to the bundle).
    public var config: String?
    public var id: String?
    public var log: String?
    public var logFormat: String?

    static let globalWithValue: Set<String> = [
        "--log", "--log-format", "--log-level", "--root", "--rootless", "--criu", "--cgroup-manager",
    ]
    static let subcommandWithValue: Set<String> = [
        "--bundle", "-b", "--console-socket", "--pidfd-socket", "--pid-file", "--preserve-fds", "--config",
        "--process", "-p", "--image-path", "--work-path", "--parent-path", "--manage-cgroups-mode",
        "--empty-ns", "--status-fd", "--lazy-pages", "--page-server", "--cwd", "--env", "-e", "--user", "-u",
        "--additional-gids", "-g", "--process-label", "--apparmor", "--cap", "-c", "--resources", "-r",
        "--format", "-f",
    ]

    public static func parse(_ args: [String]) -> RuntimeCommandLine {
        var r = RuntimeCommandLine()
        var i = 0
        func split(_ a: String) -> (String, String?) {
            guard a.hasPrefix("--"), let eq = a.firstIndex(of: "=") else { return (a, nil) }
            return (String(a[..<eq]), String(a[a.index(after: eq)...]))
        }
        while i < args.count {
            let (flag, inline) = split(args[i])
            if flag.hasPrefix("-") {
                var value = inline
                if globalWithValue.contains(flag) && inline == nil, i + 1 < args.count {
                    value = args[i + 1]
                    i += 1
                }
                if flag == "--log" { r.log = value }
                if flag == "--log-format" { r.logFormat = value }
                i += 1
                continue
            }
            r.subcommand = args[i]
            i += 1
            break
        }
        guard let sub = r.subcommand else { return r }
        while i < args.count {
            let (flag, inline) = split(args[i])
            if flag.hasPrefix("-") && flag != "-" {
                var value = inline
                // `delete -f` / `ps -f json`: -f takes a value only for ps
                let takesValue = subcommandWithValue.contains(flag) && !(flag == "-f" && sub != "ps")
                if takesValue && inline == nil, i + 1 < args.count {
                    value = args[i + 1]
                    i += 1
                }
                if flag == "--bundle" || flag == "-b" { r.bundle = value }
                if flag == "--config" { r.config = value }
                i += 1
                continue
            }
            if r.id == nil { r.id = args[i] }
            i += 1
        }
        return r
    }
}
