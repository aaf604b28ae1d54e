import ArgumentParser
import BulwarkCluster
import BulwarkDelivery
import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import Foundation

// `bulwark`: argument parsing and wiring only. Exit 0 on success, 1 on invalid input.

struct Bulwark: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bulwark",
        abstract: "Bulwark: vArmor policies enforced with AppArmor, seccomp and BPF LSM in the container runtime path.",
        subcommands: [
            PolicyCommand.self, EnforcerCommand.self, ProfileCommand.self, BindCommand.self, UnbindCommand.self,
            SelftestCommand.self, SelftestProbeCommand.self, StatusCommand.self, ContainersCommand.self,
            ProfilesCommand.self,
            EventsCommand.self, ReloadCommand.self, NRICommand.self, DeliverCommand.self, ModelCommand.self,
            InstallCommand.self,
        ])
}

struct PolicyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "policy", abstract: "Validate, compile and explain vArmor policies (offline).",
        subcommands: [Validate.self, Compile.self, Explain.self, Rules.self, Migrate.self])
}

struct Failure: Error {}

struct Common: ParsableArguments {
    @Option(help: "Node config file (default: $BULWARK_CONFIG, then /etc/bulwark/bulwark.yaml).")
    var config: String?

    func nodeConfig() throws -> NodeConfig {
        do {
            return try PolicyFiles.loadConfig(explicit: config)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw Failure()
        }
    }
}

/// Loads files, prints every diagnostic to stderr, returns the policies; fails if any error.
func loadPolicies(_ files: [String], _ options: ParseOptions, quiet: Bool = false) throws -> [(String, Policy)] {
    let results = PolicyFiles.load(files, options: options)
    var failed = false
    var out: [(String, Policy)] = []
    for r in results {
        for d in r.diagnostics where !(quiet && d.severity == .notice) {
            FileHandle.standardError.write(Data("\(d)\n".utf8))
        }
        if !r.isValid { failed = true }
        out += r.policies.map { (r.file, $0) }
    }
    if failed { throw Failure() }
    return out
}

struct Validate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Check policy files; print every problem with file:line:column and field.")
    @OptionGroup var common: Common
    @Argument(help: "Policy files (YAML, multi-document, or JSON).") var files: [String]

    func run() throws {
        let config = try common.nodeConfig()
        let policies = try loadPolicies(files, ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace))
        for (file, p) in policies {
            let profile = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
            print(
                "\(file): \(p.kind.rawValue) \(p.displayName): valid (profile \(profile), enforcer \(p.spec.policy.enforcers), mode \(p.spec.policy.mode.rawValue))"
            )
        }
        if policies.isEmpty {
            FileHandle.standardError.write(Data("error: no VarmorPolicy or VarmorClusterPolicy found\n".utf8))
            throw Failure()
        }
    }
}

struct Migrate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Print a policy file written for vArmor 0.8 in the current form (BPF raw rules get `qualifiers`).",
        discussion: "The meaning is kept: each rule gets the mode 0.8 gave it from auditViolations/allowViolations.")
    @Argument(help: "A policy file.") var file: String

    func run() throws {
        let text: String
        do {
            text = try PolicyFiles.read(file)
        } catch {
            FileHandle.standardError.write(Data("\(error)\n".utf8))
            throw Failure()
        }
        let r = PolicyParser.parse(text, file: file)
        for d in r.errors { FileHandle.standardError.write(Data("\(d)\n".utf8)) }
        if !r.isValid { throw Failure() }
        let migrated = TextInsertion.apply(r.migrations, to: text)
        // what is printed must read as the same policies, in the current form
        let again = PolicyParser.parse(migrated, file: file)
        guard again.isValid, again.migrations.isEmpty, again.policies.count == r.policies.count,
            zip(again.policies, r.policies).allSatisfy({ $0.sameMeaning(as: $1) })
        else {
            FileHandle.standardError.write(
                Data(
                    "\(file): the migrated text does not read as the same policies; nothing printed (please report this file)\n"
                        .utf8))
            throw Failure()
        }
        FileHandle.standardError.write(
            Data("\(file): \(r.migrations.count) rule(s) migrated\n".utf8))
        print(migrated, terminator: text.hasSuffix("\n") ? "" : "\n")
    }
}

enum EnforcerChoice: String, ExpressibleByArgument, CaseIterable {
    case apparmor, seccomp, bpf
}

