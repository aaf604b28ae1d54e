extension SyscallNames {
    /// Names policies use (vArmor's own examples among them) for a syscall libseccomp spells
    /// differently: compiled as libseccomp's name, with a warning.
    static let aliases: [String: String] = ["sysctl": "_sysctl"]
}
