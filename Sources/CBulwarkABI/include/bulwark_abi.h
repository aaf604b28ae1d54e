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
 * Verdicts are two permission masks (deny, audit): deterministic union of all matching rules.
 */
#ifndef BULWARK_ABI_H
#define BULWARK_ABI_H

typedef __UINT8_TYPE__ bulwark_u8;
typedef __UINT16_TYPE__ bulwark_u16;
typedef __UINT32_TYPE__ bulwark_u32;
typedef __UINT64_TYPE__ bulwark_u64;

#define BULWARK_ABI_VERSION 1

/* Profile modes (vArmor: ENFORCE 1, COMPLAIN 2). */
#define BULWARK_PROFILE_ENFORCE 0x1
#define BULWARK_PROFILE_COMPLAIN 0x2

/* Rule modes (vArmor: DENY 1, AUDIT 2). */
#define BULWARK_RULE_DENY 0x1
#define BULWARK_RULE_AUDIT 0x2

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

/* Map and program names the loader looks up (defined once, here). */
#define BULWARK_MAP_PROFILES "bulwark_profiles"
#define BULWARK_MAP_PATH_PREFIX "bulwark_path_pfx"
#define BULWARK_MAP_PATH_SUFFIX "bulwark_path_sfx"
#define BULWARK_MAP_COMPOUND "bulwark_compound"
#define BULWARK_MAP_SOCKETS "bulwark_sockets"
#define BULWARK_MAP_EGRESS4 "bulwark_egress4"
#define BULWARK_MAP_EGRESS6 "bulwark_egress6"
#define BULWARK_MAP_PORT_RANGES "bulwark_port_ranges"
#define BULWARK_MAP_MOUNTS "bulwark_mounts"

/* Verdict of a set of rules: permissions each rule mode applies to. */
struct bulwark_verdict {
	bulwark_u32 deny;  /* requested & deny != 0 => -EPERM */
	bulwark_u32 audit; /* requested & audit != 0 => event (DENIED if denied, else AUDIT) */
};
_Static_assert(sizeof(struct bulwark_verdict) == 8, "bulwark_verdict");

/* bulwark_profiles: profile id -> per-profile scalars. */
struct bulwark_profile {
	bulwark_u32 mode;            /* BULWARK_PROFILE_* */
	bulwark_u32 generation;      /* bumped on every update; events carry it */
	bulwark_u64 cap_deny;        /* 1 << CAP_* */
	bulwark_u64 cap_audit;
	bulwark_u32 ptrace_deny_strict;  /* BULWARK_PTRACE_* denied whoever the peer is */
	bulwark_u32 ptrace_deny_cross;   /* denied only across mount namespaces */
	bulwark_u32 ptrace_audit_strict;
	bulwark_u32 ptrace_audit_cross;
	bulwark_u32 pod_self_ranges_first; /* port ranges applied to the container's own pod IP */
	bulwark_u32 pod_self_ranges_count;
	bulwark_u32 mount_rules;     /* number of entries in bulwark_mounts for this profile */
	bulwark_u32 flags;           /* reserved, 0 */
};
_Static_assert(sizeof(struct bulwark_profile) == 56, "bulwark_profile");

/* bulwark_path_pfx / bulwark_path_sfx (BPF_MAP_TYPE_LPM_TRIE). prefixlen counts bits of
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
_Static_assert(sizeof(struct bulwark_path_value) == 136, "bulwark_path_value");

/* bulwark_compound: (profile, kind, index) -> verdict of compound rule `index`. */
struct bulwark_compound_key {
	bulwark_u32 profile;
	bulwark_u16 kind;
	bulwark_u16 index;
};
_Static_assert(sizeof(struct bulwark_compound_key) == 8, "bulwark_compound_key");

/* bulwark_sockets: (profile, family, type, protocol) -> verdict (bit 0 of deny/audit). */
struct bulwark_socket_key {
	bulwark_u32 profile;
	bulwark_u16 family;   /* AF_* or BULWARK_SOCKET_ANY */
	bulwark_u16 type;     /* SOCK_* or BULWARK_SOCKET_ANY */
	bulwark_u16 protocol; /* IPPROTO_* (0 resolved by the kernel first) or BULWARK_SOCKET_ANY */
	bulwark_u16 pad;
};
_Static_assert(sizeof(struct bulwark_socket_key) == 12, "bulwark_socket_key");

/* bulwark_egress4 / bulwark_egress6 (LPM tries). IPv4-mapped IPv6 is looked up in egress4. */
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

/* Egress trie value: a slice of bulwark_port_ranges, sorted by `first`, non-overlapping. */
struct bulwark_egress_value {
	bulwark_u32 ranges_first;
	bulwark_u32 ranges_count;
};
_Static_assert(sizeof(struct bulwark_egress_value) == 8, "bulwark_egress_value");

struct bulwark_port_range {
	bulwark_u16 first;
	bulwark_u16 last;
	bulwark_u8 mode; /* BULWARK_RULE_* */
	bulwark_u8 pad[3];
};
_Static_assert(sizeof(struct bulwark_port_range) == 8, "bulwark_port_range");

/* bulwark_mounts: (profile, index) -> rule, scanned 0..mount_rules-1. */
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

#endif /* BULWARK_ABI_H */
