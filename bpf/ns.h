/* SPDX-License-Identifier: GPL-2.0-only */
/*
 * ns.h - the identity of a mount namespace instance, shared by bulwark.bpf.c and tracker.bpf.c.
 * Include after kernel.h and bpf/bpf_core_read.h.
 */
#ifndef BULWARK_NS_H
#define BULWARK_NS_H

/* The never-reused identity of a mount namespace instance (inode numbers are reused as soon as a
 * namespace is freed). */
static __always_inline u64 ns_instance(struct mnt_namespace *ns)
{
	if (bpf_core_field_exists(struct mnt_namespace___seq, seq))
		return ((struct mnt_namespace___seq *)ns)->seq;
	if (bpf_core_field_exists(struct ns_common___id, ns_id))
		return ((struct ns_common___id *)&ns->ns)->ns_id;
	return (u64)(unsigned long)ns; /* weakest: address (documented in docs/bpf.md) */
}

#endif /* BULWARK_NS_H */
