import BulwarkBPFMaps
import BulwarkDelivery
import BulwarkPolicy
import Logging

/// What the NRI plugin does to the BPF enforcer: behind a protocol, so the plugin's handling
/// (bind at Synchronize and StartContainer, unbind at stop, refuse when a profile cannot be
/// loaded) is tested without pinned maps. `PinnedBPF` is the real one.
public protocol NRIBPFSide: Sendable {
    /// Makes sure the profile is in the kernel, loading it from `policy` (compiled as the agent
    /// compiles) if needed. Nil when it is there afterwards; otherwise why not.
    func ensure(policy: Policy?, profile: String) -> String?
    /// Whether a running container's process can be bound and is already: nil when it cannot be
    /// (no enforcer loaded, the process or its namespace is gone).
    func isBound(pid: UInt32) -> Bool?
    /// Binds the process's mount namespace, armed at its first use (the process already runs),
    /// with the pod's addresses (`PodSandbox.ips`) for `pod-self`.
    func bind(pid: UInt32, profile: String, podIPs: [String]) throws(EnforcerError)
    /// Removes the bindings that belong to this process.
    func unbind(pid: UInt32)
}

/// The enforcer's pinned maps (`bpfPinPath`) and `ProfileDelivery`.
public struct PinnedBPF: NRIBPFSide {
    let config: NodeConfig
    let logger: Logger

    public init(config: NodeConfig, logger: Logger) {
        self.config = config
        self.logger = logger
    }

    var enforcer: Enforcer { Enforcer(pinPath: config.bpfPinPath) }

    public func ensure(policy: Policy?, profile: String) -> String? {
        ProfileDelivery(config: config, logger: logger).ensureBPF(policy, profile: profile)
    }

    public func isBound(pid: UInt32) -> Bool? {
        let e = enforcer
        guard e.isLoaded, let ns = Enforcer.namespaceInode(pid: Int32(bitPattern: pid)), ns <= UInt64(UInt32.max)
        else { return nil }
        guard let b = e.binding(namespace: UInt32(ns)) else { return false }
        return b.pid == pid || b.armed
    }

    public func bind(pid: UInt32, profile: String, podIPs: [String]) throws(EnforcerError) {
        _ = try enforcer.bind(pid: Int32(bitPattern: pid), profile: profile, arming: .firstUse, podIPs: podIPs)
    }

    public func unbind(pid: UInt32) {
        let e = enforcer
        guard e.isLoaded else { return }
        for b in e.bindings() where b.pid == pid { _ = try? e.unbind(namespace: b.namespace) }
    }
}
