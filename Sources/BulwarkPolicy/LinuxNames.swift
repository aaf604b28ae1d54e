import Foundation

/// Linux names and numbers used by vArmor's rule syntax (address families, socket types,
/// protocols, capabilities, mount flags). Pure tables; no headers needed.
public enum LinuxNames {
    /// `network.sockets[].domains` values → `AF_*` (vArmor's list, in its order).
    public static let addressFamilies: [(String, Int)] = [
        ("unix", 1), ("inet", 2), ("ax25", 3), ("ipx", 4), ("appletalk", 5), ("netrom", 6), ("bridge", 7),
        ("atmpvc", 8), ("x25", 9), ("inet6", 10), ("rose", 11), ("netbeui", 13), ("security", 14), ("key", 15),
        ("netlink", 16), ("packet", 17), ("ash", 18), ("econet", 19), ("atmsvc", 20), ("rds", 21), ("sna", 22),
        ("irda", 23), ("pppox", 24), ("wanpipe", 25), ("llc", 26), ("ib", 27), ("mpls", 28), ("can", 29),
        ("tipc", 30), ("bluetooth", 31), ("iucv", 32), ("rxrpc", 33), ("isdn", 34), ("phonet", 35),
        ("ieee802154", 36), ("caif", 37), ("alg", 38), ("nfc", 39), ("vsock", 40), ("kcm", 41), ("qipcrtr", 42),
        ("smc", 43), ("xdp", 44), ("mctp", 45),
    ]
    public static let addressFamilyMax = 46

    /// `network.sockets[].types` values → `SOCK_*`.
    public static let socketTypes: [(String, Int)] = [
        ("stream", 1), ("dgram", 2), ("raw", 3), ("rdm", 4), ("seqpacket", 5), ("dccp", 6), ("packet", 10),
    ]

    /// `network.sockets[].protocols` values → `IPPROTO_*` (icmp covers ICMP and ICMPv6).
    public static let protocols: [(String, [Int])] = [("icmp", [1, 58]), ("tcp", [6]), ("udp", [17])]

    /// Capabilities by number (`CAP_*`), lower-case names with underscores as AppArmor writes them.
    public static let capabilities: [String] = [
        "chown", "dac_override", "dac_read_search", "fowner", "fsetid", "kill", "setgid", "setuid", "setpcap",
        "linux_immutable", "net_bind_service", "net_broadcast", "net_admin", "net_raw", "ipc_lock", "ipc_owner",
        "sys_module", "sys_rawio", "sys_chroot", "sys_ptrace", "sys_pacct", "sys_admin", "sys_boot", "sys_nice",
        "sys_resource", "sys_time", "sys_tty_config", "mknod", "lease", "audit_write", "audit_control", "setfcap",
        "mac_override", "mac_admin", "syslog", "wake_alarm", "block_suspend", "audit_read", "perfmon", "bpf",
        "checkpoint_restore",
    ]

    public static func capability(_ name: String) -> Int? { capabilities.firstIndex(of: name) }

    // Mount flags (MS_*).
    public static let msRdonly: UInt32 = 1
    public static let msNosuid: UInt32 = 2
    public static let msNodev: UInt32 = 4
    public static let msNoexec: UInt32 = 8
    public static let msSynchronous: UInt32 = 16
    public static let msRemount: UInt32 = 32
    public static let msMandlock: UInt32 = 64
    public static let msDirsync: UInt32 = 128
    /// AppArmor's umount pseudo-flag (an unused MS_ bit), as vArmor.
    public static let umount: UInt32 = 0x200
    public static let msNoatime: UInt32 = 1024
    public static let msNodiratime: UInt32 = 2048
    public static let msBind: UInt32 = 4096
    public static let msMove: UInt32 = 8192
    public static let msRec: UInt32 = 16384
    public static let msSilent: UInt32 = 32768
    public static let msUnbindable: UInt32 = 1 << 17
    public static let msPrivate: UInt32 = 1 << 18
    public static let msSlave: UInt32 = 1 << 19
    public static let msShared: UInt32 = 1 << 20
    public static let msRelatime: UInt32 = 1 << 21
    public static let msIversion: UInt32 = 1 << 23
    public static let msStrictatime: UInt32 = 1 << 24
    public static let mountAll: UInt32 = 0xFFFF_FFFF

    /// `mounts[].flags` → (flags, reverseFlags). A rule matches a mount when
    /// `requested & flags != 0 || ~requested & reverseFlags != 0` (vArmor/AppArmor semantics:
    /// `rw` matches a mount *without* MS_RDONLY). Bulwark also accepts vArmor's upper-case
    /// shorthands `B`, `M`, `R`, which vArmor lower-cases and so never matches.
    public static let mountFlags: [String: (UInt32, UInt32)] = [
        "all": (mountAll, mountAll), "*": (mountAll, mountAll),
        "ro": (msRdonly, 0), "r": (msRdonly, 0), "read-only": (msRdonly, 0),
        "rw": (0, msRdonly), "w": (0, msRdonly),
        "suid": (0, msNosuid), "nosuid": (msNosuid, 0),
        "dev": (0, msNodev), "nodev": (msNodev, 0),
        "exec": (0, msNoexec), "noexec": (msNoexec, 0),
        "sync": (msSynchronous, 0), "async": (0, msSynchronous),
        "mand": (msMandlock, 0), "nomand": (0, msMandlock),
        "dirsync": (msDirsync, 0),
        "atime": (0, msNoatime), "noatime": (msNoatime, 0),
        "diratime": (0, msNodiratime), "nodiratime": (msNodiratime, 0),
        "silent": (msSilent, 0), "loud": (0, msSilent),
        "relatime": (msRelatime, 0), "norelatime": (0, msRelatime),
        "iversion": (msIversion, 0), "noiversion": (0, msIversion),
        "strictatime": (msStrictatime, 0), "nostrictatime": (0, msStrictatime),
        "remount": (msRemount, 0),
        "bind": (msBind, 0), "B": (msBind, 0),
        "move": (msMove, 0), "M": (msMove, 0),
        "rbind": (msBind | msRec, 0), "R": (msBind | msRec, 0),
        "make-unbindable": (msUnbindable, 0), "unbindable": (msUnbindable, 0),
        "make-private": (msPrivate, 0), "private": (msPrivate, 0),
        "make-slave": (msSlave, 0), "slave": (msSlave, 0),
        "make-shared": (msShared, 0), "shared": (msShared, 0),
        "make-runbindable": (msUnbindable | msRec, 0),
        "make-rprivate": (msPrivate | msRec, 0),
        "make-rslave": (msSlave | msRec, 0),
        "make-rshared": (msShared | msRec, 0),
        "umount": (umount, 0),
    ]

    /// Flags whose presence makes the kernel ignore the fstype (vArmor forces fstype "none").
    public static let mountCommandFlags: UInt32 =
        msRemount | msBind | msShared | msPrivate | msSlave | msUnbindable | msMove | umount
}
