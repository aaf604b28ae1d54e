import BulwarkOCI
import Foundation
import KubeTestServer
import Testing

/// Runs the built `bulwark` executable.
func bulwark(_ args: [String], env: [String: String] = [:]) throws -> (code: Int32, out: String, err: String) {
    var dir = Bundle.main.bundleURL
    if !FileManager.default.fileExists(atPath: dir.appendingPathComponent("bulwark").path) {
        dir = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent()
    }
    for candidate in [dir, dir.deletingLastPathComponent()]
    where FileManager.default.isExecutableFile(atPath: candidate.appendingPathComponent("bulwark").path) {
        dir = candidate
        break
    }
    let p = Process()
    p.executableURL = dir.appendingPathComponent("bulwark")
    p.arguments = args
    var environment = ProcessInfo.processInfo.environment
    environment["BULWARK_CONFIG"] = nil
    for (k, v) in env { environment[k] = v }
    p.environment = environment
    let out = Pipe()
    let err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    let o = out.fileHandleForReading.readDataToEndOfFile()
    let e = err.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

func tempFile(_ text: String, name: String = "p.yaml") throws -> String {
    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bulwark-cli-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    let f = dir.appendingPathComponent(name)
    try text.write(to: f, atomically: true, encoding: .utf8)
    return f.path
}

let good = """
    apiVersion: crd.varmor.org/v1beta1
    kind: VarmorPolicy
    metadata: {name: web, namespace: shop}
    spec:
      target: {kind: Pod, selector: {matchLabels: {app: web}}}
      policy:
        enforcer: AppArmorBPFSeccomp
        mode: EnhanceProtect
        enhanceProtect:
          hardeningRules: [disallow-debug-disk-device, disallow-create-user-ns]
    """

@Suite("bulwark CLI")
struct CLITests {
    /// vArmor 0.8 syntax: `policy validate` accepts it with a warning naming `policy migrate`,
    /// which prints the current form; that form validates with no such warning.
    @Test func migrateWritesTheCurrentForm() throws {
        let old = good.replacingOccurrences(
            of: "      hardeningRules: [disallow-debug-disk-device, disallow-create-user-ns]",
            with: "      bpfRawRules:\n        files:\n        - pattern: /etc/shadow\n          permissions: [read]"
                // a second rule: each insertion moves the rules after it (the check ignores positions)
                + "\n        - pattern: /etc/gshadow\n          permissions: [read]")
        let file = try tempFile(old)
        let v = try bulwark(["policy", "validate", file])
        #expect(v.code == 0 && v.err.contains("vArmor 0.8 form") && v.err.contains("policy migrate"), "\(v.err)")
        let m = try bulwark(["policy", "migrate", file])
        #expect(m.code == 0 && m.out.contains("- qualifiers: [deny]\n          pattern: /etc/shadow"), "\(m.out)")
        let migrated = try tempFile(m.out)
        let again = try bulwark(["policy", "validate", migrated])
        #expect(again.code == 0 && !again.err.contains("0.8"), "\(again.err)")
    }

    @Test func enforcerSaysPreciselyWhyItCannotRunHere() throws {
        let probe = try bulwark(["enforcer", "probe"])
        if probe.code == 0 { try Test.cancel("this kernel can run the BPF enforcer") }
        #expect(probe.err.contains("BPF LSM is not usable on"))
        let status = try bulwark(["enforcer", "status"])
        #expect(status.code == 0 && status.out.contains("BPF LSM:   NOT available"))
        let selftest = try bulwark(["selftest"])
        #expect(selftest.code == 1)
        #expect(selftest.err.contains("cannot run the BPF enforcer"))
        #expect(selftest.err.contains("  - "), "each missing piece on its own line: \(selftest.err)")
    }

    @Test func profileApplyWithoutAnEnforcerFailsClearly() throws {
        let f = try tempFile(
            """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: p, namespace: ns}
            spec:
              target: {kind: Pod, name: x}
              policy: {enforcer: BPF, mode: RuntimeDefault}
            """)
        let r = try bulwark(["profile", "apply", "--pin-path", "/nonexistent/bulwark", f])
        #expect(r.code == 1)
        #expect(r.err.contains("bulwark enforcer load"), "the hint names the fix: \(r.err)")
    }

    @Test func validateAcceptsAndRejects() throws {
        let ok = try bulwark(["policy", "validate", try tempFile(good)])
        #expect(ok.code == 0)
        #expect(ok.out.contains("VarmorPolicy shop/web: valid (profile varmor-shop-web"))
        let badPath = try tempFile(
            good.replacingOccurrences(of: "disallow-create-user-ns", with: "disallow-create-userns"))
        let bad = try bulwark(["policy", "validate", badPath])
        #expect(bad.code == 1)
        #expect(
            bad.err.contains(
                "\(badPath):10:52: error: spec.policy.enhanceProtect.hardeningRules[1]: unknown built-in rule \"disallow-create-userns\""
            ))
        #expect(bad.err.contains("fix: did you mean disallow-create-user-ns?"))
        #expect(try bulwark(["policy", "validate", "/nonexistent.yaml"]).code == 1)
        #expect(try bulwark(["policy", "frobnicate"]).code == 1)
        #expect(try bulwark(["--help"]).code == 0)
    }

    @Test func compileEachEnforcer() throws {
        let path = try tempFile(good)
        let aa = try bulwark(["policy", "compile", path, "--enforcer", "apparmor", "--disk-devices", "sda,vdb"])
        #expect(aa.code == 0)
        #expect(aa.out.contains("profile varmor-shop-web flags=(attach_disconnected,mediate_deleted) {"))
        #expect(aa.out.contains("deny /dev/vdb rw,"))
        let sc = try bulwark(["policy", "compile", path, "--enforcer", "seccomp"])
        #expect(sc.code == 0)
        let json = try JSONSerialization.jsonObject(with: Data(sc.out.utf8)) as? [String: Any]
        #expect(json?["defaultAction"] as? String == "SCMP_ACT_ALLOW")
        let bpf = try bulwark(["policy", "compile", path, "--enforcer", "bpf", "--disk-devices", "sda"])
        #expect(bpf.code == 0)
        #expect(bpf.out.contains("\"key\" : \"/dev/sda\""))
        let outDir = FileManager.default.temporaryDirectory.appendingPathComponent("bulwark-out-\(UUID().uuidString)")
            .path
        let written = try bulwark(["policy", "compile", path, "--enforcer", "seccomp", "--output", outDir])
        #expect(written.code == 0)
        #expect(FileManager.default.fileExists(atPath: outDir + "/varmor-shop-web.json"))
        #expect(try bulwark(["policy", "compile", path, "--enforcer", "selinux"]).code == 1)
        #expect(try bulwark(["policy", "compile", path, "--enforcer", "bpf", "--disk-devices", "/dev/sda"]).code == 1)
    }

    /// The `good` policy denying egress to these services of namespace nginx.
    func servicesPolicy(_ names: [String]) throws -> String {
        let rules =
            ["      bpfRawRules:", "        network:", "          egress:", "            toServices:"]
            + names.map { "            - {qualifiers: [deny], namespace: nginx, name: \($0)}" }
        return try tempFile(
            good.replacingOccurrences(
                of: "      hardeningRules: [disallow-debug-disk-device, disallow-create-user-ns]",
                with: rules.joined(separator: "\n")))
    }

    /// `policy compile --inventory`: what toServices resolves to before anything is loaded, what
    /// does not resolve and what the agent would do about it; a bad inventory is refused with its
    /// place.
    @Test func compileResolvesServicesFromAnInventory() throws {
        let policy = try servicesPolicy(["nginx", "gone"])
        let inventory = try tempFile(
            """
            kind: Service
            apiVersion: v1
            metadata: {name: nginx, namespace: nginx}
            spec: {clusterIPs: [10.96.1.2, "fd00::1:2"]}
            ---
            kind: EndpointSlice
            apiVersion: discovery.k8s.io/v1
            metadata: {name: nginx-1, namespace: nginx, labels: {kubernetes.io/service-name: nginx}}
            endpoints: [{addresses: [10.244.0.9]}]
            ports: [{port: 8080}]
            """, name: "inventory.yaml")
        let r = try bulwark(["policy", "compile", policy, "--enforcer", "bpf", "--inventory", inventory])
        #expect(r.code == 0, "\(r.err)")
        for net in ["10.96.1.2/32", "10.244.0.9/32", "fd00:0:0:0:0:0:1:2/128"] {
            #expect(r.out.contains(net), "\(net)")
        }
        #expect(
            r.err.contains(
                "unresolved: varmor-shop-web: toServices nginx/gone: matches no address yet (loaded; reported at run time)"
            ),
            "\(r.err)")
        let none = try bulwark(["policy", "compile", policy, "--enforcer", "bpf"])
        #expect(
            none.err.contains("toServices nginx/nginx: no cluster addresses known for it on this node"), "\(none.err)")
        #expect(none.err.contains("the agent refuses this profile"))
        let bad = try tempFile("kind: Pod\nmetadata: {namespace: x}\n", name: "inventory.yaml")
        let refused = try bulwark(["policy", "compile", policy, "--enforcer", "bpf", "--inventory", bad])
        #expect(refused.code == 1 && refused.err.contains("\(bad):1:1: error: Pod is not readable"), "\(refused.err)")
    }

    /// `policy compile --kubeconfig`: the addresses read once from the API server (the stand-in:
    /// no real one runs here); an RBAC refusal is an error naming the grant.
    @Test func compileResolvesServicesFromTheAPIServer() throws {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("bulwark-kc-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let s = try KubeTestServer(tls: KubeTestServer.makeTLS(in: dir))
        defer { s.stop() }
        s.apply(
            "/api/v1/services",
            try JSONValue.parse(
                #"{"metadata":{"name":"nginx","namespace":"nginx"},"spec":{"clusterIPs":["10.96.1.2"]}}"#))
        s.apply(
            "/apis/discovery.k8s.io/v1/endpointslices",
            try JSONValue.parse(
                #"{"metadata":{"name":"nginx-1","namespace":"nginx","labels":{"kubernetes.io/service-name":"nginx"}},"endpoints":[{"addresses":["10.244.0.9"]}],"ports":[{"port":8080}]}"#
            ))
        let kubeconfig = try s.writeKubeconfig(to: dir + "/kubeconfig")
        let policy = try servicesPolicy(["nginx"])
        let r = try bulwark(["policy", "compile", policy, "--enforcer", "bpf", "--kubeconfig", kubeconfig])
        #expect(r.code == 0, "\(r.err)")
        #expect(r.out.contains("10.96.1.2/32") && r.out.contains("10.244.0.9/32"), "\(r.out)")
        #expect(!r.err.contains("unresolved"), "\(r.err)")
        s.forbid("endpointslices")
        let refused = try bulwark(["policy", "compile", policy, "--enforcer", "bpf", "--kubeconfig", kubeconfig])
        #expect(refused.code == 1)
        #expect(
            refused.err.contains("grant the agent's service account the verb `list` on resource `endpointslices`"),
            "\(refused.err)")
    }

    @Test func explainSaysWhy() throws {
        let path = try tempFile(good)
        let hit = try bulwark([
            "policy", "explain", path, "--namespace", "shop", "--pod-label", "app=web", "--container", "c",
        ])
        #expect(hit.code == 0)
        #expect(hit.out.contains("profile:   varmor-shop-web"))
        #expect(hit.out.contains("selector matches the pod labels"))
        let miss = try bulwark([
            "policy", "explain", path, "--namespace", "shop", "--pod-label", "app=db", "--container", "c",
        ])
        #expect(miss.code == 0)
        #expect(miss.out.contains("policy:    none"))
        #expect(
            try bulwark([
                "policy", "explain", path, "--namespace", "shop", "--pod-label", "novalue", "--container", "c",
            ]).code == 1)
    }

    @Test func configFromEnvironmentIsValidated() throws {
        let path = try tempFile(good)
        let cfg = try tempFile("clusterProfileNamespace: sec\nbogus: 1\n", name: "bulwark.yaml")
        let r = try bulwark(["policy", "validate", path], env: ["BULWARK_CONFIG": cfg])
        #expect(r.code == 1)
        #expect(r.err.contains("\(cfg):2:1: error: bogus: unknown field"))
    }
}
