/* SPDX-License-Identifier: (GPL-2.0-only OR Apache-2.0) */
/*
 * bulwark_abi.h - the one ABI shared by the BPF programs (bpf/) and Swift (CBulwarkABI).
 *
 * Includes nothing: fixed-width types come from the compiler's predefined macros, so the same
 * header compiles for -target bpf, x86_64 and aarch64 with identical layouts. Every struct has
 * explicit padding and a _Static_assert on its size; Tests/BulwarkProfilesTests checks the Swift
 * view (MemoryLayout + offsets) against the same numbers.
 *
 * Data model (docs/bpf.md):
 *   - A profile is stored once, keyed by a 32-bit profile id, and shared by every container
 *     bound to it (binding = one map entry mnt-ns -> profile id, defined by the enforcer).
 *   - Path rules (file, exec, mount source) live in two LPM tries: a prefix trie over the path
 *     and a suffix trie over the reversed path. An exact path is a prefix entry that includes
 *     the terminating NUL. Each trie entry carries the union of every rule whose key is a
 *     prefix of the entry's key (computed by the compiler), so one longest-prefix lookup
 *     answers for all rules. Patterns with both a prefix and a suffix ("compound", e.g.
 *     /proc/ ** /mem) get a bit in a per-profile bitmap; the prefix lookup and the suffix
 *     lookup each return a bitmap and their intersection names the compound rules that match.
 *   - Socket rules are hashed on (family, type, protocol) with 0xffff wildcards: 8 lookups.
 *   - Egress rules are CIDRs in one LPM trie per family; each entry points at a sorted,
 *     non-overlapping list of port ranges with their verdicts (binary search).
 *   - Capabilities and ptrace are per-profile masks (no last-writer-wins).
 *   - Mount rules are a short per-profile array scanned in order (mount is rare and slow).
 * Verdicts are three permission masks (deny, audit, allow): deterministic union of all
 * matching rules; `allow` matters only in allow-list profiles (BULWARK_ALLOW_*).
 */
#ifndef BULWARK_ABI_H
#define BULWARK_ABI_H

typedef __UINT8_TYPE__ bulwark_u8;
typedef __UINT16_TYPE__ bulwark_u16;
typedef __UINT32_TYPE__ bulwark_u32;
typedef __UINT64_TYPE__ bulwark_u64;

#define BULWARK_ABI_VERSION 3

/* Profile modes (vArmor: ENFORCE 1, COMPLAIN 2). */
#define BULWARK_PROFILE_ENFORCE 0x1
#define BULWARK_PROFILE_COMPLAIN 0x2

/* Rule modes (vArmor: DENY 1, AUDIT 2). ALLOW: an allow-list entry (DefenseInDepth). */
#define BULWARK_RULE_DENY 0x1
#define BULWARK_RULE_AUDIT 0x2
#define BULWARK_RULE_ALLOW 0x4

/* Allow-list profiles (DefenseInDepth from a behaviour model; vArmor has no BPF allow-list):
 * `bulwark_profile.allowlist` names the operation classes in which whatever no allow entry
 * matches is refused (and recorded as DENIED) — or, with BULWARK_ALLOW_OBSERVE, let through and
 * recorded as ALLOWED. Deny and audit rules still apply first and win over allow entries. */
#define BULWARK_ALLOW_FILE 0x1       /* file_open, link, rename, symlink */
#define BULWARK_ALLOW_EXEC 0x2       /* executions (file_open with FMODE_EXEC) */
#define BULWARK_ALLOW_NETWORK 0x4    /* socket creation, connect and sendmsg destinations */
#define BULWARK_ALLOW_CAPABILITY 0x8
#define BULWARK_ALLOW_PTRACE 0x10
#define BULWARK_ALLOW_MOUNT 0x20     /* mount, move_mount, umount */
#define BULWARK_ALLOW_ALL 0x3f
#define BULWARK_ALLOW_OBSERVE 0x80000000

/* Event actions. */
#define BULWARK_ACTION_DENIED 0x1
#define BULWARK_ACTION_AUDIT 0x2
#define BULWARK_ACTION_ALLOWED 0x4

/* File permissions (AppArmor numbering, as vArmor). */
#define BULWARK_PERM_EXEC 0x1
#define BULWARK_PERM_WRITE 0x2
#define BULWARK_PERM_READ 0x4
#define BULWARK_PERM_APPEND 0x8
#define BULWARK_PERM_CREATE 0x10
#define BULWARK_PERM_RENAME 0x80
#define BULWARK_PERM_LINK 0x40000

