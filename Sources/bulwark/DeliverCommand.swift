import ArgumentParser
import BulwarkDelivery
import BulwarkPolicy
import BulwarkStart
import Foundation
import Logging

/// `bulwark deliver`: what the agent does on a reload, once, without an agent — every valid policy
/// file's profiles delivered to every enforcer (`ProfileDelivery`), then the start index published
/// for the node config. `bulwark-runtime` runs it when it finds no current index.
struct DeliverCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliver",
        abstract: "Compile and load every policy's profiles, and publish the start index for bulwark-runtime.")

    @OptionGroup var common: Common
    @Flag(help: "Print nothing on success.") var quiet = false
    @Option(help: .hidden) var indexDirectory = "/run/bulwark/start"

    func run() throws {
        let configPath = PolicyFiles.configPath(explicit: common.config)
        let config = try common.nodeConfig()
        // stamped before anything is read: a file that changes meanwhile makes the index stale
        let stamps = StartIndexPublisher.stamps(
            configPath: configPath, policyDirectories: config.policyDirectories, modelDirectory: config.modelDirectory)
        let options = ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace)
        let files = PolicyFiles.load(PolicyFiles.directoryContents(config.policyDirectories), options: options)
        var logger = Logger(label: "bulwark-deliver")
        logger.logLevel = quiet ? .error : .notice
        for f in files where !f.isValid {
            FileHandle.standardError.write(
                Data("rejected \(f.file): \(f.errors.map(\.description).joined(separator: "; "))\n".utf8))
        }
        let delivery = ProfileDelivery(config: config, logger: logger)
        var policies: [Policy] = []
        var seen: Set<String> = []
        for f in files where f.isValid {
            for p in f.policies {
                let name = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
                guard seen.insert(name).inserted else { continue }  // the first file wins, as in the agent
                let st = delivery.deliver(p, profile: name)
                if !quiet { print("\(name): seccomp \(st.seccomp); apparmor \(st.appArmor); bpf \(st.bpf)") }
                policies.append(p)
            }
        }
        let index = StartIndexPublisher.build(
            config: config, configPath: configPath, stamps: stamps, policies: policies,
            rejected: files.filter { !$0.isValid }.map(\.file))
        do {
            try StartIndexPublisher.publish(index, directory: indexDirectory)
        } catch {
            FileHandle.standardError.write(Data("cannot publish the start index: \(error)\n".utf8))
            throw Failure()
        }
        if !quiet { print("start index: \(StartIndex.location(configPath: configPath, directory: indexDirectory))") }
    }
}
