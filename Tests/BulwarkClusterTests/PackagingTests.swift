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