/* Ptrace permissions (vArmor numbering). */
#define BULWARK_PTRACE_TRACE 0x2
#define BULWARK_PTRACE_READ 0x4
#define BULWARK_PTRACE_TRACEBY 0x8
#define BULWARK_PTRACE_READBY 0x10

/* Mount pseudo-flag for umount (an unused MS_ bit, as vArmor/AppArmor). */
#define BULWARK_MOUNT_UMOUNT 0x200

/* Path tables: which namespace a key lives in (first byte of the key data after the profile). */
#define BULWARK_PATH_KIND_FILE 1       /* full path of a file operation */
#define BULWARK_PATH_KIND_FILE_NAME 2  /* basename of a file operation (single-'*' patterns) */
#define BULWARK_PATH_KIND_EXEC 3       /* full path of the executable */
#define BULWARK_PATH_KIND_EXEC_NAME 4  /* basename of the executable */

/* Longest path (or suffix) a trie key holds, NUL included for exact paths. */
#define BULWARK_PATH_KEY_MAX 247
/* Compound (prefix + suffix) rules per profile and path kind: 16 x 64 bits. */
#define BULWARK_COMPOUND_WORDS 16
#define BULWARK_COMPOUND_MAX (BULWARK_COMPOUND_WORDS * 64)
/* Rule capacity per type per profile that the compiler guarantees. */
#define BULWARK_RULES_PER_TYPE_MAX 4096
/* Mount rules are scanned; they carry inline patterns like vArmor's. */
#define BULWARK_MOUNT_RULES_MAX 256
#define BULWARK_MOUNT_PATTERN_MAX 64
#define BULWARK_FSTYPE_MAX 16

/* Socket tables: wildcard for family/type/protocol. */
#define BULWARK_SOCKET_ANY 0xffff

/* Mount pattern flags (vArmor numbering). */
#define BULWARK_PATTERN_PRECISE 0x1
#define BULWARK_PATTERN_GREEDY 0x2
#define BULWARK_PATTERN_PREFIX 0x4
#define BULWARK_PATTERN_SUFFIX 0x8
#define BULWARK_PATTERN_BASENAME 0x10

/* Map names (kernel object names are at most 15 characters). The loader pins each map at
 * <pin path>/maps/<name> and each program's link at <pin path>/links/<program name>. */
#define BULWARK_MAP_META "bw_meta"
#define BULWARK_MAP_BINDINGS "bw_bindings"
#define BULWARK_MAP_PROFILES "bw_profiles"
#define BULWARK_MAP_NAMES "bw_names"
#define BULWARK_MAP_PATH_PREFIX "bw_path_pfx"
#define BULWARK_MAP_PATH_SUFFIX "bw_path_sfx"
#define BULWARK_MAP_COMPOUND "bw_compound"
#define BULWARK_MAP_SOCKETS "bw_sockets"
#define BULWARK_MAP_EGRESS4 "bw_egress4"
#define BULWARK_MAP_EGRESS6 "bw_egress6"
#define BULWARK_MAP_PORT_RANGES "bw_ports"
#define BULWARK_MAP_MOUNTS "bw_mounts"
#define BULWARK_MAP_EVENTS "bw_events"
#define BULWARK_MAP_COUNTERS "bw_counters"

/* Capacities (max_entries). */
#define BULWARK_MAX_BINDINGS 16384
#define BULWARK_MAX_PROFILES 1024
#define BULWARK_MAX_PATH_ENTRIES 131072
#define BULWARK_MAX_COMPOUND 32768
#define BULWARK_MAX_SOCKET_ENTRIES 16384
#define BULWARK_MAX_EGRESS_ENTRIES 65536
#define BULWARK_MAX_PORT_RANGES 131072
#define BULWARK_MAX_MOUNT_ENTRIES 16384
#define BULWARK_EVENTS_BYTES 8388608 /* 8 MiB */
#define BULWARK_PROFILE_NAME_MAX 64

/* Verdict of a set of rules: permissions each rule mode applies to. */
struct bulwark_verdict {
	bulwark_u32 deny;  /* requested & deny != 0 => -EPERM */
	bulwark_u32 audit; /* requested & audit != 0 => event (DENIED if denied, else AUDIT) */
	bulwark_u32 allow; /* allow-list profiles: requested & ~allow != 0 => outside the allow-list */
	bulwark_u32 pad;
};
_Static_assert(sizeof(struct bulwark_verdict) == 16, "bulwark_verdict");

