// bulwarkd: the node agent. Parses arguments, reads the node config, sets up logging and metrics,
// and runs the agent under swift-service-lifecycle (SIGTERM/SIGINT stop it gracefully, SIGHUP
// reloads the policies). Everything else lives in BulwarkAgent.
import ArgumentParser
import BulwarkAgent
import BulwarkDelivery
import BulwarkPolicy
import BulwarkSystem
import Foundation
import Logging
import Metrics
import Prometheus
import ServiceLifecycle
import UnixSignals

@main
struct Bulwarkd: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwarkd",
        abstract: "Bulwark node agent: policy store, profile loading, violation events on the node socket.")

    @Option(help: "Node config file (default: $BULWARK_CONFIG, else /etc/bulwark/bulwark.yaml).")
    var config: String?

    @Option(help: "Log level: trace, debug, info, notice, warning, error, critical.")
    var logLevel: String = "info"

    @Flag(help: "Check the node config and the policy directories, print what would be loaded, and exit.")
    var check = false

    func run() async throws {
        guard let level = Logger.Level(rawValue: logLevel) else {
            throw ValidationError("unknown --log-level \(logLevel)")
        }
        let nodeConfig: NodeConfig
        do {
            nodeConfig = try PolicyFiles.loadConfig(explicit: config)
        } catch {
            FileHandle.standardError.write(Data("bulwarkd: bad node config:\n\(error)\n".utf8))
            throw ExitCode(2)
        }
        // the socket's group must exist: found by --check, not at the first start
        if !nodeConfig.socketGroup.isEmpty && gid_t(nodeConfig.socketGroup) == nil
            && getgrnam(nodeConfig.socketGroup) == nil
        {
            FileHandle.standardError.write(
                Data(
                    ("bulwarkd: bad node config:\nsocketGroup: \"\(nodeConfig.socketGroup)\" is not a group on this node\n"
                        + "  fix: create the group (groupadd) or set socketGroup to an existing one\n").utf8))
            throw ExitCode(2)
        }
        LoggingSystem.bootstrap { label in
            var h = StreamLogHandler.standardError(label: label)
            h.logLevel = level
            return h
        }
        let logger = Logger(label: "bulwarkd")
        // descriptors: listeners are bounded, but a busy node has many subscribers and records
        var nofile = rlimit()
        if getrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max {
            nofile.rlim_cur = nofile.rlim_max
            _ = setrlimit(__rlimit_resource_t(RLIMIT_NOFILE.rawValue), &nofile)
        }
        let registry = PrometheusCollectorRegistry()
        MetricsSystem.bootstrap(PrometheusMetricsFactory(registry: registry))
        if check {
            let r = PolicyStore(config: nodeConfig, logger: logger).dryRun()
            print(r)
            if r.contains("rejected") { throw ExitCode(1) }
            return
        }
        let agent: Agent
        do {
            agent = try Agent(
                config: nodeConfig, configPath: PolicyFiles.configPath(explicit: config), logger: logger,
                metrics: registry)
        } catch {
            FileHandle.standardError.write(Data("bulwarkd: \(error)\n".utf8))
            throw ExitCode(1)
        }
        // the agent's parts, each a service: started in order, stopped in reverse on SIGTERM/SIGINT
        let group = ServiceGroup(
            services: agent.services(), gracefulShutdownSignals: [.sigterm, .sigint], cancellationSignals: [],
            logger: logger)
        do {
            try await group.run()
        } catch {
            FileHandle.standardError.write(Data("bulwarkd: \(error)\n".utf8))
            throw ExitCode(1)
        }
    }
}
