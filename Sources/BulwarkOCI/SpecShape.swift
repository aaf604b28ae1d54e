/// What runc would read differently from a plain, case-sensitive reader of `config.json`.
///
/// runc decodes the spec with Go's encoding/json, which matches a member to a struct field
/// case-insensitively (with Unicode simple folding: `ſ` is `s`, the Kelvin sign `K` is `k`) and
/// decodes a later member for the same field into it. So `"Linux": {"seccomp": null}` after
/// `"linux"` clears the filter Bulwark wrote, and `"Annotations"` carries a targeting annotation
/// that an exact reader never sees. crun matches exactly. Bulwark decides and rewrites only specs
/// that every runtime reads the same way: in a struct position (everything except the spec's
/// string maps) a member name must not be a case variant of a runtime-spec field, must not collide
/// with another member under folding, and must be ASCII; no name or string anywhere may hold a NUL
/// (crun's C strings end there). Exact duplicates are refused by the parser already.
public enum SpecShape {
    /// A description of the first ambiguous member (its JSON path), or nil.
    public static func ambiguity(in spec: JSONObject) -> String? {
        check(spec, path: "", isMap: false)
    }

    /// Objects whose keys are data (Go maps), not field names: matched exactly by every runtime.
    static let mapPaths: Set<String> = [
        "annotations", "linux.sysctl", "linux.resources.unified", "linux.resources.rdma", "linux.timeOffsets",
        "linux.netDevices",
    ]

    /// Every member name of runtime-spec v1.2 (config.go, config-linux, config-vm, features),
    /// folded to lower case → its exact spelling.
    static let fields: [String: String] = {
        let names = [
            "ociVersion", "process", "root", "hostname", "domainname", "mounts", "hooks", "annotations", "linux",
            "solaris", "windows", "vm", "zos", "freebsd",
            // process
            "terminal", "consoleSize", "height", "width", "user", "args", "commandLine", "env", "cwd", "capabilities",
            "rlimits", "noNewPrivileges", "apparmorProfile", "oomScoreAdj", "scheduler", "selinuxLabel", "ioPriority",
            "execCPUAffinity", "initial", "final", "uid", "gid", "umask", "additionalGids", "username", "bounding",
            "effective", "inheritable", "permitted", "ambient", "type", "hard", "soft", "policy", "nice", "priority",
            "flags", "runtime", "deadline", "period", "class",
            // root, mounts, hooks
            "path", "readonly", "destination", "source", "options", "uidMappings", "gidMappings", "prestart",
            "createRuntime", "createContainer", "startContainer", "poststart", "poststop", "timeout",
            // linux
            "containerID", "hostID", "size", "sysctl", "resources", "cgroupsPath", "namespaces", "devices", "seccomp",
            "rootfsPropagation", "maskedPaths", "readonlyPaths", "mountLabel", "intelRdt", "personality",
            "timeOffsets", "netDevices", "memoryPolicy", "major", "minor", "fileMode", "allow", "access", "memory",
            "limit", "reservation", "swap", "kernel", "kernelTCP", "swappiness", "disableOOMKiller", "useHierarchy",
            "checkBeforeUpdate", "cpu", "shares", "quota", "burst", "realtimeRuntime", "realtimePeriod", "cpus", "mems",
            "idle", "pids", "blockIO", "weight", "leafWeight", "weightDevice", "throttleReadBpsDevice",
            "throttleWriteBpsDevice", "throttleReadIOPSDevice", "throttleWriteIOPSDevice", "rate", "hugepageLimits",
            "pageSize", "network", "classID", "priorities", "name", "rdma", "hcaHandles", "hcaObjects", "unified",
            "defaultAction", "defaultErrnoRet", "architectures", "listenerPath", "listenerMetadata", "syscalls",
            "names", "action", "errnoRet", "index", "value", "valueTwo", "op", "closID", "l3CacheSchema",
            "memBwSchema", "schemata", "enableCMT", "enableMBM", "enableMonitoring", "domain", "secs", "nanosecs",
            "mode", "nodes",
            // vm, windows (read by no Linux runtime, listed so their case variants are caught too)
            "hypervisor", "parameters", "initrd", "image", "format", "hwConfig",
        ]
        var out: [String: String] = [:]
        for n in names { out[n.lowercased()] = n }
        return out
    }()

    private static func check(_ object: JSONObject, path: String, isMap: Bool) -> String? {
        var folded: [String: String] = [:]
        for m in object.members {
            let here = path.isEmpty ? m.key : path + "." + m.key
            if m.key.utf8.contains(0) {
                return "member \"\(here)\" has a NUL in its name (crun reads it up to the NUL)"
            }
            if !isMap {
                guard m.key.utf8.allSatisfy({ $0 < 0x80 }) else {
                    return "member \"\(here)\" has a non-ASCII name (runc would fold it onto a spec field)"
                }
                let lower = m.key.lowercased()
                if let canonical = fields[lower], canonical != m.key {
                    return "member \"\(here)\" is a case variant of \"\(canonical)\" (runc reads it as that field)"
                }
                if let other = folded.updateValue(m.key, forKey: lower) {
                    return "members \"\(other)\" and \"\(m.key)\" at \"\(path)\" differ only in case"
                }
            }
            // Array elements keep their parent's path; a map's values (`linux.netDevices.eth0`) are structs.
            if let problem = check(m.value, path: here) { return problem }
        }
        return nil
    }

    private static func check(_ value: JSONValue, path: String) -> String? {
        switch value {
        case .object(let o): return check(o, path: path, isMap: mapPaths.contains(path))
        case .array(let a):
            for v in a { if let p = check(v, path: path) { return p } }
            return nil
        case .string(let s) where s.utf8.contains(0):
            return "the value of \"\(path)\" has a NUL (crun reads it up to the NUL, runc in full)"
        default: return nil
        }
    }
}
