import BulwarkPolicy
import BulwarkSystem
import Foundation

/// Reads policy and config files from disk with bounds: regular files only, at most
/// `maxBytes`, UTF-8. The only I/O between the CLI/agent and the pure parser.
public enum PolicyFiles {
    public static let maxBytes = 1 << 20

    /// Reads a whole policy or config file; a problem is a `Diagnostic` for that file.
    public static func read(_ path: String) throws(Diagnostic) -> String {
        func failure(_ message: String, _ hint: String) -> Diagnostic {
            Diagnostic(.error, file: path, line: 1, column: 1, path: "", message: message, hint: hint)
        }
        let bytes: [UInt8]
        do {
            bytes = try RegularFile.read(path, maxBytes: maxBytes)
        } catch {
            switch error {
            case .cannotOpen(let e) where e == ENOENT: throw failure("no such file", "check the path")
            case .notRegular("directory"): throw failure("is a directory", "give the files inside it")
            case .notRegular: throw failure("\(error)", "policy and config files must be regular files")
            case .tooLarge: throw failure("file is larger than \(maxBytes) bytes", "split it into several policy files")
            case .cannotOpen, .readFailed, .untrusted: throw failure("\(error)", "check its permissions")
            }
        }
        guard let text = String(validating: bytes, as: UTF8.self) else {
            throw failure("file is not UTF-8 text", "save it as UTF-8")
        }
        return text
    }

    /// Parses every file; unreadable files become one error diagnostic each.
    public static func load(_ paths: [String], options: ParseOptions = ParseOptions()) -> [PolicyFile] {
        paths.map { path in
            do throws(Diagnostic) {
                return PolicyParser.parse(try read(path), file: path, options: options)
            } catch {
                return PolicyFile(file: path, policies: [], diagnostics: [error])
            }
        }
    }

    /// `*.yaml`, `*.yml` and `*.json` files of the given directories, sorted.
    public static func directoryContents(_ dirs: [String]) -> [String] {
        dirs.flatMap { dir -> [String] in
            let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
            // hidden files are not policies (an atomic write's temporary file; the watcher ignores them)
            return names.filter {
                !$0.hasPrefix(".") && ($0.hasSuffix(".yaml") || $0.hasSuffix(".yml") || $0.hasSuffix(".json"))
            }.sorted()
                .map { (dir as NSString).appendingPathComponent($0) }
        }
    }

    /// The node config file a process uses: `--config` > `$BULWARK_CONFIG` > the default path (which
    /// may not exist: defaults). The start path resolves it the same way (`Wrapper.configPath`).
    public static func configPath(
        explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) -> String {
        explicit ?? environment[NodeConfig.environmentVariable] ?? NodeConfig.defaultPath
    }

    /// The node config: `--config` > `$BULWARK_CONFIG` > /etc/bulwark/bulwark.yaml > defaults.
    public static func loadConfig(
        explicit: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    )
        throws -> NodeConfig
    {
        let path = explicit ?? environment[NodeConfig.environmentVariable]
        if let path { return try NodeConfig.parse(try read(path), file: path) }
        if FileManager.default.fileExists(atPath: NodeConfig.defaultPath) {
            return try NodeConfig.parse(try read(NodeConfig.defaultPath), file: NodeConfig.defaultPath)
        }
        return NodeConfig()
    }
}