struct Compile: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compile policies to AppArmor text, OCI seccomp JSON or BPF tables.")
    @OptionGroup var common: Common
    @Argument(help: "Policy files.") var files: [String]
    @Option(help: "apparmor | seccomp | bpf") var enforcer: EnforcerChoice
    @Option(help: "Disk devices for the disk-device rules, comma-separated (e.g. sda,nvme0n1).") var diskDevices:
        String?
    @Option(help: "Write one artifact per profile into this directory instead of stdout.") var output: String?
    @Option(
        help:
            "Behaviour models for DefenseInDepth profileType BehaviorModel: a model directory, or a model file (default: modelDirectory of the node config)."
    )
    var models: String?
    @Option(
        help:
            "Pods, Services and EndpointSlices for toPods/toServices and the service built-ins, as `kubectl get -o yaml` prints them (default: inventoryFile of the node config)."
    )
    var inventory: String?
    @Option(
        help:
            "Resolve toPods/toServices and the service built-ins from this cluster's API server (a kubeconfig file), read once."
    )
    var kubeconfig: String?

    func run() throws {
        let config = try common.nodeConfig()
        var egress = EgressInventory.none
        if let kubeconfig {
            egress = try ClusterRead.inventory(kubeconfig: kubeconfig, pods: config.podEgressControl).egress
        } else {
            switch InventorySource.read(inventory ?? config.inventoryFile) {
            case .success(let i): egress = i?.egress ?? .none
            case .failure(let e):
                FileHandle.standardError.write(Data("\(e)\n".utf8))
                throw Failure()
            }
        }
        let policies = try loadPolicies(
            files, ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace), quiet: true)
        let devices = (diskDevices ?? "").split(separator: ",").map { String($0) }.filter { !$0.isEmpty }
        for d in devices where d.contains("/") || d.hasPrefix(".") {
            FileHandle.standardError.write(
                Data("error: --disk-devices: \"\(d)\" is not a device name (write sda, not /dev/sda)\n".utf8))
            throw Failure()
        }
        var artifacts: [(name: String, ext: String, text: String)] = []
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        for (_, p) in policies {
            let name = ProfileNaming.profileName(for: p, clusterNamespace: config.clusterProfileNamespace)
            if !p.spec.policy.enforcers.contains(enforcerBit) {
                FileHandle.standardError.write(
                    Data("note: \(p.displayName) does not use the \(enforcer.rawValue) enforcer; skipped\n".utf8))
                continue
            }
            let model = p.spec.policy.defenseInDepth?.needsModel == true ? try model(name, config) : nil
            switch enforcer {
            case .apparmor:
                let profile = try reported(name) { () throws(ProfileUnavailable) in
                    try AppArmorCompiler(diskDevices: devices, model: model).compile(p, profileName: name)
                }
                for n in profile.notes { FileHandle.standardError.write(Data("note: \(name): \(n)\n".utf8)) }
                artifacts.append((name, "", profile.text))
            case .seccomp:
                let profile = try reported(name) { () throws(ProfileUnavailable) in
                    try SeccompCompiler(model: model).compile(p)
                }
                let json = try encoder.encode(profile)
                artifacts.append((name, ".json", String(decoding: json, as: UTF8.self) + "\n"))
            case .bpf:
                let profile = try reported(name) { () throws(ProfileUnavailable) in
                    try BPFCompiler(
                        diskDevices: devices, inventory: egress, model: model,
                        serviceEgressControl: config.serviceEgressControl, podEgressControl: config.podEgressControl
                    ).compile(p, profileName: name)
                }
                for n in profile.notes { FileHandle.standardError.write(Data("note: \(name): \(n)\n".utf8)) }
                for u in profile.unresolved {
                    let effect =
                        u.refusesProfile
                        ? " (the agent refuses this profile: its rule would be missing)"
                        : " (loaded; reported at run time)"
                    FileHandle.standardError.write(Data("unresolved: \(name): \(u)\(effect)\n".utf8))
                }
                let json = try encoder.encode(profile)
                artifacts.append((name, ".bpf.json", String(decoding: json, as: UTF8.self) + "\n"))
            }
        }
        if let output {
            try? FileManager.default.createDirectory(atPath: output, withIntermediateDirectories: true)
            for a in artifacts {
                let path = (output as NSString).appendingPathComponent(a.name + a.ext)
                try AtomicFile.write(Array(a.text.utf8), to: path)
                print(path)
            }
        } else if artifacts.count == 1 {
            print(artifacts[0].text, terminator: "")
        } else {
            for a in artifacts { print("# ---- \(a.name)\(a.ext) ----\n\(a.text)", terminator: "") }
        }
    }

    /// The model of profile `name`: from `--models` (a file or a directory) or the node's store.
    func model(_ name: String, _ config: NodeConfig) throws -> BehaviorModel? {
        let source = models ?? config.modelDirectory
        var isDirectory: ObjCBool = false
        if FileManager.default.fileExists(atPath: source, isDirectory: &isDirectory), !isDirectory.boolValue {
            let bytes = try RegularFile.read(source, maxBytes: BehaviorModel.maxBytes)
            do {
                return try BehaviorModel.models(in: String(decoding: bytes, as: UTF8.self), file: source)
                    .first { $0.name == name }
            } catch { throw fail("\(error)") }
        }
        do { return try ModelStore(directory: source).load(name) } catch { throw fail("\(error)") }
    }

    func reported<T>(_ name: String, _ body: () throws(ProfileUnavailable) -> T) throws -> T {
        do { return try body() } catch { throw fail("\(name): \(error)") }
    }

    var enforcerBit: EnforcerSet {
        switch enforcer {
        case .apparmor: return .appArmor
        case .seccomp: return .seccomp
        case .bpf: return .bpf
        }
    }
}