/* bw_profiles: profile id -> per-profile scalars. */
struct bulwark_profile {
	bulwark_u32 mode;            /* BULWARK_PROFILE_* */
	bulwark_u32 path_tables;     /* bit 2*kind: prefix rows exist; bit 2*kind+1: suffix rows */
	bulwark_u64 cap_deny;        /* 1 << CAP_* */
	bulwark_u64 cap_audit;
	bulwark_u32 ptrace_deny_strict;  /* BULWARK_PTRACE_* denied whoever the peer is */
	bulwark_u32 ptrace_deny_cross;   /* denied only across mount namespaces */
	bulwark_u32 ptrace_audit_strict;
	bulwark_u32 ptrace_audit_cross;
	bulwark_u32 pod_self_ranges_first; /* port ranges applied to the container's own pod IP */
	bulwark_u32 pod_self_ranges_count;
	bulwark_u32 mount_rules;     /* number of entries in bw_mounts for this profile */
	bulwark_u32 tables;          /* table id: the `profile` field of every table key of this
	                              * version of the profile. An update writes new tables under a
	                              * fresh id, then swaps this one value (atomic), then deletes
	                              * the old rows: bound containers never see half a profile. */
	bulwark_u32 allowlist;       /* BULWARK_ALLOW_*: classes refused unless an allow entry matches */
	bulwark_u32 ptrace_allow_any;   /* allow-list: BULWARK_PTRACE_* allowed whoever the peer is */
	bulwark_u32 ptrace_allow_inner; /* ... allowed only with a peer in the same mount namespace */
	bulwark_u32 pad;
	bulwark_u64 cap_allow;       /* allow-list: 1 << CAP_* allowed */
};
_Static_assert(sizeof(struct bulwark_profile) == 80, "bulwark_profile");

/* bw_path_pfx / bw_path_sfx (BPF_MAP_TYPE_LPM_TRIE). prefixlen counts bits of
 * profile + kind + path. Suffix keys hold the path reversed. */
struct bulwark_path_key {
	bulwark_u32 prefixlen;
	bulwark_u32 profile;   /* big-endian: compared bytewise by the trie */
	bulwark_u8 kind;       /* BULWARK_PATH_KIND_* */
	bulwark_u8 path[BULWARK_PATH_KEY_MAX];
};
_Static_assert(sizeof(struct bulwark_path_key) == 256, "bulwark_path_key");

struct bulwark_path_value {
	struct bulwark_verdict verdict;               /* merged verdict of plain rules */
	bulwark_u64 compound[BULWARK_COMPOUND_WORDS]; /* compound rules whose half matches */
};
_Static_assert(sizeof(struct bulwark_path_value) == 144, "bulwark_path_value");

/* bw_compound: (table id, kind, index) -> verdict of compound rule `index`. */
struct bulwark_compound_key {
	bulwark_u32 profile;
	bulwark_u16 kind;
	bulwark_u16 index;
};
_Static_assert(sizeof(struct bulwark_compound_key) == 8, "bulwark_compound_key");

/* bw_sockets: (table id, family, type, protocol) -> verdict (bit 0 of deny/audit). */
struct bulwark_socket_key {
	bulwark_u32 profile;
	bulwark_u16 family;   /* AF_* or BULWARK_SOCKET_ANY */
	bulwark_u16 type;     /* SOCK_* or BULWARK_SOCKET_ANY */
	bulwark_u16 protocol; /* IPPROTO_* (0 resolved by the kernel first) or BULWARK_SOCKET_ANY */
	bulwark_u16 pad;
};
_Static_assert(sizeof(struct bulwark_socket_key) == 12, "bulwark_socket_key");

/* bw_egress4 / bw_egress6 (LPM tries). IPv4-mapped IPv6 is looked up in egress4. */
struct bulwark_egress4_key {
	bulwark_u32 prefixlen; /* 32 + CIDR length */
	bulwark_u32 profile;   /* big-endian */
	bulwark_u8 addr[4];
};
_Static_assert(sizeof(struct bulwark_egress4_key) == 12, "bulwark_egress4_key");

struct bulwark_egress6_key {
	bulwark_u32 prefixlen;
	bulwark_u32 profile;
	bulwark_u8 addr[16];
};
_Static_assert(sizeof(struct bulwark_egress6_key) == 24, "bulwark_egress6_key");

/* Egress trie value: a slice of bw_ports, sorted by `first`, non-overlapping. */
struct bulwark_egress_value {
	bulwark_u32 ranges_first;
	bulwark_u32 ranges_count;
};
_Static_assert(sizeof(struct bulwark_egress_value) == 8, "bulwark_egress_value");

