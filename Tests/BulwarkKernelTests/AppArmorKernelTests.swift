import BulwarkDelivery
import BulwarkModel
import BulwarkPolicy
import BulwarkProfiles
import BulwarkSystem
import BulwarkTestSupport
import Foundation
import Logging
import Testing

/// AppArmor for real: the VM tier boots its kernel with `apparmor` in `lsm=` (scripts/vmrun), so
/// profiles from every compiler path are loaded by the production delivery (`apparmor_parser` with
/// `-C` for observation mode) and confine real runc containers.
let appArmorNeeds = Needs(
    met: getuid() == 0 && AppArmorFacts.enabled && which("apparmor_parser") != nil
        && Needs.tool("/usr/sbin/runc", "/usr/bin/runc") != nil,
    reason: AppArmorFacts.enabled
        ? "needs root, apparmor_parser and runc"
        : "AppArmor is not enabled in this kernel (scripts/kernel-tests.sh boots the VM with lsm=…,apparmor,bpf)",
    requiredBy: "BULWARK_REQUIRE_KERNEL")

@Suite("Kernel tier: AppArmor with runc", .serialized, .needs(appArmorNeeds))
struct AppArmorKernelTests {
    static func policy(_ name: String, _ body: String) -> Policy {
        let text = """
            apiVersion: crd.varmor.org/v1beta1
            kind: VarmorPolicy
            metadata: {name: \(name), namespace: kt}
            spec:
              target: {kind: Pod, name: x}
              policy:
                enforcer: AppArmor
            \(body)
            """
        let r = PolicyParser.parse(text, file: "\(name).yaml")
        precondition(r.isValid, "\(r.errors)")
        return r.policies[0]
    }

    /// Delivers `policy` as the production path does (compile, write, `apparmor_parser`), then runs
    /// `script` in a runc container confined by it. Returns the exit status and output.
    static func confined(
        _ policy: Policy, script: String, dir: String, model: BehaviorModel? = nil
    ) throws -> (status: Int32, output: String, profile: String) {
        try confined(policy, script: script, dir: dir, model: model, prepare: { _ in })
    }

    /// `prepare` gets the bundle's rootfs before the container runs.
    static func confined(
        _ policy: Policy, script: String, dir: String, model: BehaviorModel? = nil, noNewPrivileges: Bool = true,
        prepare: (String) throws -> Void
    ) throws -> (status: Int32, output: String, profile: String) {
        let name = ProfileNaming.profileName(for: policy)
        var config = NodeConfig()
        config.enforcers = [.appArmor]
        config.appArmorProfileDirectory = dir + "/apparmor.d"
        config.modelDirectory = dir + "/models"
        if let model { try ModelStore(directory: config.modelDirectory).save(model) }
        let delivered = ProfileDelivery(config: config, logger: Logger(label: "kt")).deliver(policy, profile: name)
        #expect(delivered.appArmor.hasPrefix("loaded"), "\(name): \(delivered.appArmor)")
        var b = BusyboxBundle(args: ["/bin/sh", "-c", script])
        b.applets = ["sh", "echo"]
        b.copies = ["cat", "head"]  // exec rules and child profiles match the file executed
        b.files = ["secret": "secret\n", "public": "public\n"]
        b.appArmorProfile = name
        b.noNewPrivileges = noNewPrivileges
        let bundle = try b.write(below: dir)
        try prepare(bundle + "/rootfs")
        let runc = try #require(Needs.tool("/usr/sbin/runc", "/usr/bin/runc"))
        let (status, output) = try capture(runc, ["run", "--bundle", bundle, "bw-kt-aa-\(name)-\(getpid())"])
        return (status, output, name)
    }

    static func unload(_ name: String, dir: String) {
        _ = try? capture(which("apparmor_parser")!, ["-R", dir + "/apparmor.d/" + name])
    }

    /// The mode the kernel shows for a loaded profile (`enforce` / `complain`).
    static func kernelMode(_ name: String) -> String? {
        let list = (try? String(contentsOfFile: "/sys/kernel/security/apparmor/profiles", encoding: .utf8)) ?? ""
        for line in list.split(separator: "\n") where line.hasPrefix(name + " (") {
            return String(line.dropFirst(name.count + 2).dropLast())
        }
        return nil
    }

