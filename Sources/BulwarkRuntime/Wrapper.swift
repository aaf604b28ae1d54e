import BulwarkOCI
import BulwarkStart
import BulwarkSystem

#if canImport(Glibc)
    import Glibc
#endif

/// `bulwark-runtime`: on `create`/`run`, decides the container's policy from the start index and
/// rewrites `<bundle>/config.json` (`SpecPatcher`); every other subcommand passes through. The
/// caller then `execve`s the real runtime with the original argv and environment.
///
/// It reads no YAML and compiles nothing: the start index (`StartIndex`) holds the decision inputs
/// and compiled filters, published by the agent on every reload. When it is missing or stale (a
/// policy or config file changed since), `bulwark deliver` rebuilds it — delivering the profiles
/// as the agent would — and the wrapper reads it again; if that fails, the container is refused.
/// Links no Foundation, no YAML parser, no compiler and no libbpf.
public struct Wrapper {
    /// The node config file (`$BULWARK_CONFIG` or the default path).
    public var configPath: String
    /// Directory of the Bulwark executables (`bulwark-hook` and `bulwark` live beside `bulwark-runtime`).
    public var executableDirectory: String
    public var indexDirectory: String

    public init(configPath: String, executableDirectory: String, indexDirectory: String = "/run/bulwark/start") {
        self.configPath = configPath
        self.executableDirectory = executableDirectory
        self.indexDirectory = indexDirectory
    }

    /// The node config file as the start path resolves it.
    public static func configPath() -> String {
        Paths.environment(StartIndex.configVariable) ?? StartIndex.defaultConfigPath
    }

    public enum Outcome: Equatable, Sendable {
        case passThrough
        case untargeted
        case rewritten(policy: String, profile: String, notes: [String])
    }

    /// Phase timings on stderr when BULWARK_TRACE_TIMING=1 (start-latency diagnosis).
    static let tracing = Paths.environment("BULWARK_TRACE_TIMING") == "1"
    public static func trace(_ phase: String, since start: inout UInt64) {
        guard tracing else { return }
        let now = monotonicNanoseconds()
        standardError("bulwark-runtime: \(phase) \((now - start) / 1000) µs")
        start = now
    }

