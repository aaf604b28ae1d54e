/// The command line an OCI runtime (runc, crun) receives from podman/conmon, containerd's shim or
/// CRI-O, read the way the real runtime reads it (`nri-oci.md` §6.4–§6.5).
///
/// A wrapper that finds a different bundle than the runtime does rewrites the wrong config.json
/// and the container runs unconfined. So for the verbs that create a container (`create`, `run`,
/// `restore`) every token must be understood with the runtime's own grammar, or the command is
/// refused:
/// - runc (urfave/cli v1 on Go's flag package): `-flag`/`--flag`, a value as `=v` or the next
///   token (whatever it looks like), flags and the one positional in any order (cli moves flags
///   first), `--` ends the flags, no short-option bundling (`-bX` is an error), no abbreviations.
/// - crun (argp/getopt_long, in order): options stop at the first positional, long options may be
///   abbreviated to a unique prefix, short options bundle (`-db X`, `-bX`), `-f/--config FILE`
///   resolved against the caller's directory unless it is literally `config.json`.
/// Other verbs pass through untouched; only their global options are read (for `--log`).
/// `parseAgreed` accepts a creating command only where both grammars agree.
public struct RuntimeCommandLine: Sendable, Equatable {
    public enum Dialect: String, Sendable {
        case runc
        case crun

    }

    public var subcommand: String?
    /// The bundle directory as given (nil = the current directory).
    public var bundle: String?
    /// crun `--config FILE` as given.
    public var config: String?
    public var id: String?
    public var log: String?
    public var logFormat: String?
    /// Why a container-creating command cannot be read safely; the wrapper refuses it.
    public var refusal: String?

    public var createsContainer: Bool { ["create", "run", "restore"].contains(subcommand ?? "") }

    /// The spec file the runtime will read, absolute (`cwd` is the caller's directory).
    public func specPath(cwd: String) -> String {
        let bundleDir = absolute(bundle.flatMap { $0.isEmpty ? nil : $0 } ?? ".", relativeTo: cwd)
        guard let config, config != "config.json" else { return absolute("config.json", relativeTo: bundleDir) }
        // crun resolves any other relative --config against the caller's directory, before chdir
        return absolute(config, relativeTo: cwd)
    }

    func absolute(_ path: String, relativeTo base: String) -> String {
        if path.hasPrefix("/") { return path }
        if path == "." { return base }
        return base.hasSuffix("/") ? base + path : base + "/" + path
    }

    // MARK: Flag tables (runc 1.1–1.5, crun 1.8–1.2x)

    struct Flags {
        /// Long names (and, for runc, single-letter aliases) that take a value.
        var values: Set<String>
        /// Long names that take no value.
        var bools: Set<String>
        /// crun short options: letter → long name.
        var shorts: [Character: String] = [:]
    }

    static let runcGlobal = Flags(
        values: ["log", "log-format", "root", "criu", "rootless"],
        bools: ["debug", "systemd-cgroup", "help", "h", "version", "v"])
    static let crunGlobal = Flags(
        values: ["cgroup-manager", "log", "log-format", "log-level", "root", "rootless", "program-name"],
        bools: ["debug", "systemd-cgroup", "version", "help", "usage", "HANG"],
        shorts: ["v": "version", "V": "version", "?": "help"])

    static func runcVerb(_ verb: String) -> Flags {
        let create: Set<String> = ["bundle", "b", "console-socket", "pid-file", "preserve-fds", "pidfd-socket"]
        switch verb {
        case "create": return Flags(values: create, bools: ["no-pivot", "no-new-keyring", "help", "h"])
        case "run":
            return Flags(
                values: create,
                bools: ["detach", "d", "keep", "no-subreaper", "no-pivot", "no-new-keyring", "help", "h"])
        default:  // restore
            return Flags(
                values: [
                    "console-socket", "image-path", "work-path", "manage-cgroups-mode", "bundle", "b", "pid-file",
                    "empty-ns", "lsm-profile", "lsm-mount-context",
                ],
                bools: [
                    "tcp-established", "ext-unix-sk", "shell-job", "file-locks", "detach", "d", "no-subreaper",
                    "no-pivot", "auto-dedup", "lazy-pages", "help", "h",
                ])
        }
    }