    @Test func everyCompilerPathConfinesARuncContainer() throws {
        guard appArmorNeeds.check() else { return }
        let dir = try fixture()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let probe = "cat /proc/self/attr/current; cat /public; cat /secret; echo rc=$?"
        // EnhanceProtect: raw deny rule; RuntimeDefault: the runtime-default profile
        let enhance = Self.policy(
            "kt-enhance",
            "    mode: EnhanceProtect\n    enhanceProtect:\n      appArmorRawRules:\n      - rules: \"deny /secret r,\""
        )
        var r = try Self.confined(enhance, script: probe, dir: dir)
        defer { Self.unload(r.profile, dir: dir) }
        #expect(r.output.contains("\(r.profile) (enforce)"), "\(r.output)")
        #expect(r.output.contains("public") && r.output.contains("Permission denied") && r.output.contains("rc=1"))
        let runtimeDefault = Self.policy("kt-rtdefault", "    mode: RuntimeDefault")
        let rd = try Self.confined(runtimeDefault, script: probe, dir: dir)
        defer { Self.unload(rd.profile, dir: dir) }
        #expect(rd.output.contains("\(rd.profile) (enforce)") && rd.output.contains("secret"), "\(rd.output)")
        // child profile: the raw rule applies to one executable only. (busybox's shell runs its
        // applets in-process, without an exec — so the target is a second busybox at /opt/busybox,
        // which the shell has to exec.)
        let child = Self.policy(
            "kt-child",
            "    mode: EnhanceProtect\n    enhanceProtect:\n      appArmorRawRules:\n      - rules: \"deny /secret r,\"\n        targets: [/opt/busybox]"
        )
        // (with no_new_privs the kernel refuses the transition into the child profile: the exec fails
        // with EPERM — as in vArmor; docs/policy.md)
        let optBusybox: (String) throws -> Void = { rootfs in
            try FileManager.default.createDirectory(atPath: rootfs + "/opt", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: "/bin/busybox", toPath: rootfs + "/opt/busybox")
        }
        let nnp = try Self.confined(
            child, script: "/opt/busybox cat /public; echo rc=$?", dir: dir, prepare: optBusybox)
        #expect(nnp.output.contains("Operation not permitted") && nnp.output.contains("rc=126"), "\(nnp.output)")
        r = try Self.confined(
            child, script: "head -n1 /secret; /opt/busybox cat /secret; echo rc=$?", dir: dir, noNewPrivileges: false,
            prepare: optBusybox)
        defer { Self.unload(r.profile, dir: dir) }
        #expect(
            r.output.hasPrefix("secret") && r.output.contains("Permission denied") && r.output.contains("rc=1"),
            "\(r.output)")
        // DefenseInDepth, custom profile: an allow-list without /secret
        let custom = Self.policy(
            "kt-custom",
            """
                mode: DefenseInDepth
                defenseInDepth:
                  appArmor:
                    profileType: Custom
                    customProfile: |
                      abi <abi/3.0>,
                      #include <tunables/global>
                      profile kt-custom flags=(attach_disconnected,mediate_deleted) {
                        #include <abstractions/base>
                        /bin/** ix,
                        /public r,
                        @{PROC}/@{pid}/attr/current r,
                      }
            """)
        r = try Self.confined(custom, script: probe, dir: dir)
        defer { Self.unload(r.profile, dir: dir) }
        #expect(
            r.output.contains("public") && r.output.contains("Permission denied") && r.output.contains("rc=1"),
            "\(r.output)")
    }

    /// DefenseInDepth from a behaviour model: what the model holds runs, anything else is denied
    /// and — in observation mode — loaded in complain mode (the kernel says so), allowed and logged.
    @Test func theModelsAllowListConfinesAndObservationModeComplains() throws {
        guard appArmorNeeds.check() else { return }
        let dir = try fixture()
        defer { try? FileManager.default.removeItem(atPath: dir) }
        let name = "varmor-kt-kt-model"
        var model = BehaviorModel(name: name)
        var a = AppArmorBehavior()
        a.executions = ["/bin/busybox", "/bin/cat", "/bin/head"]
        a.addFile(FileAccess(path: "/public", permissions: ["r"]))
        a.addFile(FileAccess(path: "/proc/*/attr/current", permissions: ["r"]))
        model.appArmor = a
        let enforce = Self.policy(
            "kt-model", "    mode: DefenseInDepth\n    defenseInDepth:\n      appArmor: {profileType: BehaviorModel}")
        let r = try Self.confined(enforce, script: "cat /public; cat /secret; echo rc=$?", dir: dir, model: model)
        defer { Self.unload(r.profile, dir: dir) }
        #expect(Self.kernelMode(name) == "enforce")
        #expect(
            r.output.contains("public") && r.output.contains("Permission denied") && r.output.contains("rc=1"),
            "\(r.output)")
        let observe = Self.policy(
            "kt-model",
            "    mode: DefenseInDepth\n    defenseInDepth:\n      allowViolations: true\n      appArmor: {profileType: BehaviorModel}"
        )
        let o = try Self.confined(observe, script: "cat /secret; echo rc=$?", dir: dir, model: model)
        #expect(Self.kernelMode(name) == "complain", "the kernel does not show the profile in complain mode")
        #expect(o.output.contains("secret") && o.output.contains("rc=0"), "\(o.output)")
    }
}
