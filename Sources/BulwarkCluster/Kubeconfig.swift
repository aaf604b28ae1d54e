import BulwarkPolicy
import Foundation
import Yams

/// Where the API server is and how to prove who the agent is: from a kubeconfig file (node config
/// `kubeconfig`) or the pod's service account (in-cluster).
public struct KubeEndpoint: Sendable, Equatable {
    /// `https://host:port` (no trailing slash).
    public var server: String
    public var caPEM: [UInt8]?
    public var caFile: String?
    /// kubeconfig's `insecure-skip-tls-verify` (development clusters only).
    public var insecureSkipTLSVerify = false
    public var token: String?
    /// Re-read as it rotates (a projected service-account token is replaced about hourly).
    public var tokenFile: String?
    public var clientCertPEM: [UInt8]?
    public var clientCertFile: String?
    public var clientKeyPEM: [UInt8]?
    public var clientKeyFile: String?

    public init(server: String) { self.server = server }

    /// The service account's files in a pod.
    public static let serviceAccountDirectory = "/var/run/secrets/kubernetes.io/serviceaccount"

    /// In a pod: `KUBERNETES_SERVICE_HOST`/`_PORT`, the service account's token and CA (nil when
    /// the variables are not set: not in a cluster).
    public static func inCluster(environment: [String: String], directory: String = serviceAccountDirectory)
        -> KubeEndpoint?
    {
        guard let host = environment["KUBERNETES_SERVICE_HOST"], !host.isEmpty else { return nil }
        let port = environment["KUBERNETES_SERVICE_PORT"].flatMap { $0.isEmpty ? nil : $0 } ?? "443"
        var e = KubeEndpoint(server: "https://" + (host.contains(":") ? "[\(host)]" : host) + ":" + port)
        e.tokenFile = directory + "/token"
        e.caFile = directory + "/ca.crt"
        return e
    }
}

public enum Kubeconfig {
    /// The endpoint of `context` (default: `current-context`). Relative file names are relative to
    /// the kubeconfig's directory, as kubectl reads them.
    public static func parse(_ text: String, file: String, context wanted: String? = nil) throws(DiagnosticsError)
        -> KubeEndpoint
    {
        func fail(_ message: String, _ hint: String) -> DiagnosticsError {
            DiagnosticsError([
                Diagnostic(.error, file: file, line: 1, column: 1, path: "", message: message, hint: hint)
            ])
        }
        let root: Node
        do {
            guard let n = try Yams.compose(yaml: text) else { throw fail("empty kubeconfig", "write a kubeconfig") }
            root = n
        } catch let e as DiagnosticsError {
            throw e
        } catch {
            throw fail("invalid YAML: \(error)", "check the file with `kubectl config view --kubeconfig \(file)`")
        }
        func named(_ list: String, _ name: String, _ field: String) -> Node? {
            for item in root[list]?.sequence ?? [] where item["name"]?.string == name { return item[field] }
            return nil
        }
        guard let contextName = wanted ?? root["current-context"]?.string, !contextName.isEmpty else {
            throw fail("no current-context", "set one: kubectl config use-context NAME")
        }
        guard let context = named("contexts", contextName, "context") else {
            throw fail("context \"\(contextName)\" is not in the file", "kubectl config get-contexts")
        }
        guard let clusterName = context["cluster"]?.string, let cluster = named("clusters", clusterName, "cluster")
        else {
            throw fail("the cluster of context \"\(contextName)\" is not in the file", "kubectl config get-clusters")
        }
        guard var server = cluster["server"]?.string, server.hasPrefix("https://") || server.hasPrefix("http://")
        else {
            throw fail("cluster \"\(clusterName)\" has no https:// server", "set clusters[].cluster.server")
        }
        while server.hasSuffix("/") { server.removeLast() }
        let base = file.lastIndex(of: "/").map { String(file[..<$0]) } ?? "."
        func path(_ p: String?) -> String? {
            guard let p, !p.isEmpty else { return nil }
            return p.hasPrefix("/") ? p : base + "/" + p
        }
        func data(_ node: Node?, _ field: String) throws(DiagnosticsError) -> [UInt8]? {
            guard let s = node?.string, !s.isEmpty else { return nil }
            guard let d = Data(base64Encoded: s, options: .ignoreUnknownCharacters) else {
                throw fail("\(field) is not base64", "write the PEM file base64-encoded, or use the file form")
            }
            return Array(d)
        }
        var e = KubeEndpoint(server: server)
        e.caPEM = try data(cluster["certificate-authority-data"], "certificate-authority-data")
        e.caFile = path(cluster["certificate-authority"]?.string)
        e.insecureSkipTLSVerify = cluster["insecure-skip-tls-verify"]?.bool ?? false
        if let userName = context["user"]?.string, let user = named("users", userName, "user") {
            e.token = user["token"]?.string
            e.tokenFile = path(user["tokenFile"]?.string)
            e.clientCertPEM = try data(user["client-certificate-data"], "client-certificate-data")
            e.clientCertFile = path(user["client-certificate"]?.string)
            e.clientKeyPEM = try data(user["client-key-data"], "client-key-data")
            e.clientKeyFile = path(user["client-key"]?.string)
            if user["exec"] != nil || user["auth-provider"] != nil, e.token == nil, e.tokenFile == nil,
                e.clientCertPEM == nil, e.clientCertFile == nil
            {
                throw fail(
                    "user \"\(userName)\" authenticates with an exec or auth-provider plugin, which the agent does not run",
                    "give the agent a token, a token file or a client certificate")
            }
        }
        return e
    }
}