    static func crunVerb(_ verb: String) -> Flags {
        let argpDefaults: Set<String> = ["help", "usage", "HANG"]
        switch verb {
        case "create", "run":
            var bools = Set(["no-pivot", "no-subreaper", "no-new-keyring"]).union(argpDefaults)
            var shorts: [Character: String] = ["b": "bundle", "f": "config", "?": "help"]
            if verb == "run" {
                bools.formUnion(["detach", "keep"])
                shorts["d"] = "detach"
            }
            return Flags(
                values: ["bundle", "config", "console-socket", "preserve-fds", "pid-file", "program-name"],
                bools: bools, shorts: shorts)
        default:  // restore
            return Flags(
                values: [
                    "bundle", "image-path", "work-path", "pid-file", "console-socket", "manage-cgroups-mode",
                    "lsm-profile", "lsm-mount-context", "network-lock", "program-name",
                ],
                bools: Set(["detach", "tcp-established", "ext-unix-sk", "shell-job", "file-locks", "tcp-close"])
                    .union(argpDefaults),
                shorts: ["b": "bundle", "d": "detach", "?": "help"])
        }
    }

    // MARK: Parsing

    public static func parse(_ args: [String], dialect: Dialect = .runc) -> RuntimeCommandLine {
        var r = RuntimeCommandLine()
        var i = 0
        let global = dialect == .runc ? runcGlobal : crunGlobal
        // global options, up to the subcommand
        while i < args.count {
            let a = args[i]
            if a == "--" {
                i += 1
                break
            }
            guard a.hasPrefix("-"), a != "-" else { break }
            guard let (name, inline) = longOption(a, dialect: dialect, flags: global) else {
                // unknown: its arity is unknown, so is the subcommand
                if args[(i + 1)...].contains(where: { ["create", "run", "restore"].contains($0) }) {
                    r.subcommand = args[(i + 1)...].first { ["create", "run", "restore"].contains($0) }
                    r.refusal = "unknown global option \"\(a)\" for \(dialect.rawValue)"
                }
                return r
            }
            var value = inline
            if global.values.contains(name) && inline == nil {
                guard i + 1 < args.count else { return r }
                value = args[i + 1]
                i += 1
            }
            if name == "log" { r.log = value }
            if name == "log-format" { r.logFormat = value }
            i += 1
        }
        guard i < args.count else { return r }
        r.subcommand = args[i]
        i += 1
        guard r.createsContainer else {
            // only the first positional is kept (the container id of most verbs), for messages
            r.id = args[i...].first { !$0.hasPrefix("-") }
            return r
        }
        let rest = Array(args[i...])
        switch dialect {
        case .runc: r.parseRunc(rest)
        case .crun: r.parseCrun(rest)
        }
        return r
    }

    /// The command line as both runc and crun read it. The wrapper cannot tell from a file name
    /// which runtime a binary is (crun may be installed as `runc`), so a container-creating
    /// command is accepted only when both grammars read the same bundle, config and id — every
    /// engine writes `--bundle PATH` (or `=PATH`) before the id, which both agree on — and
    /// refused otherwise.
    public static func parseAgreed(_ args: [String]) -> RuntimeCommandLine {
        let runc = parse(args, dialect: .runc)
        guard runc.createsContainer else { return runc }
        let crun = parse(args, dialect: .crun)
        var out = runc
        if out.refusal == nil, let why = crun.refusal {
            out.refusal = "crun would read it differently (\(why))"
        } else if out.refusal == nil
            && (runc.bundle != crun.bundle || runc.id != crun.id || runc.config != crun.config)
        {
            out.refusal =
                "runc and crun read it differently (bundle \(runc.bundle ?? ".") / \(crun.bundle ?? "."), "
                + "id \(runc.id ?? "-") / \(crun.id ?? "-"))"
        }
        return out
    }

    /// `-name`, `--name`, `--name=value` (runc also `-name=value`); crun: `--prefix[=value]`
    /// resolved to a unique long name. Nil when the option is unknown or ambiguous.
    static func longOption(_ token: String, dialect: Dialect, flags: Flags) -> (String, String?)? {
        var body = Substring(token)
        switch dialect {
        case .runc:
            body = body.dropFirst()
            if body.hasPrefix("-") { body = body.dropFirst() }
            guard !body.isEmpty, !body.hasPrefix("-"), !body.hasPrefix("=") else { return nil }
        case .crun:
            if token.hasPrefix("--") {
                body = body.dropFirst(2)
            } else {
                // a short option: only whole-token forms the global table knows (-v, -V, -?)
                guard token.count == 2, let long = flags.shorts[token.last!] else { return nil }
                return (long, nil)
            }
        }
        let name: String
        var value: String?
        if let eq = body.firstIndex(of: "=") {
            name = String(body[..<eq])
            value = String(body[body.index(after: eq)...])
        } else {
            name = String(body)
        }
        let all = flags.values.union(flags.bools)
        if all.contains(name) {
            if value != nil && flags.bools.contains(name) && dialect == .crun { return nil }
            return (name, value)
        }
        guard dialect == .crun else { return nil }
        let candidates = all.filter { $0.hasPrefix(name) }
        guard candidates.count == 1, let full = candidates.first, !name.isEmpty else { return nil }
        if value != nil && flags.bools.contains(full) { return nil }
        return (full, value)
    }

