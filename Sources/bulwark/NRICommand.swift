import ArgumentParser
import BulwarkDelivery
import BulwarkNRIPlugin
import BulwarkPolicy
import BulwarkSystem
import Foundation
import Logging

/// `bulwark nri`: the NRI plugin on its own, in the foreground (bulwarkd hosts the same plugin
/// with `nri: true`). Policies are read once at start; logs go to stderr.
struct NRICommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "nri",
        abstract: "Run the NRI plugin for containerd/CRI-O in the foreground (policies from the node config).")
    @OptionGroup var common: Common
    @Option(help: "The runtime's NRI socket (default: nriSocketPath of the node config).") var socket: String?
    @Option(help: "Plugin index, two digits (default: nriPluginIndex of the node config).") var index: String?

    func run() throws {
        let config = try common.nodeConfig()
        LoggingSystem.bootstrap(StreamLogHandler.standardError)
        let logger = Logger(label: "bulwark-nri")
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        let files = PolicyFiles.load(PolicyFiles.directoryContents(config.policyDirectories), options: options)
        for f in files where !f.isValid {
            FileHandle.standardError.write(Data("\(f.errors.map(\.description).joined(separator: "\n"))\n".utf8))
        }
        let policies = files.filter(\.isValid).flatMap(\.policies)
        let executables = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath()
            .deletingLastPathComponent().path
        var settings =
            NRIPlugin.Settings.launched(
                environment: ProcessInfo.processInfo.environment, executableDirectory: executables)
            ?? NRIPlugin.Settings(executableDirectory: executables)
        if settings.inheritedFD == nil {
            settings.socketPath = socket ?? config.nriSocketPath
            settings.index = index ?? config.nriPluginIndex
        }
        logger.info(
            "NRI plugin starting",
            metadata: [
                "socket": "\(settings.socketPath)", "policies": "\(policies.count)", "index": "\(settings.index)",
            ])
        let policyIndex = PolicyIndex(policies)
        let plugin = NRIPlugin(settings: settings, config: config, logger: logger, policies: { policyIndex })
        signal(SIGPIPE, SIG_IGN)
        let worker = plugin.worker()
        let stop = DispatchSemaphore(value: 0)
        for sig in [SIGINT, SIGTERM] {
            signal(sig, SIG_IGN)
            let source = DispatchSource.makeSignalSource(signal: sig)
            source.setEventHandler { stop.signal() }
            source.resume()
            Self.sources.append(source)
        }
        if settings.inheritedFD != nil {
            // a launched plugin lives as long as its connection. join(), not stop(): stop() raises the
            // flag the worker checks before its first connection, so a worker thread not yet
            // scheduled never registered and the process exited 0 (issue 12, defect 6).
            DispatchQueue.global().async {
                worker.join()
                stop.signal()
            }
        }
        stop.wait()
        plugin.stop()
        worker.stop()
    }

    nonisolated(unsafe) static var sources: [any DispatchSourceSignal] = []
}
