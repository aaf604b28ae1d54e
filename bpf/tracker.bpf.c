// SPDX-License-Identifier: GPL-2.0-only
/*
 * tracker.bpf.c - which mount namespace (container) each process is in, from the kernel.
 *
 * The kernel's seccomp and AppArmor audit records name a process by pid only. Reading
 * /proc/<pid>/ns/mnt after the fact loses every record of a process that has already exited
 * (a container whose entrypoint is `mkdir /tmp/x` under an SCMP_ACT_LOG rule: the record is
 * logged, the process is gone before anyone reads it). These BTF tracepoints record each
 * process's mount namespace as it is forked and as it execs (after setns, e.g. `runc exec`),
 * and the time it exits, into an LRU hash: entries outlive the process until newer ones push
 * them out, so late records are still attributed. Separate from the enforcer object: BTF
 * tracepoints load on kernels that refuse BPF LSM programs. The same object records the
 * syscalls of namespaces under behaviour modeling (bw_record_syscall).
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include "bulwark_abi.h"
#include "ns.h"

char LICENSE[] SEC("license") = "GPL";

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, BULWARK_TASKS_MAX);
	__type(key, u32);
	__type(value, struct bulwark_task);
} bw_tasks SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BULWARK_RECORDING_MAX);
	__type(key, u32);
	__type(value, struct bulwark_syscalls);
} bw_recording SEC(".maps");

static __always_inline u32 mnt_ns_inum(struct task_struct *t)
{
	struct nsproxy *n = t->nsproxy;
	if (!n || !n->mnt_ns)
		return 0;
	return n->mnt_ns->ns.inum;
}

static __always_inline void remember(struct task_struct *t, u32 parent)
{
	u32 tgid = t->tgid;
	struct bulwark_task v = {
		.mnt_ns = mnt_ns_inum(t),
		.parent = parent,
		.started_ns = bpf_ktime_get_boot_ns(),
		.exited_ns = 0,
	};
	if (v.mnt_ns)
		bpf_map_update_elem(&bw_tasks, &tgid, &v, BPF_ANY);
}

SEC("tp_btf/sched_process_fork")
int BPF_PROG(bw_track_fork, struct task_struct *parent, struct task_struct *child)
{
	/* a new thread belongs to a process already known; only new processes are recorded */
	if (child->pid != child->tgid)
		return 0;
	remember(child, parent->tgid);
	return 0;
}

SEC("tp_btf/sched_process_exec")
int BPF_PROG(bw_track_exec, struct task_struct *p)
{
	u32 tgid = p->tgid;
	struct bulwark_task *known = bpf_map_lookup_elem(&bw_tasks, &tgid);
	remember(p, known ? known->parent : 0);
	return 0;
}

SEC("tp_btf/sched_process_exit")
int BPF_PROG(bw_track_exit, struct task_struct *p)
{
	/* the process ends with its thread-group leader */
	if (p->pid != p->tgid)
		return 0;
	u32 tgid = p->tgid;
	struct bulwark_task *known = bpf_map_lookup_elem(&bw_tasks, &tgid);
	if (known)
		known->exited_ns = bpf_ktime_get_boot_ns();
	return 0;
}

/* Behaviour modeling: every syscall a recorded namespace's processes enter, in the kernel, so a
 * model misses none (audit records of SCMP_ACT_LOG are rate-limited in the kernel log). Attached
 * only while some namespace is being recorded; a hash lookup per syscall otherwise. */
SEC("tp_btf/sys_enter")
int BPF_PROG(bw_record_syscall, void *regs, long id)
{
	struct task_struct *t = bpf_get_current_task_btf();
	u32 ns = mnt_ns_inum(t);
	struct bulwark_syscalls *s = bpf_map_lookup_elem(&bw_recording, &ns);
	if (!s)
		return 0;
	/* inode numbers are reused: the entry belongs to the namespace instance that first used it
	 * (the container is added before its first instruction); a later namespace that got the
	 * same inode after it was freed is not recorded into it */
	struct nsproxy *nsp = t->nsproxy;
	if (!nsp || !nsp->mnt_ns)
		return 0;
	u64 inst = ns_instance(nsp->mnt_ns);
	u64 owner = __sync_val_compare_and_swap(&s->instance, 0, inst);
	if (owner && owner != inst)
		return 0;
	u64 n = (u64)id;
	if (n >= BULWARK_SYSCALL_WORDS * 64) {
		__sync_fetch_and_add(&s->beyond, 1);
		return 0;
	}
	__sync_fetch_and_or(&s->bits[n >> 6], 1ULL << (n & 63));
	return 0;
}