    mutating func take(_ name: String, _ value: String?) {
        switch name {
        case "bundle", "b": bundle = value
        case "config": config = value
        default: break
        }
    }

    mutating func parseRunc(_ rest: [String]) {
        let flags = Self.runcVerb(subcommand!)
        var positionals: [String] = []
        var i = 0
        while i < rest.count {
            let a = rest[i]
            if a == "--" {
                positionals += rest[(i + 1)...]
                break
            }
            guard a.hasPrefix("-"), a != "-" else {
                positionals.append(a)
                i += 1
                continue
            }
            guard let (name, inline) = Self.longOption(a, dialect: .runc, flags: flags) else {
                refusal = "option \"\(a)\" is not one runc \(subcommand!) takes"
                return
            }
            if name == "help" || name == "h" {
                // `--help` prints help and creates nothing; `--help=false` is a boolean runc accepts
                // and then creates: not a spelling worth reading, refused
                guard inline == nil else {
                    refusal = "option \"\(a)\" with a value"
                    return
                }
                return
            }
            if flags.values.contains(name) {
                guard let value = inline ?? nextValue(rest, &i, option: a) else { return }
                take(name, value)
            } else if let inline,
                !["1", "0", "t", "f", "T", "F", "true", "false", "TRUE", "FALSE", "True", "False"]
                    .contains(inline)
            {
                refusal = "option \"\(a)\" is not a boolean runc accepts"
                return
            }
            i += 1
        }
        finish(positionals)
    }

    mutating func parseCrun(_ rest: [String]) {
        let flags = Self.crunVerb(subcommand!)
        var i = 0
        while i < rest.count {
            let a = rest[i]
            if a == "--" {
                i += 1
                break
            }
            guard a.hasPrefix("-"), a != "-" else { break }
            if a.hasPrefix("--") {
                guard let (name, inline) = Self.longOption(a, dialect: .crun, flags: flags) else {
                    refusal = "option \"\(a)\" is unknown or ambiguous for crun \(subcommand!)"
                    return
                }
                if name == "help" || name == "usage" { return }
                if flags.values.contains(name) {
                    guard let value = inline ?? nextValue(rest, &i, option: a) else { return }
                    take(name, value)
                }
                i += 1
                continue
            }
            // bundled short options: -d, -db X, -dbX, -bX
            var chars = Substring(a.dropFirst())
            while let c = chars.first {
                chars = chars.dropFirst()
                guard let name = flags.shorts[c] else {
                    refusal = "option \"-\(c)\" is not one crun \(subcommand!) takes"
                    return
                }
                if name == "help" { return }
                guard flags.values.contains(name) else { continue }
                guard let value = chars.isEmpty ? nextValue(rest, &i, option: "-\(c)") : String(chars) else { return }
                take(name, value)
                break
            }
            i += 1
        }
        finish(Array(rest[min(i, rest.count)...]))
        if refusal == nil, bundle == "" { refusal = "an empty --bundle" }
    }

    /// The argument after `rest[i]` as an option's value (both runtimes take it verbatim, even
    /// when it starts with `-`); nil and a refusal when there is none.
    mutating func nextValue(_ rest: [String], _ i: inout Int, option: String) -> String? {
        guard i + 1 < rest.count else {
            refusal = "option \"\(option)\" needs a value"
            return nil
        }
        i += 1
        return rest[i]
    }

    mutating func finish(_ positionals: [String]) {
        let allowed = subcommand == "restore" ? 1...2 : 1...1
        guard allowed.contains(positionals.count) else {
            refusal = "expected the container id, found \(positionals.count) arguments: \(positionals)"
            return
        }
        id = positionals[0]
    }
}
