import BulwarkPolicy
import Foundation
import Testing

/// Builds a policy around `policy:` body lines (indented 4) and `target:` lines.
func doc(
    kind: String = "VarmorPolicy", target: String = "    kind: Deployment\n    name: web", body: String,
    extraSpec: String = "", metadata: String = "  name: demo\n  namespace: demo"
) -> String {
    """
    apiVersion: crd.varmor.org/v1beta1
    kind: \(kind)
    metadata:
    \(metadata)
    spec:
      target:
    \(target)
      policy:
    \(body)
    \(extraSpec)
    """
}

let bpfHead = "    enforcer: BPF\n    mode: EnhanceProtect\n    enhanceProtect:\n      bpfRawRules:\n"

/// (name, document, the first error exactly as printed without the file name)
let malformed: [(String, String, String)] = [
    (
        "api version",
        doc(body: "    enforcer: BPF\n    mode: AlwaysAllow").replacingOccurrences(of: "v1beta1", with: "v1alpha1"),
        "1:13: error: apiVersion: unsupported apiVersion \"crd.varmor.org/v1alpha1\""
    ),
    (
        "kind typo", doc(kind: "VarmorPolicies", body: "    enforcer: BPF\n    mode: AlwaysAllow"),
        "2:7: error: kind: unknown kind \"VarmorPolicies\""
    ),
    (
        "missing name", doc(body: "    enforcer: BPF\n    mode: AlwaysAllow", metadata: "  namespace: demo"),
        "4:3: error: metadata.name: required field is missing"
    ),
    (
        "bad name", doc(body: "    enforcer: BPF\n    mode: AlwaysAllow", metadata: "  name: Demo_1"),
        "4:9: error: metadata.name: \"Demo_1\" is not a valid name"
    ),
    (
        "cluster with namespace", doc(kind: "VarmorClusterPolicy", body: "    enforcer: BPF\n    mode: AlwaysAllow"),
        "5:14: error: metadata.namespace: a VarmorClusterPolicy is cluster-scoped and has no namespace"
    ),
    (
        "unknown top field", doc(body: "    enforcer: BPF\n    mode: AlwaysAllow", extraSpec: "spek: {}"),
        "13:1: error: spek: unknown field"
    ),
    (
        "unknown spec field",
        doc(body: "    enforcer: BPF\n    mode: AlwaysAllow", extraSpec: "  updateExisting: true"),
        "13:3: error: spec.updateExisting: unknown field"
    ),
    (
        "target kind", doc(target: "    kind: Job\n    name: x", body: "    enforcer: BPF\n    mode: AlwaysAllow"),
        "8:11: error: spec.target.kind: unknown target kind \"Job\""
    ),
    (
        "name and selector",
        doc(
            target: "    kind: Pod\n    name: x\n    selector: {matchLabels: {a: b}}",
            body: "    enforcer: BPF\n    mode: AlwaysAllow"),
        "8:5: error: spec.target: `name` and `selector` are mutually exclusive"
    ),
    (
        "neither name nor selector", doc(target: "    kind: Pod", body: "    enforcer: BPF\n    mode: AlwaysAllow"),
        "8:5: error: spec.target: one of `name` or `selector` is required"
    ),
    (
        "selector operator",
        doc(
            target:
                "    kind: Pod\n    selector:\n      matchExpressions:\n      - {key: a, operator: Between, values: [x]}",
            body: "    enforcer: BPF\n    mode: AlwaysAllow"),
        "11:28: error: spec.target.selector.matchExpressions[0].operator: unknown operator \"Between\""
    ),
    (
        "In without values",
        doc(
            target: "    kind: Pod\n    selector:\n      matchExpressions:\n      - {key: a, operator: In}",
            body: "    enforcer: BPF\n    mode: AlwaysAllow"),
        "11:9: error: spec.target.selector.matchExpressions[0]: operator In needs a non-empty `values` list"
    ),
    (
        "container kind without selector",
        doc(target: "    kind: Container", body: "    enforcer: BPF\n    mode: AlwaysAllow"),
        "8:5: error: spec.target: a Container target needs `selector` (over OCI annotations) or `name` (container name)"
    ),
    (
        "enforcer unknown", doc(body: "    enforcer: SELinux\n    mode: AlwaysAllow"),
        "11:15: error: spec.policy.enforcer: \"SELinux\" names no known enforcer"
    ),
    (
        "network proxy", doc(body: "    enforcer: NetworkProxyBPF\n    mode: AlwaysAllow"),
        "11:15: error: spec.policy.enforcer: the NetworkProxy enforcer (Envoy sidecar) is not supported by Bulwark"
    ),
    (
        "mode typo", doc(body: "    enforcer: BPF\n    mode: EnhancedProtect"),
        "12:11: error: spec.policy.mode: unknown mode \"EnhancedProtect\""
    ),
    (
        "missing mode", doc(body: "    enforcer: BPF"),
        "11:5: error: spec.policy.mode: required field is missing"
    ),
    (
        "enhance without body", doc(body: "    enforcer: BPF\n    mode: EnhanceProtect"),
        "11:5: error: spec.policy: mode EnhanceProtect requires `enhanceProtect`"
    ),
    (
        "modeling without options", doc(body: "    enforcer: AppArmor\n    mode: BehaviorModeling"),
        "11:5: error: spec.policy: mode BehaviorModeling requires `modelingOptions`"
    ),
    (
        "modeling duration zero",
        doc(body: "    enforcer: AppArmor\n    mode: BehaviorModeling\n    modelingOptions: {duration: 0}"),
        "13:33: error: spec.policy.modelingOptions.duration: 0 is out of range 1...525600"
    ),
    (
        "defense in depth with bpf but no bpf allow-list",
        doc(
            body:
                "    enforcer: BPFSeccomp\n    mode: DefenseInDepth\n    defenseInDepth: {seccomp: {profileType: Custom, customProfile: '{\"defaultAction\":\"SCMP_ACT_ERRNO\"}'}}"
        ),
        "13:21: error: spec.policy.defenseInDepth: enforcer BPF in mode DefenseInDepth requires `defenseInDepth.bpf`"
    ),
    (
        "defense in depth bpf custom without allow rules",
        doc(
            body:
                "    enforcer: BPF\n    mode: DefenseInDepth\n    defenseInDepth: {bpf: {profileType: Custom, bpfRawRules: {files: [{pattern: /etc/**, permissions: [write], qualifiers: [deny]}]}}}"
        ),
        "13:41: error: spec.policy.defenseInDepth.bpf.profileType: profileType Custom for BPF takes its allow-list from bpfRawRules, and no rule there has `qualifiers: [allow]`: the container could do nothing"
    ),
    (
        "defense in depth bpf custom profile text",
        doc(
            body:
                "    enforcer: BPF\n    mode: DefenseInDepth\n    defenseInDepth: {bpf: {profileType: BehaviorModel, customProfile: x}}"
        ),
        "13:71: error: spec.policy.defenseInDepth.bpf.customProfile: the BPF enforcer has no profile text: its allow-list is the behaviour model or the `allow` rules of bpfRawRules"
    ),
    (
        "allow qualifier outside an allow-list",
        doc(
            body:
                "    enforcer: BPF\n    mode: EnhanceProtect\n    enhanceProtect: {bpfRawRules: {files: [{pattern: /etc/**, permissions: [read], qualifiers: [allow]}]}}"
        ),
        "13:97: error: spec.policy.enhanceProtect.bpfRawRules.files[0].qualifiers[0]: qualifier `allow` adds to an allow-list: it applies in defenseInDepth.bpf.bpfRawRules only"
    ),
    (
        "allow and deny together",
        doc(
            body:
                "    enforcer: BPF\n    mode: DefenseInDepth\n    defenseInDepth: {bpf: {profileType: Custom, bpfRawRules: {files: [{pattern: /etc/**, permissions: [read], qualifiers: [allow, deny]}]}}}"
        ),
        "13:123: error: spec.policy.defenseInDepth.bpf.bpfRawRules.files[0].qualifiers: a rule cannot both allow and deny"
    ),
    (
        "defense in depth unknown profile type",
        doc(
            body:
                "    enforcer: Seccomp\n    mode: DefenseInDepth\n    defenseInDepth: {seccomp: {profileType: Learned}}"
        ),
        "13:45: error: spec.policy.defenseInDepth.seccomp.profileType: unknown profileType \"Learned\""
    ),
    (
        "defense in depth bad json",
        doc(
            body:
                "    enforcer: Seccomp\n    mode: DefenseInDepth\n    defenseInDepth: {seccomp: {profileType: Custom, customProfile: 'nope'}}"
        ),
        "13:68: error: spec.policy.defenseInDepth.seccomp.customProfile: customProfile is not a valid OCI seccomp profile: not valid JSON"
    ),
    (
        "unknown hardening rule",
        doc(
            body:
                "    enforcer: BPF\n    mode: EnhanceProtect\n    enhanceProtect:\n      hardeningRules: [disable-cap-sysadmin]"
        ),
        "14:24: error: spec.policy.enhanceProtect.hardeningRules[0]: unknown built-in rule \"disable-cap-sysadmin\""
    ),
    (
        "rule in wrong list",
        doc(
            body:
                "    enforcer: Seccomp\n    mode: EnhanceProtect\n    enhanceProtect:\n      hardeningRules: [disable-chmod-x-bit]"
        ),
        "14:24: error: spec.policy.enhanceProtect.hardeningRules[0]: \"disable-chmod-x-bit\" is one of the attackProtectionRules, not hardeningRules"
    ),
    (
        "relative target",
        doc(
            body:
                "    enforcer: AppArmor\n    mode: EnhanceProtect\n    enhanceProtect:\n      attackProtectionRules:\n      - rules: [disable-write-etc]\n        targets: [bash]"
        ),
        "16:19: error: spec.policy.enhanceProtect.attackProtectionRules[0].targets[0]: target \"bash\" is not an absolute path"
    ),
    (
        "bad qualifier",
        doc(body: bpfHead + "        files:\n        - {qualifiers: [block], pattern: /etc/x, permissions: [read]}"),
        "16:25: error: spec.policy.enhanceProtect.bpfRawRules.files[0].qualifiers[0]: unknown qualifier \"block\""
    ),
    (
        "two wildcards",
        doc(body: bpfHead + "        files:\n        - {qualifiers: [deny], pattern: /a/**/b/**, permissions: [read]}"),
        "16:41: error: spec.policy.enhanceProtect.bpfRawRules.files[0].pattern: pattern \"/a/**/b/**\" has more than one wildcard"
    ),
    (
        "star with slash",
        doc(
            body: bpfHead + "        files:\n        - {qualifiers: [deny], pattern: /etc/*.conf, permissions: [read]}"),
        "16:41: error: spec.policy.enhanceProtect.bpfRawRules.files[0].pattern: pattern \"/etc/*.conf\" uses `*` with a `/`"
    ),
    (
        "bad permission",
        doc(body: bpfHead + "        files:\n        - {qualifiers: [deny], pattern: /etc/x, permissions: [rwx]}"),
        "16:63: error: spec.policy.enhanceProtect.bpfRawRules.files[0].permissions[0]: unknown permission \"rwx\""
    ),
    (
        "unknown file rule field",
        doc(body: bpfHead + "        files:\n        - {qualifiers: [deny], path: /etc/x, permissions: [read]}"),
        "16:11: error: spec.policy.enhanceProtect.bpfRawRules.files[0].pattern: required field is missing"
    ),
    (
        "socket types and protocols",
        doc(
            body: bpfHead
                + "        network:\n          sockets:\n          - {qualifiers: [deny], types: [stream], protocols: [tcp]}"
        ),
        "17:13: error: spec.policy.enhanceProtect.bpfRawRules.network.sockets[0]: `types` and `protocols` are mutually exclusive"
    ),
    (
        "socket domain",
        doc(body: bpfHead + "        network:\n          sockets:\n          - {qualifiers: [deny], domains: [ipv4]}"),
        "17:44: error: spec.policy.enhanceProtect.bpfRawRules.network.sockets[0].domains[0]: unknown domain \"ipv4\""
    ),
    (
        "ip and cidr",
        doc(
            body: bpfHead
                + "        network:\n          egress:\n            toDestinations:\n            - {qualifiers: [deny], ip: 10.0.0.1, cidr: 10.0.0.0/8}"
        ),
        "18:15: error: spec.policy.enhanceProtect.bpfRawRules.network.egress.toDestinations[0]: `ip` and `cidr` are mutually exclusive"
    ),
    (
        "bad ip",
        doc(
            body: bpfHead
                + "        network:\n          egress:\n            toDestinations:\n            - {qualifiers: [deny], ip: 10.0.0.256}"
        ),
        "18:40: error: spec.policy.enhanceProtect.bpfRawRules.network.egress.toDestinations[0].ip: \"10.0.0.256\" is not an IP address"
    ),
    (
        "bad cidr",
        doc(
            body: bpfHead
                + "        network:\n          egress:\n            toDestinations:\n            - {qualifiers: [deny], cidr: 10.0.0.0/33}"
        ),
        "18:42: error: spec.policy.enhanceProtect.bpfRawRules.network.egress.toDestinations[0].cidr: \"10.0.0.0/33\" is not a CIDR"
    ),
    (
        "endPort below port",
        doc(
            body: bpfHead
                + "        network:\n          egress:\n            toDestinations:\n            - {qualifiers: [deny], ip: 10.0.0.1, ports: [{port: 80, endPort: 70}]}"
        ),
        "18:78: error: spec.policy.enhanceProtect.bpfRawRules.network.egress.toDestinations[0].ports[0].endPort: endPort 70 is lower than port 80"
    ),
    (
        "port zero",
        doc(
            body: bpfHead
                + "        network:\n          egress:\n            toDestinations:\n            - {qualifiers: [deny], ip: 10.0.0.1, ports: [{port: 0}]}"
        ),
        "18:65: error: spec.policy.enhanceProtect.bpfRawRules.network.egress.toDestinations[0].ports[0].port: 0 is out of range 1...65535"
    ),
    (
        "service name without namespace",
        doc(
            body: bpfHead
                + "        network:\n          egress:\n            toServices:\n            - {qualifiers: [deny], name: api}"
        ),
        "18:15: error: spec.policy.enhanceProtect.bpfRawRules.network.egress.toServices[0]: `name` requires `namespace`"
    ),
    (
        "pods without selector",
        doc(
            body: bpfHead
                + "        network:\n          egress:\n            toPods:\n            - {qualifiers: [deny], namespace: x}"
        ),
        "18:15: error: spec.policy.enhanceProtect.bpfRawRules.network.egress.toPods[0].podSelector: required field is missing"
    ),
    (
        "egresses (old spelling)", doc(body: bpfHead + "        network:\n          egresses: []"),
        "16:11: error: spec.policy.enhanceProtect.bpfRawRules.network.egresses: unknown field"
    ),
    (
        "ptrace permission", doc(body: bpfHead + "        ptrace: {qualifiers: [deny], permissions: [attach]}"),
        "15:52: error: spec.policy.enhanceProtect.bpfRawRules.ptrace.permissions[0]: unknown ptrace permission \"attach\""
    ),
    (
        "mount flag",
        doc(
            body: bpfHead
                + "        mounts:\n        - {qualifiers: [deny], sourcePattern: /dev/**, fstype: ext4, flags: [bindd]}"
        ),
        "16:78: error: spec.policy.enhanceProtect.bpfRawRules.mounts[0].flags[0]: unknown mount flag \"bindd\""
    ),
    (
        "fstype too long",
        doc(
            body: bpfHead
                + "        mounts:\n        - {qualifiers: [deny], sourcePattern: /dev/**, fstype: averyveryverylongfs, flags: [all]}"
        ),
        "16:64: error: spec.policy.enhanceProtect.bpfRawRules.mounts[0].fstype: fstype \"averyveryverylongfs\" is longer than 15 bytes"
    ),
    (
        "seccomp action",
        doc(
            body:
                "    enforcer: Seccomp\n    mode: EnhanceProtect\n    enhanceProtect:\n      syscallRawRules:\n      - {names: [unshare], action: SCMP_ACT_DENY}"
        ),
        "15:36: error: spec.policy.enhanceProtect.syscallRawRules[0].action: unknown seccomp action \"SCMP_ACT_DENY\""
    ),
    (
        "seccomp arg index",
        doc(
            body:
                "    enforcer: Seccomp\n    mode: EnhanceProtect\n    enhanceProtect:\n      syscallRawRules:\n      - {names: [unshare], action: SCMP_ACT_ERRNO, args: [{index: 6, value: 1, op: SCMP_CMP_EQ}]}"
        ),
        "15:67: error: spec.policy.enhanceProtect.syscallRawRules[0].args[0].index: 6 is out of range 0...5"
    ),
    (
        "unknown syscall",  // runc skips names libseccomp does not know: a typo dropped the rule
        doc(
            body:
                "    enforcer: Seccomp\n    mode: EnhanceProtect\n    enhanceProtect:\n      syscallRawRules:\n      - {names: [mkdri], action: SCMP_ACT_ERRNO}"
        ),
        "15:18: error: spec.policy.enhanceProtect.syscallRawRules[0].names[0]: unknown syscall \"mkdri\" (no architecture has it)"
    ),
    (
        "NUL in a path",
        doc(
            body:
                "    enforcer: BPF\n    mode: EnhanceProtect\n    enhanceProtect:\n      bpfRawRules:\n        files:\n        - {pattern: \"/etc/\\0shadow\", permissions: [read], qualifiers: [deny]}"
        ),
        "16:21: error: spec.policy.enhanceProtect.bpfRawRules.files[0].pattern: contains a NUL character"
    ),
    (
        "bool as string",
        doc(body: "    enforcer: BPF\n    mode: EnhanceProtect\n    enhanceProtect:\n      auditViolations: \"yes\""),
        "14:24: error: spec.policy.enhanceProtect.auditViolations: expected true or false, found \"yes\""
    ),
    (
        "list expected",
        doc(
            body:
                "    enforcer: BPF\n    mode: EnhanceProtect\n    enhanceProtect:\n      hardeningRules: disallow-umount"
        ),
        "14:23: error: spec.policy.enhanceProtect.hardeningRules: expected a list, found a scalar (\"disallow-umount\")"
    ),
    (
        "profile name too long",
        doc(
            body: "    enforcer: BPF\n    mode: AlwaysAllow",
            metadata: "  name: " + String(repeating: "a", count: 60) + "\n  namespace: demo"),
        "4:3: error: metadata: profile name \"varmor-demo-" + String(repeating: "a", count: 60)
            + "\" is 72 characters, more than 63"
    ),
    (
        "yaml syntax", "apiVersion: crd.varmor.org/v1beta1\nkind: VarmorPolicy\nmetadata:\n  name: [unclosed\n",
        "5:1: error: invalid YAML: did not find expected ',' or ']' while parsing a flow sequence"
    ),
    ("alias", "a: &x [1]\nb: *x\n", "2:4: error: YAML aliases (*name) are not accepted in policy files"),
]

@Suite("Malformed policies")
struct MalformedPolicyTests {
    @Test("each malformed policy gives its exact first error", arguments: malformed.map { ($0.0, $0.1, $0.2) })
    func exactError(name: String, text: String, expected: String) {
        let result = PolicyParser.parse(text, file: "p.yaml")
        #expect(!result.isValid, "\(name) was accepted")
        let first = result.errors.first.map { "\($0)".replacingOccurrences(of: "p.yaml:", with: "") }
        let firstLine = first?.split(separator: "\n").first.map(String.init)
        #expect(firstLine == expected, "\(name)")
        #expect(result.policies.isEmpty)
        // Every error names a fix.
        for e in result.errors { #expect(!e.hint.isEmpty, "\(name): no hint for \(e)") }
    }

    @Test func atLeastThirtyCases() {
        #expect(malformed.count >= 30)
    }
}