func keyValues(_ items: [String], option: String) throws -> [String: String] {
    var out: [String: String] = [:]
    for item in items {
        guard let eq = item.firstIndex(of: "="), eq != item.startIndex else {
            FileHandle.standardError.write(Data("error: \(option) \"\(item)\": expected key=value\n".utf8))
            throw Failure()
        }
        out[String(item[..<eq])] = String(item[item.index(after: eq)...])
    }
    return out
}

struct Explain: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Show which policy and profile apply to a container, and why.")
    @OptionGroup var common: Common
    @Argument(help: "Policy files.") var files: [String]
    @Option(help: "Pod namespace (Kubernetes container).") var namespace: String?
    @Option(help: "Pod name, to match workload targets by name (e.g. web-5d4f8b7c9-x2x7k).") var pod: String?
    @Option(name: .customLong("pod-label"), help: "Pod label key=value (repeatable).") var podLabels: [String] = []
    @Option(name: .customLong("pod-annotation"), help: "Pod annotation key=value (repeatable).") var podAnnotations:
        [String] = []
    @Option(name: .customLong("annotation"), help: "OCI annotation key=value of a standalone container (repeatable).")
    var annotations: [String] = []
    @Flag(help: "The container is an init container.") var initContainer = false
    @Option(help: "Container name.") var container: String

    func run() throws {
        let config = try common.nodeConfig()
        let policies = try loadPolicies(
            files, ParseOptions(clusterProfileNamespace: config.clusterProfileNamespace), quiet: true
        ).map(\.1)
        var podInfo: ContainerDescriptor.Pod?
        if let namespace {
            podInfo = .init(
                namespace: namespace, name: pod ?? "", labels: try keyValues(podLabels, option: "--pod-label"),
                annotations: try keyValues(podAnnotations, option: "--pod-annotation"))
        } else if pod != nil || !podLabels.isEmpty || !podAnnotations.isEmpty {
            FileHandle.standardError.write(
                Data("error: --pod, --pod-label and --pod-annotation need --namespace\n".utf8))
            throw Failure()
        }
        let c = ContainerDescriptor(
            pod: podInfo, containerName: container, isInitContainer: initContainer,
            annotations: try keyValues(annotations, option: "--annotation"))
        let d = DecisionEngine.decide(policies, c, clusterNamespace: config.clusterProfileNamespace)
        if let p = d.policy, let profile = d.profileName {
            print("policy:    \(p.kind.rawValue) \(p.displayName) (\(p.source))")
            print("profile:   \(profile)")
            print("enforcers: \(d.enforcers)")
            print("mode:      \(p.spec.policy.mode.rawValue)")
        } else {
            print("policy:    none")
        }
        print("why:")
        for r in d.reasons { print("  - \(r)") }
    }
}

struct Rules: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the built-in rules and the enforcers that implement them.")
    func run() {
        for category in BuiltinRule.Category.allCases {
            print("\(category.rawValue):")
            for r in BuiltinRule.catalogue where r.category == category {
                let aliases = r.aliases.isEmpty ? "" : " (alias: \(r.aliases.joined(separator: ", ")))"
                print("  \(r.id)\(aliases): \(r.effective.isEmpty ? "-" : r.effective.description)")
            }
        }
    }
}

do {
    var command = try Bulwark.parseAsRoot()
    try command.run()
} catch is Failure {
    exit(1)
} catch let code as ExitCode {
    exit(code.rawValue)
} catch {
    let code = Bulwark.exitCode(for: error)
    if code == .success {
        Bulwark.exit(withError: error)
    }
    FileHandle.standardError.write(Data((Bulwark.fullMessage(for: error) + "\n").utf8))
    exit(1)
}
