#if canImport(Glibc)
    import Glibc
#endif

/// What the kernel's AppArmor can do now: the one check used by the delivery (may profiles be
/// loaded?) and the start path (is this profile loaded, so a spec may name it?).
public enum AppArmorFacts {
    /// AppArmor is active and its policy interface is mounted (profiles can be loaded).
    public static var enabled: Bool {
        // a sysfs attribute reports one page as its size whatever it holds: the bound is a page
        // (with 16 the read was refused as too large, and AppArmor was never seen as enabled)
        guard let flag = try? RegularFile.read("/sys/module/apparmor/parameters/enabled", maxBytes: 4096),
            flag.first == UInt8(ascii: "Y")
        else { return false }
        return access("/sys/kernel/security/apparmor/.replace", F_OK) == 0
    }

    /// The kernel enforces or complains with a profile of exactly this name.
    public static func isLoaded(_ name: String) -> Bool {
        guard enabled, let list = try? RegularFile.read("/sys/kernel/security/apparmor/profiles", maxBytes: 16 << 20)
        else { return false }
        let prefix = Array((name + " (").utf8)
        return list.split(separator: UInt8(ascii: "\n")).contains { $0.starts(with: prefix) }
    }
}