/* bw_ports: (table id, index) -> range. */
struct bulwark_port_range_key {
	bulwark_u32 profile; /* table id */
	bulwark_u32 index;
};
_Static_assert(sizeof(struct bulwark_port_range_key) == 8, "bulwark_port_range_key");

struct bulwark_port_range {
	bulwark_u16 first;
	bulwark_u16 last;
	bulwark_u8 mode; /* BULWARK_RULE_* */
	bulwark_u8 pad[3];
};
_Static_assert(sizeof(struct bulwark_port_range) == 8, "bulwark_port_range");

/* bw_mounts: (table id, index) -> rule, scanned 0..mount_rules-1. */
struct bulwark_mount_key {
	bulwark_u32 profile;
	bulwark_u32 index;
};
_Static_assert(sizeof(struct bulwark_mount_key) == 8, "bulwark_mount_key");

struct bulwark_mount_rule {
	bulwark_u32 mode;                /* BULWARK_RULE_* */
	bulwark_u32 flags;               /* matches if flags & requested */
	bulwark_u32 reverse_flags;       /* ... or ~requested & reverse_flags */
	bulwark_u32 pattern_flags;       /* BULWARK_PATTERN_* */
	bulwark_u8 fstype[BULWARK_FSTYPE_MAX]; /* "*" = any */
	bulwark_u8 prefix[BULWARK_MOUNT_PATTERN_MAX];
	bulwark_u8 suffix[BULWARK_MOUNT_PATTERN_MAX]; /* stored reversed */
};
_Static_assert(sizeof(struct bulwark_mount_rule) == 160, "bulwark_mount_rule");

/* ---- Bindings: mount namespace -> profile ------------------------------------------------- */

/* How a binding becomes active ("armed"). Until armed, nothing in the namespace is checked, so
 * the runtime's own setup (mounts, pivot_root) inside the new namespace is never hit by the
 * container's rules (vArmor #97). */
#define BULWARK_ARM_EXEC 1      /* at the first execve by task `pid` (the container's entrypoint) */
#define BULWARK_ARM_FIRST_USE 2 /* at the first checked operation in the namespace (manual bind) */

#define BULWARK_BINDING_POD_IP4 0x1
#define BULWARK_BINDING_POD_IP6 0x2

/* bw_bindings: mount-namespace inode (u32) -> binding. The kernel reuses a namespace inode as soon
 * as the namespace dies, so an armed binding records the namespace *instance* (mnt_namespace.seq,
 * or ns_common.ns_id on kernels without it): a later namespace with the same inode has another
 * instance id and is not confined by a stale entry. */
struct bulwark_binding {
	bulwark_u64 ns_instance; /* 0 until armed; written once by the kernel program */
	bulwark_u32 profile;     /* bw_profiles key */
	bulwark_u32 arm;         /* BULWARK_ARM_* */
	bulwark_u32 pid;         /* BULWARK_ARM_EXEC: host pid of the container's init */
	bulwark_u32 flags;       /* BULWARK_BINDING_* */
	bulwark_u8 pod_ip4[4];
	bulwark_u8 pod_ip6[16];
	bulwark_u8 pad[4];
};
_Static_assert(sizeof(struct bulwark_binding) == 48, "bulwark_binding");

/* bw_names: NUL-padded profile name -> profile id (lets the OCI hook bind without the agent). */
struct bulwark_name_key {
	char name[BULWARK_PROFILE_NAME_MAX];
};
_Static_assert(sizeof(struct bulwark_name_key) == 64, "bulwark_name_key");

/* bw_meta (array, one entry): what is loaded, for adoption after an agent restart. */
struct bulwark_meta {
	bulwark_u32 abi_version; /* BULWARK_ABI_VERSION of the loader that created the maps */
	bulwark_u32 next_tables; /* next free table id */
	bulwark_u64 object_id;   /* FNV-1a of the BPF object that was loaded */
	bulwark_u64 loaded_at;   /* unix seconds */
};
_Static_assert(sizeof(struct bulwark_meta) == 24, "bulwark_meta");

/* ---- Events: one ring buffer ---------------------------------------------------------------- */

#define BULWARK_EVENT_CAPABILITY 0x1
#define BULWARK_EVENT_FILE 0x2
#define BULWARK_EVENT_EXEC 0x4
#define BULWARK_EVENT_NETWORK 0x8
#define BULWARK_EVENT_PTRACE 0x10
#define BULWARK_EVENT_MOUNT 0x20

