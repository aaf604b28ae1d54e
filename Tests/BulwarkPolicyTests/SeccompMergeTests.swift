import BulwarkOCI
import Testing

@Suite("Seccomp merge into a runtime's profile")
struct SeccompMergeTests {
    let denyMkdir = LinuxSeccomp(
        defaultAction: "SCMP_ACT_ALLOW",
        syscalls: [LinuxSyscall(names: ["mkdir", "mkdirat"], action: "SCMP_ACT_ERRNO")])

    @Test func noExistingProfileTakesTheCompiledOne() {
        #expect(SeccompMerge.merge(existing: nil, compiled: denyMkdir).profile == denyMkdir)
    }

    @Test func anUnconditionalDenialLeavesEveryAllowEntry() {
        let podman = LinuxSeccomp(
            defaultAction: "SCMP_ACT_ERRNO",
            syscalls: [
                LinuxSyscall(names: ["read", "mkdir", "write"], action: "SCMP_ACT_ALLOW"),
                LinuxSyscall(names: ["mkdirat"], action: "SCMP_ACT_ALLOW"),
            ])
        let r = SeccompMerge.merge(existing: podman, compiled: denyMkdir)
        let allowed = Set((r.profile.syscalls ?? []).filter { $0.action == "SCMP_ACT_ALLOW" }.flatMap(\.names))
        #expect(allowed == ["read", "write"])
        #expect(r.profile.defaultAction == "SCMP_ACT_ERRNO")
        #expect(r.profile.syscalls?.contains { $0.names == ["mkdir"] && $0.action == "SCMP_ACT_ERRNO" } == true)
        #expect(r.notes.isEmpty)
    }

    @Test func aSingleBitConditionalDenialBecomesAnAllowWithoutThoseBits() {
        let bits: [UInt64] = [0o100, 0o010, 0o001]
        let chmodX = LinuxSeccomp(
            defaultAction: "SCMP_ACT_ALLOW",
            syscalls: [
                LinuxSyscall(
                    names: ["chmod"], action: "SCMP_ACT_ERRNO",
                    args: bits.map { LinuxSeccompArg(index: 1, value: $0, valueTwo: $0, op: "SCMP_CMP_MASKED_EQ") })
            ])
        let podman = LinuxSeccomp(
            defaultAction: "SCMP_ACT_ERRNO",
            syscalls: [LinuxSyscall(names: ["chmod", "read"], action: "SCMP_ACT_ALLOW")])
        let r = SeccompMerge.merge(existing: podman, compiled: chmodX)
        let allowChmod = r.profile.syscalls?.first { $0.names == ["chmod"] && $0.action == "SCMP_ACT_ALLOW" }
        #expect(allowChmod?.args == [LinuxSeccompArg(index: 1, value: 0o111, valueTwo: 0, op: "SCMP_CMP_MASKED_EQ")])
        #expect(r.notes.isEmpty)
    }

    @Test func anInexpressibleConditionalDenialIsReportedNotDropped() {
        let weird = LinuxSeccomp(
            defaultAction: "SCMP_ACT_ALLOW",
            syscalls: [
                LinuxSyscall(
                    names: ["personality"], action: "SCMP_ACT_ERRNO",
                    args: [LinuxSeccompArg(index: 0, value: 8, op: "SCMP_CMP_GT")])
            ])
        let podman = LinuxSeccomp(
            defaultAction: "SCMP_ACT_ERRNO", syscalls: [LinuxSyscall(names: ["personality"], action: "SCMP_ACT_ALLOW")])
        let r = SeccompMerge.merge(existing: podman, compiled: weird)
        #expect(r.notes.count == 1 && r.notes[0].contains("personality"))
    }

    @Test func runtimeCommandLines() {
        let podman = RuntimeCommandLine.parse([
            "--systemd-cgroup", "--log-format=json", "--log", "/run/x/oci-log", "create", "--bundle", "/b",
            "--pid-file", "/p", "--console-socket", "/s", "abc",
        ])
        #expect(podman.subcommand == "create" && podman.bundle == "/b" && podman.id == "abc")
        #expect(podman.log == "/run/x/oci-log" && podman.logFormat == "json")
        let shim = RuntimeCommandLine.parse([
            "--root", "/run/containerd/runc/k8s.io", "--log", "/b/log.json", "--log-format", "json", "create",
            "--bundle=/b2", "--pid-file", "/b2/init.pid", "id2",
        ])
        #expect(shim.subcommand == "create" && shim.bundle == "/b2" && shim.id == "id2")
        let crun = RuntimeCommandLine.parse(["run", "-b", "/b3", "--config", "other.json", "c3"], dialect: .crun)
        #expect(crun.bundle == "/b3" && crun.config == "other.json" && crun.id == "c3")
        #expect(crun.specPath(cwd: "/work") == "/work/other.json")
        #expect(
            RuntimeCommandLine.parse(["run", "-b", "/b3", "-f", "config.json", "c3"], dialect: .crun).specPath(
                cwd: "/w") == "/b3/config.json")
        #expect(RuntimeCommandLine.parse(["delete", "-f", "x"]).id == "x")
        #expect(RuntimeCommandLine.parse(["--version"]).subcommand == nil)
    }
}
