import ArgumentParser
import BulwarkSystem
import Foundation

/// `bulwark install --to DIR`: puts this build's start-path executables where the node's container
/// runtime runs them (the DaemonSet's init container; the node config's `hookDirectory`). Each is
/// replaced atomically, so a runtime starting a container meanwhile runs the old or the new one.
struct InstallCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "install",
        abstract: "Install bulwark-hook, bulwark-runtime and bulwark into a directory on the node (atomically).")
    @Option(help: "The directory (created if missing).") var to: String

    static let executables = ["bulwark-hook", "bulwark-runtime", "bulwark"]

    func run() throws {
        guard to.hasPrefix("/") else { throw ValidationError("--to: write an absolute path") }
        guard let me = Paths.executable() else { throw ValidationError("cannot find this executable") }
        let from = Paths.directory(of: me)
        do { try TrustedDirectory.ensure(to, mode: 0o755) } catch {
            FileHandle.standardError.write(Data("error: \(to): \(error)\n".utf8))
            throw ExitCode(1)
        }
        for name in Self.executables {
            do {
                let bytes = try RegularFile.read(from + "/" + name, maxBytes: 512 << 20)
                try AtomicFile.write(bytes, to: to + "/" + name, permissions: 0o755)
                print("installed \(to)/\(name)")
            } catch {
                FileHandle.standardError.write(Data("error: cannot install \(name) into \(to): \(error)\n".utf8))
                throw ExitCode(1)
            }
        }
    }
}
