/// OCI runtime-spec `linux.seccomp` (`LinuxSeccomp`), the format runc, crun, containerd and
/// vArmor use for seccomp profiles. Field names and optionality follow the runtime spec;
/// encoding is deterministic (sorted keys) so compiled profiles diff cleanly.
public struct LinuxSeccomp: Codable, Sendable, Equatable {
    public var defaultAction: String
    public var defaultErrnoRet: UInt32?
    public var architectures: [String]?
    public var flags: [String]?
    public var listenerPath: String?
    public var listenerMetadata: String?
    public var syscalls: [LinuxSyscall]?

    public init(defaultAction: String, syscalls: [LinuxSyscall]? = nil) {
        self.defaultAction = defaultAction
        self.syscalls = syscalls
    }
}

/// One `syscalls[]` entry: the action applies when the syscall is one of `names` and every
/// argument condition holds.
public struct LinuxSyscall: Codable, Sendable, Equatable, Hashable {
    public var names: [String]
    public var action: String
    public var errnoRet: UInt32?
    public var args: [LinuxSeccompArg]?

    public init(names: [String], action: String, errnoRet: UInt32? = nil, args: [LinuxSeccompArg]? = nil) {
        self.names = names
        self.action = action
        self.errnoRet = errnoRet
        self.args = args
    }
}

/// A syscall argument comparison (`SCMP_CMP_*`).
public struct LinuxSeccompArg: Codable, Sendable, Equatable, Hashable {
    public var index: UInt32
    public var value: UInt64
    public var valueTwo: UInt64?
    public var op: String

    public init(index: UInt32, value: UInt64, valueTwo: UInt64? = nil, op: String) {
        self.index = index
        self.value = value
        self.valueTwo = valueTwo
        self.op = op
    }
}

/// Vocabulary of the runtime spec.
public enum SeccompVocabulary {
    /// Actions accepted by runc and crun.
    public static let actions: Set<String> = [
        "SCMP_ACT_KILL", "SCMP_ACT_KILL_PROCESS", "SCMP_ACT_KILL_THREAD", "SCMP_ACT_TRAP", "SCMP_ACT_ERRNO",
        "SCMP_ACT_TRACE", "SCMP_ACT_ALLOW", "SCMP_ACT_LOG", "SCMP_ACT_NOTIFY",
    ]
    /// Argument comparison operators.
    public static let operators: Set<String> = [
        "SCMP_CMP_NE", "SCMP_CMP_LT", "SCMP_CMP_LE", "SCMP_CMP_EQ", "SCMP_CMP_GE", "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ]
}
