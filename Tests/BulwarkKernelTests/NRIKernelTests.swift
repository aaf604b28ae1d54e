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
        // "a running container": a process in a mount namespace of its own
        let sleeper = Process()
        sleeper.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
        sleeper.arguments = ["--mount", "--propagation", "private", "--", "/bin/sleep", "60"]
        try sleeper.run()
        defer { sleeper.terminate() }
        var ns: UInt64?
        for _ in 0..<50 {
            if let n = Enforcer.namespaceInode(pid: sleeper.processIdentifier),
                n != Enforcer.namespaceInode(pid: getpid())
            {
                ns = n
                break
            }
            usleep(100_000)
        }
        let namespace = try #require(ns, "the process did not get its own mount namespace")

        var config = NodeConfig()
        config.enforcers = [.bpf]
        config.bpfPinPath = e.pinPath
        var logger = Logger(label: "kt-nri")
        logger.logLevel = .critical
        let peer = try RuntimePeer(path: dir + "/nri.sock")
        var settings = NRIPlugin.Settings(executableDirectory: bulwarkDirectory())
        settings.socketPath = peer.path
        let policies = PolicyIndex(parsed.policies)
        let plugin = NRIPlugin(settings: settings, config: config, logger: logger, policies: { policies })
        let worker = plugin.worker()
        defer {
            plugin.stop()
            worker.stop()
        }
        let session = try peer.accept()
        _ = try session.configure(runtime: "containerd", version: "2.3.0", nriVersion: "v0.12.0")
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
}