#define BULWARK_NET_CONNECT 0x1
#define BULWARK_NET_SOCKET 0x2
#define BULWARK_NET_SENDMSG 0x3

#define BULWARK_EVENT_PATH_MAX 4096

/* One record per checked operation that a rule audits, or (complain mode) that happened.
 * Fixed size; fields that do not apply to `type` are zero. */
struct bulwark_event {
	bulwark_u32 action;     /* BULWARK_ACTION_* */
	bulwark_u32 type;       /* BULWARK_EVENT_* */
	bulwark_u32 mnt_ns;     /* namespace of the confined task (ptrace traceby/readby: the tracee) */
	bulwark_u32 pid;        /* tgid, host pid namespace */
	bulwark_u64 ktime;      /* bpf_ktime_get_boot_ns */
	bulwark_u32 profile;    /* profile id */
	bulwark_u32 detail;     /* FILE/EXEC: permissions; CAPABILITY: cap; PTRACE: permission;
	                         * MOUNT: flags; NETWORK: BULWARK_NET_* */
	bulwark_u16 family;     /* NETWORK */
	bulwark_u16 sock_type;
	bulwark_u16 protocol;
	bulwark_u16 port;       /* host order */
	bulwark_u8 addr[16];    /* IPv4 in the first 4 bytes */
	bulwark_u32 peer;       /* PTRACE: the other task's tgid */
	bulwark_u32 external;   /* PTRACE: 1 when the tasks are in different mount namespaces */
	bulwark_u8 fstype[BULWARK_FSTYPE_MAX]; /* MOUNT */
	char comm[16];
	char path[BULWARK_EVENT_PATH_MAX]; /* FILE/EXEC: path; MOUNT: source */
};
_Static_assert(sizeof(struct bulwark_event) == 4192, "bulwark_event");

/* bw_counters (per-CPU array of u64). */
#define BULWARK_COUNTER_EVENTS 0   /* records submitted */
#define BULWARK_COUNTER_DROPS 1    /* records lost: ring buffer full */
#define BULWARK_COUNTER_DENIALS 2  /* operations refused */
#define BULWARK_COUNTER_STALE 3    /* lookups that met a binding of a dead namespace instance */
#define BULWARK_COUNTER_ARMED 4    /* bindings armed */
#define BULWARK_COUNTER_TRUNCATED 5 /* paths longer than the walk could rebuild */
#define BULWARK_COUNTER_OUTSIDE 6  /* operations outside an allow-list (refused or observed) */
#define BULWARK_COUNTERS 8

/* The process tracker (bpf/tracker.bpf.c): which mount namespace each process is in, kept after
 * it exits, so a seccomp or AppArmor record of a process that is already gone is still attributed
 * to its container. Key: the host tgid. LRU: the oldest entries go first when it is full. */
#define BULWARK_MAP_TASKS "bw_tasks"
#define BULWARK_TASKS_MAX 65536
struct bulwark_task {
	bulwark_u32 mnt_ns;      /* inode of the mount namespace (as /proc/<pid>/ns/mnt) */
	bulwark_u32 parent;      /* the parent's tgid at fork */
	bulwark_u64 started_ns;  /* CLOCK_BOOTTIME of the fork or exec that set mnt_ns */
	bulwark_u64 exited_ns;   /* CLOCK_BOOTTIME of the exit; 0 while it runs */
};
_Static_assert(sizeof(struct bulwark_task) == 24, "bulwark_task");

/* Syscall recording for behaviour models (bpf/tracker.bpf.c, `bw_record_syscall` on sys_enter):
 * mount namespace being recorded → the set of native syscall numbers its processes entered. The
 * program is attached only while a namespace is being recorded. */
#define BULWARK_MAP_RECORDING "bw_recording"
#define BULWARK_RECORDING_MAX 4096
#define BULWARK_SYSCALL_WORDS 8 /* syscall numbers 0..511 */
struct bulwark_syscalls {
	bulwark_u64 bits[BULWARK_SYSCALL_WORDS];
	bulwark_u64 beyond;   /* entries with a number the bitmap cannot hold (counted, reported as loss) */
	bulwark_u64 instance; /* the namespace instance recorded (set by its first syscall; 0 until then) */
	bulwark_u64 profile;  /* FNV-1a 64 of the profile name it is recorded for (set by who adds it) */
};
_Static_assert(sizeof(struct bulwark_syscalls) == 88, "bulwark_syscalls");

#endif /* BULWARK_ABI_H */