    public static func monotonicNanoseconds() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
    }

    public static func standardError(_ line: String) {
        let bytes = Array((line + "\n").utf8)
        bytes.withUnsafeBytes { raw in
            var off = 0
            while off < raw.count {
                let n = write(2, raw.baseAddress! + off, raw.count - off)
                if n < 0 && errno == EINTR { continue }
                if n <= 0 { return }
                off += n
            }
        }
    }

    // MARK: The start index

    /// The current start index for this config, rebuilt through `bulwark deliver` when it is
    /// missing or stale.
    public func index() throws(RuntimeFailure) -> StartIndex {
        if let index = readIndex(), index.isCurrent(configPath: configPath, identity: Paths.identity) {
            return index
        }
        var args = ["deliver", "--quiet"]
        if Paths.exists(configPath) {
            args += ["--config", configPath]
        } else if configPath != StartIndex.defaultConfigPath {
            throw RuntimeFailure(message: "node config \(configPath): no such file ($\(StartIndex.configVariable))")
        }
        let bulwark = executableDirectory + "/bulwark"
        let r = Spawn.run(bulwark, args)
        guard r.status == 0 else {
            let why = r.stderr.split(separator: "\n").last.map(String.init) ?? "exit status \(r.status)"
            throw RuntimeFailure(
                message: "no current start index for \(configPath), and `\(bulwark) \(args.joined(separator: " "))` "
                    + "failed: \(why)")
        }
        guard let index = readIndex(), index.isCurrent(configPath: configPath, identity: Paths.identity) else {
            throw RuntimeFailure(
                message: "the start index for \(configPath) is stale right after `bulwark deliver` rebuilt it "
                    + "(policy files are changing); retry")
        }
        return index
    }

    /// The published index, if there is one this process may trust (in a root-owned directory,
    /// owned by root or by us, writable by nobody else) and can read.
    func readIndex() -> StartIndex? {
        guard (try? TrustedDirectory.ensure(indexDirectory)) != nil else { return nil }
        let path = StartIndex.location(configPath: configPath, directory: indexDirectory)
        guard let bytes = try? RegularFile.read(path, maxBytes: 64 << 20, followSymlinks: false, trustedOwner: true),
            let json = try? JSONValue.parse(bytes)
        else { return nil }
        return try? StartIndex(json: json)
    }

    // MARK: The spec

    public func prepare(_ cmd: RuntimeCommandLine, cwd: String, index: StartIndex) throws(RuntimeFailure) -> Outcome {
        guard cmd.createsContainer else { return .passThrough }
        if let refusal = cmd.refusal {
            throw RuntimeFailure(
                message: "refused \(cmd.subcommand ?? ""): \(refusal); Bulwark must read the same bundle the runtime "
                    + "reads (write options as --name value before the container id)")
        }
        var t = Self.monotonicNanoseconds()
        defer { Self.trace("done", since: &t) }
        let specPath = cmd.specPath(cwd: cwd)
        let spec = try Self.readSpec(specPath)
        Self.trace("read spec", since: &t)
        let entry = index.decide(containerName: cmd.id ?? "", annotations: SpecPatcher.annotations(of: spec))
        // resolved only for a container that gets the hook (an untargeted start pays nothing)
        let ours = entry == nil ? nil : Paths.resolved(executableDirectory + "/bulwark-hook")
        let patcher = SpecPatcher(
            facts: .init(
                hookPath: executableDirectory + "/bulwark-hook", bpfPinPath: index.bpfPinPath,
                containerStateDirectory: index.containerStateDirectory, appArmorLoaded: AppArmorFacts.isLoaded,
                isOurHook: { ours != nil && Paths.resolved($0) == ours }))
        let outcome: SpecPatcher.Outcome
        do {
            outcome = try patcher.patch(spec, entry: entry, restore: cmd.subcommand == "restore")
        } catch {
            throw RuntimeFailure(message: "\(specPath): \(error)")
        }
        Self.trace("decide and patch", since: &t)
        guard case .patched(let newSpec, let policy, let profile, let notes) = outcome else { return .untargeted }
        try writeSpec(newSpec, to: specPath)
        return .rewritten(policy: policy, profile: profile, notes: notes)
    }

    /// The spec as every runtime will read it, or a refusal: a spec that runc (Go, case-insensitive,
    /// merging duplicates) and an exact reader would read differently is never decided on.
    static func readSpec(_ specPath: String) throws(RuntimeFailure) -> JSONObject {
        let data: [UInt8]
        do {
            data = try RegularFile.read(specPath, maxBytes: 16 << 20)
        } catch {
            throw RuntimeFailure(message: "cannot read \(specPath): \(error)")
        }
        let value: JSONValue
        do {
            value = try JSONValue.parse(data)
        } catch {
            throw RuntimeFailure(message: "\(specPath) is not valid JSON: \(error)")
        }
        guard case .object(let spec) = value else {
            throw RuntimeFailure(message: "\(specPath) is not a JSON object")
        }
        if let problem = SpecShape.ambiguity(in: spec) {
            throw RuntimeFailure(
                message: "\(specPath) refused: \(problem); write each field once, spelled as in the OCI runtime spec")
        }
        return spec
    }

    /// Replaces config.json atomically, keeping its mode (no fsync on the container start path).
    func writeSpec(_ spec: JSONObject, to specPath: String) throws(RuntimeFailure) {
        var st = stat()
        let mode = stat(specPath, &st) == 0 ? st.st_mode & 0o777 : 0o644
        do {
            try AtomicFile.write(JSONValue.object(spec).serialized(), to: specPath, permissions: mode, durable: false)
        } catch {
            throw RuntimeFailure(message: "cannot write \(specPath): \(error)")
        }
    }
}
