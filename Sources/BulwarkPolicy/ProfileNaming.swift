import Foundation

/// vArmor's profile naming (`internal/profile/profile.go`): the same string names the AppArmor
/// profile, the seccomp profile file and the BPF profile.
public enum ProfileNaming {
    public static func profileName(for policy: Policy, clusterNamespace: String = "varmor") -> String {
        switch policy.kind {
        case .varmorPolicy: return "varmor-\(policy.namespace ?? "default")-\(policy.name)".lowercased()
        case .varmorClusterPolicy: return "varmor-cluster-\(clusterNamespace)-\(policy.name)".lowercased()
        }
    }
}
