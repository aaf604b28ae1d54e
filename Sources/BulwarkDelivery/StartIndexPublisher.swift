import BulwarkModel
import BulwarkOCI
import BulwarkPolicy
import BulwarkProfiles
import BulwarkStart
import BulwarkSystem
import Foundation

/// Builds and writes the start index (`StartIndex`) for a node config: what `bulwark-runtime` reads
/// instead of YAML. Stamps are taken before the files are read, so a file that changes while the
/// index is built makes the index stale at once rather than current with old content.
public enum StartIndexPublisher {
    /// The stamps of the config file, every policy directory and every policy file in them (taken
    /// before reading any of them).
    public static func stamps(configPath: String, policyDirectories: [String], modelDirectory: String)
        -> [StartIndex.Stamp]
    {
        // the behaviour models too: importing one changes what a DefenseInDepth policy compiles to
        var paths = [configPath] + policyDirectories + [modelDirectory]
        paths += PolicyFiles.directoryContents(policyDirectories + [modelDirectory])
        return paths.map { StartIndex.Stamp(path: $0, identity: Paths.identity($0)) }
    }

    /// The index of `policies` (the active ones) under `config`.
    public static func build(
        config: NodeConfig, configPath: String, stamps: [StartIndex.Stamp], policies: [Policy], rejected: [String]
    ) -> StartIndex {
        var entries: [StartIndex.Entry] = []
        let models = ModelStore(directory: config.modelDirectory)
        let recorder = NodeFacts.syscallRecorder(pinPath: config.bpfPinPath)
        for policy in DecisionEngine.ordered(policies) where policy.spec.target.kind == .container {
            let enforcers = policy.spec.policy.enforcers.intersection(config.enforcers)
            let profile = ProfileNaming.profileName(for: policy, clusterNamespace: config.clusterProfileNamespace)
            // a completed recording: the profile allows everything (as the agent delivers it), also
            // when `bulwark deliver` builds this index from the files
            let p =
                policy.spec.policy.mode == .behaviorModeling && models.modelingCompleted(profile)
                ? policy.afterModeling : policy
            var model: BehaviorModel?
            var unavailable: String?
            if p.spec.policy.defenseInDepth?.needsModel == true {
                do { model = try models.load(profile) } catch { unavailable = error.description }
            }
            unavailable =
                unavailable ?? ModelProfiles.unavailable(p, profileName: profile, enforcers: enforcers, model: model)
            entries.append(
                StartIndex.Entry(
                    policy: p.displayName, profile: profile, containerName: p.spec.target.name,
                    selector: p.spec.target.selector, seccomp: enforcers.contains(.seccomp),
                    appArmor: enforcers.contains(.appArmor), bpf: enforcers.contains(.bpf),
                    failurePolicy: config.failurePolicy(for: p).rawValue,
                    seccompProfile: enforcers.contains(.seccomp)
                        ? (try? SeccompCompiler(model: model, kernelRecordsSyscalls: recorder).compile(p))?.json : nil,
                    unavailable: unavailable, recording: p.spec.policy.mode == .behaviorModeling))
        }
        return StartIndex(
            configPath: configPath, stamps: stamps, runtime: config.runtime, bpfPinPath: config.bpfPinPath,
            containerStateDirectory: config.containerStateDirectory, entries: entries, rejected: rejected)
    }

    /// Writes the index where the start path looks for it (root-owned directory, atomic, 0644), and
    /// removes the indexes of config files that no longer exist (tests and retired configs leave
    /// them behind; /run is memory).
    public static func publish(_ index: StartIndex, directory: String = "/run/bulwark/start") throws {
        try TrustedDirectory.ensure(directory, mode: 0o755)
        let ours = StartIndex.location(configPath: index.configPath, directory: directory)
        try AtomicFile.write(index.json.serialized(), to: ours, permissions: 0o644, durable: false)
        for name in Paths.directoryEntries(directory) ?? [] where name.hasSuffix(".json") {
            let path = directory + "/" + name
            guard path != ours, let bytes = try? RegularFile.read(path, maxBytes: 64 << 20, followSymlinks: false),
                let other = try? StartIndex(json: JSONValue.parse(bytes)),
                other.configPath != StartIndex.defaultConfigPath, !Paths.exists(other.configPath)
            else { continue }
            unlink(path)
        }
    }
}
