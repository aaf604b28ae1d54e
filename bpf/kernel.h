/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * kernel.h - the few kernel types the Bulwark programs read, declared for CO-RE.
 *
 * Only the fields used are declared; with preserve_access_index every access is relocated by
 * libbpf against the running kernel's BTF (/sys/kernel/btf/vmlinux), so the object built here
 * runs on any kernel with BTF and BPF LSM (tested on Debian 6.1 and compiled against 6.18's
 * field names). Written for Bulwark; no generated vmlinux.h is needed to build.
 */
#ifndef BULWARK_KERNEL_H
#define BULWARK_KERNEL_H

typedef __UINT8_TYPE__ __u8;
typedef __INT8_TYPE__ __s8;
typedef __UINT16_TYPE__ __u16;
typedef __INT16_TYPE__ __s16;
typedef __UINT32_TYPE__ __u32;
typedef __INT32_TYPE__ __s32;
typedef __UINT64_TYPE__ __u64;
typedef __INT64_TYPE__ __s64;
typedef __u8 u8;
typedef __u16 u16;
typedef __u32 u32;
typedef __u64 u64;
typedef __s64 s64;
typedef __u16 __be16;
typedef __u32 __be32;
typedef __u32 __wsum;
typedef _Bool bool;
#define true 1
#define false 0

/* Map and program types (uapi linux/bpf.h values, stable ABI). */
enum bpf_map_type {
	BPF_MAP_TYPE_HASH = 1,
	BPF_MAP_TYPE_ARRAY = 2,
	BPF_MAP_TYPE_PERCPU_ARRAY = 6,
	BPF_MAP_TYPE_LRU_HASH = 9,
	BPF_MAP_TYPE_LPM_TRIE = 11,
	BPF_MAP_TYPE_RINGBUF = 27,
};
enum {
	BPF_ANY = 0,
	BPF_NOEXIST = 1,
	BPF_F_NO_PREALLOC = 1,
};

#pragma clang attribute push(__attribute__((preserve_access_index)), apply_to = record)

struct qstr {
	union {
		struct {
			u32 hash;
			u32 len;
		};
		u64 hash_len;
	};
	const unsigned char *name;
};

struct dentry {
	struct dentry *d_parent;
	struct qstr d_name;
};

struct vfsmount {
	struct dentry *mnt_root;
};

struct mount {
	struct mount *mnt_parent;
	struct dentry *mnt_mountpoint;
	struct vfsmount mnt;
};

struct path {
	struct vfsmount *mnt;
	struct dentry *dentry;
};

struct fs_struct {
	struct path root;
};

struct ns_common {
	unsigned int inum;
};

/* 6.8+: a never-reused 64-bit id. */
struct ns_common___id {
	u64 ns_id;
};

struct mnt_namespace {
	struct ns_common ns;
};

/* Up to 6.x: a never-reused sequence number per mount namespace. */
struct mnt_namespace___seq {
	struct ns_common ns;
	u64 seq;
};

struct nsproxy {
	struct mnt_namespace *mnt_ns;
};

struct cred;

struct task_struct {
	int pid;
	int tgid;
	struct nsproxy *nsproxy;
	struct fs_struct *fs;
	const struct cred *real_cred;
	const struct cred *cred;
	char comm[16];
};

struct file {
	struct path f_path;
	unsigned int f_flags;
	unsigned int f_mode;
};

struct linux_binprm {
	struct file *file;
	const char *filename;
};

struct sock_common {
	unsigned short skc_family;
};

struct sock {
	struct sock_common __sk_common;
	u16 sk_protocol;
	u16 sk_type;
};

struct socket {
	short type;
	struct sock *sk;
};

struct msghdr {
	void *msg_name;
	int msg_namelen;
};

struct user_namespace;

#pragma clang attribute pop

/* uapi socket addresses (stable layout, not relocated). */
struct bw_sockaddr {
	unsigned short sa_family;
};
struct bw_sockaddr_in {
	unsigned short sin_family;
	__be16 sin_port;
	__be32 sin_addr;
};
struct bw_sockaddr_in6 {
	unsigned short sin6_family;
	__be16 sin6_port;
	__be32 sin6_flowinfo;
	u8 sin6_addr[16];
	u32 sin6_scope_id;
};

#define AF_UNSPEC 0
#define AF_INET 2
#define AF_INET6 10
#define SOCK_STREAM 1
#define SOCK_DGRAM 2

#define EPERM 1

#define FMODE_READ 0x1
#define FMODE_WRITE 0x2
#define FMODE_EXEC 0x20
#define O_CREAT 0100
#define O_TRUNC 01000
#define O_APPEND 02000
#define __FMODE_EXEC 0x20

#define PTRACE_MODE_READ 0x01
#define PTRACE_MODE_ATTACH 0x02

#define CAP_OPT_NOAUDIT 0x2

#define MS_REMOUNT 32
#define MS_BIND 4096
#define MS_MOVE 8192
#define MS_UNBINDABLE (1 << 17)
#define MS_PRIVATE (1 << 18)
#define MS_SLAVE (1 << 19)
#define MS_SHARED (1 << 20)

#endif /* BULWARK_KERNEL_H */
