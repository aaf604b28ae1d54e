import BulwarkBPF
import BulwarkBPFMaps
import BulwarkNRI
import BulwarkNRIPlugin
import BulwarkPolicy
import BulwarkSystem
import BulwarkTestSupport
import Foundation
import Logging
import NRITestPeer
import Testing

/// The NRI plugin on a BPF LSM kernel: a container that already runs when the plugin (re)connects
/// is bound at Synchronize, from the pid the runtime reports, and is confined from then on.
@Suite("Kernel tier: NRI plugin", .serialized, .needs(kernelNeeds))
struct NRIKernelTests {
    /// The plugin connected to a runtime peer, configured; `stop` ends both.
    static func plugin(_ e: Enforcer, dir: String, policies list: [Policy]) throws -> (
        session: RuntimePeer.Session, stop: () -> Void
    ) {
        var config = NodeConfig()
        config.enforcers = [.bpf]
        config.bpfPinPath = e.pinPath
        var logger = Logger(label: "kt-nri")
        logger.logLevel = .critical
        let peer = try RuntimePeer(path: dir + "/nri.sock")
        var settings = NRIPlugin.Settings(executableDirectory: bulwarkDirectory())
        settings.socketPath = peer.path
        let policies = PolicyIndex(list)
        let plugin = NRIPlugin(settings: settings, config: config, logger: logger, policies: { policies })
        let worker = plugin.worker()
        let session = try peer.accept()
        _ = try session.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
        return (
            session,
            {
                plugin.stop()
                worker.stop()
            }
        )
    }

    @Test func synchronizeBindsARunningContainer() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        let policy = """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: kt-nri, namespace: shop}
            spec:
              target: {kind: Pod, selector: {matchLabels: {app: kt-nri}}}
              policy:
                enforcer: BPF
                mode: EnhanceProtect
                enhanceProtect:
                  auditViolations: true
                  bpfRawRules:
                    files:
                    - {qualifiers: [deny, audit], pattern: /etc/shadow, permissions: [read]}
            """
        let parsed = PolicyParser.parse(policy, file: "kt-nri.yaml")
        #expect(parsed.isValid, "\(parsed.errors)")
        defer { _ = try? e.remove(profile: "varmor-shop-kt-nri") }
        let (sleeper, namespace) = try containerLikeProcess()
        defer { sleeper.terminate() }
        let (session, stop) = try Self.plugin(e, dir: dir, policies: parsed.policies)
        defer { stop() }
        let pod = nriPod(name: "web-0", namespace: "shop", labels: ["app": "kt-nri"])
        let running = nriContainer(
            pod: pod, name: "app", pid: UInt32(sleeper.processIdentifier), state: .containerRunning)
        _ = try session.synchronize(pods: [pod], containers: [running], more: false)
        let binding = try #require(e.binding(namespace: UInt32(namespace)), "Synchronize did not bind")
        #expect(binding.pid == UInt32(sleeper.processIdentifier))
        // a process entering the container's mount namespace is confined
        let (code, out) = try capture(
            "/usr/bin/nsenter", ["-t", "\(sleeper.processIdentifier)", "-m", "--", "/bin/cat", "/etc/shadow"])
        #expect(code != 0 && out.lowercased().contains("operation not permitted"), "\(code): \(out)")
        // RemoveContainer unbinds
        var remove = Nri_Pkg_Api_V1alpha1_RemoveContainerRequest()
        remove.pod = pod
        remove.container = running
        _ = try session.call("RemoveContainer", remove, as: Nri_Pkg_Api_V1alpha1_RemoveContainerResponse.self)
        #expect(e.binding(namespace: UInt32(namespace)) == nil)
    }
    /// pod-self: the pod's address reaches the binding from NRI (`PodSandbox.ips`); a connect to
    /// the pod's own address on the rule's port is refused, while the same port on another address
    /// and another port on the own address stay reachable.
    @Test func podSelfDeniesThePodsOwnAddressFromNRI() throws {
        guard let e = kernelOrSkip() else { return }
        let dir = try fixture()
        let policy = """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: kt-self, namespace: shop}
            spec:
              target: {kind: Pod, selector: {matchLabels: {app: kt-self}}}
              policy:
                enforcer: BPF
                mode: EnhanceProtect
                enhanceProtect:
                  bpfRawRules:
                    network:
                      egress:
                        toDestinations:
                        - {qualifiers: [deny], ip: pod-self, ports: [{port: 80}]}
            """
        let parsed = PolicyParser.parse(policy, file: "kt-self.yaml")
        #expect(parsed.isValid, "\(parsed.errors)")
        defer { _ = try? e.remove(profile: "varmor-shop-kt-self") }
        let (sleeper, namespace) = try containerLikeProcess()
        defer { sleeper.terminate() }
        let (session, stop) = try Self.plugin(e, dir: dir, policies: parsed.policies)
        defer { stop() }
        // the pod's own address: a loopback address, so the connect needs no network set up
        let pod = nriPod(name: "self-0", namespace: "shop", labels: ["app": "kt-self"], ips: ["127.0.0.5", "fd00::5"])
        let running = nriContainer(
            pod: pod, name: "app", pid: UInt32(sleeper.processIdentifier), state: .containerRunning)
        _ = try session.synchronize(pods: [pod], containers: [running], more: false)
        #expect(e.binding(namespace: UInt32(namespace)) != nil, "Synchronize did not bind")
        func connect(_ host: String, _ port: Int) -> String {
            BulwarkKernelTests.connect(from: sleeper.processIdentifier, host, port)
        }
        #expect(connect("127.0.0.5", 80).contains("operation not permitted"))
        let other = connect("127.0.0.6", 80)
        #expect(!other.contains("operation not permitted") && other.contains("refused"), "\(other)")
        let otherPort = connect("127.0.0.5", 81)
        #expect(!otherPort.contains("operation not permitted"), "\(otherPort)")
    }
}
