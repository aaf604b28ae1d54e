import BulwarkOCI
import BulwarkPolicy
import Foundation
import Testing
import Yams

/// The node config the DaemonSet runs with is one bulwarkd accepts (scripts/check-manifests.py
/// checks the objects against the Kubernetes schemas; this checks what is inside the ConfigMap).
@Suite("Deployment objects")
struct PackagingTests {
    static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().path

    @Test func theConfigMapsNodeConfigIsValid() throws {
        let text = try String(contentsOfFile: Self.root + "/packaging/kubernetes/configmap.yaml", encoding: .utf8)
        let object = try #require(try Yams.load(yaml: text) as? [String: Any])
        let data = try #require(object["data"] as? [String: String])
        let config = try NodeConfig.parse(try #require(data["bulwark.yaml"]), file: "configmap.yaml:bulwark.yaml")
        #expect(config.nri && config.hookDirectory == "/opt/bulwark/bin" && config.kernelLog == "audit")
        #expect(config.kubeconfig.isEmpty, "in-cluster: the service account")
        #expect(config.serviceEgressControl && !config.podEgressControl)
        #expect(config.auditEventMetadata.keys == ["clusterID", "clusterName", "region"])
    }
}

extension PackagingTests {
    /// `packaging/bulwark.yaml` says it lists the defaults: it names every key, with the default.
    @Test func theDefaultsFileIsTheDefaults() throws {
        let text = try String(contentsOfFile: Self.root + "/packaging/bulwark.yaml", encoding: .utf8)
        let parsed = try NodeConfig.parse(text, file: "bulwark.yaml")
        var defaults = NodeConfig()
        defaults.nodeName = parsed.nodeName  // "" there = the host name at run time
        #expect(parsed == defaults)
        let keys = text.split(separator: "\n").filter { !$0.hasPrefix("#") }.compactMap {
            $0.split(separator: ":").first
        }
        .map(String.init)
        #expect(Set(keys) == Set(NodeConfig.keys), "missing: \(Set(NodeConfig.keys).subtracting(keys))")
    }
}

extension PackagingTests {
    /// The ClusterRole grants what the agent asks of the API server — each refusal would be a 403
    /// at run time — and no more than that.
    @Test func theClusterRoleGrantsWhatTheAgentUses() throws {
        let text = try String(contentsOfFile: Self.root + "/packaging/kubernetes/rbac.yaml", encoding: .utf8)
        var granted: [String: Set<String>] = [:]
        for case let object as [String: Any] in try Yams.load_all(yaml: text)
        where object["kind"] as? String == "ClusterRole" {
            for case let rule as [String: Any] in object["rules"] as? [Any] ?? [] {
                let groups = rule["apiGroups"] as? [String] ?? []
                for g in groups {
                    for r in rule["resources"] as? [String] ?? [] {
                        granted[g.isEmpty ? r : "\(r).\(g)", default: []].formUnion(rule["verbs"] as? [String] ?? [])
                    }
                }
            }
        }
        let read: Set<String> = ["get", "list", "watch"]
        let used: [String: Set<String>] = [
            "varmorpolicies.crd.varmor.org": read, "varmorclusterpolicies.crd.varmor.org": read,
            "armorprofilemodels.crd.varmor.org": read.union(["create", "update"]),
            "services": read, "endpointslices.discovery.k8s.io": read, "pods": read, "events": ["create"],
        ]
        #expect(granted == used)
    }
}
