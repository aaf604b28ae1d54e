import CSeccomp
import Glibc
import Synchronization

/// Native-architecture syscall numbers → names, resolved by libseccomp (as vArmor does) and cached.
public final class SyscallNames: Sendable {
    private let cache = Mutex<[Int: String]>([:])

    public init() {}

    public func name(_ number: Int) -> String {
        if let hit = cache.withLock({ $0[number] }) { return hit }
        var name = "\(number)"
        if let p = seccomp_syscall_resolve_num_arch(UInt32(SCMP_ARCH_NATIVE), Int32(truncatingIfNeeded: number)) {
            name = String(cString: p)
            free(p)
        }
        cache.withLock { $0[number] = name }
        return name
    }
}
