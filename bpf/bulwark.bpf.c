// SPDX-License-Identifier: GPL-2.0-only
/*
 * bulwark.bpf.c - Bulwark's BPF LSM enforcer.
 *
 * One object, one program per LSM hook. Every program starts the same way:
 *
 *   current task's mount namespace --bw_bindings--> profile id --bw_profiles--> profile
 *
 * and then asks the tables of that profile (layout and rationale: bulwark_abi.h,
 * docs/bpf.md) for a verdict: a deny mask and an audit mask over the requested permissions.
 * Lookups are hashed or longest-prefix (LPM trie) lookups, so the cost of a check does not
 * grow with the number of rules; only mount rules are scanned (bounded, mount is rare).
 *
 * Semantics are vArmor's (varmor.md §3.6): a profile in complain mode allows everything and
 * records every operation (ALLOWED); in enforce mode a rule with the audit bit records the
 * operation (DENIED if it is also denied, else AUDIT) and a rule with the deny bit refuses it
 * with -EPERM. Bulwark's fixes (§9.3): exact paths are exact; socket protocol 0 is resolved
 * before matching; IPv4-mapped IPv6 destinations are IPv4; unconnected UDP (sendmsg with an
 * address) is checked like connect; capability rules apply to fully privileged tasks too;
 * paths are rebuilt without a component limit (d_path, or a bpf_loop walk); verdicts are the
 * union of all matching rules.
 *
 * Allow-list profiles (DefenseInDepth, which vArmor's BPF enforcer lacks): in the classes the
 * profile names (`allowlist`, BULWARK_ALLOW_*), a requested permission that no allow entry grants
 * is refused and recorded (DENIED), or in observation mode let through and recorded (ALLOWED).
 * The allow entries live in the same tables as deny rules (a third mask of the same verdict), so
 * matching stays one lookup per table; deny and audit rules apply first.
 */
#include "kernel.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_tracing.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include "bulwark_abi.h"
#include "ns.h"

char LICENSE[] SEC("license") = "GPL";

/* Mount namespace inode of the host (pid 1), set by the loader before load. */
const volatile u32 host_mnt_ns = 0;

/* ---- maps ------------------------------------------------------------------------------ */

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct bulwark_meta);
} bw_meta SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BULWARK_MAX_BINDINGS);
	__type(key, u32);
	__type(value, struct bulwark_binding);
} bw_bindings SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BULWARK_MAX_PROFILES);
	__type(key, u32);
	__type(value, struct bulwark_profile);
} bw_profiles SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BULWARK_MAX_PROFILES);
	__type(key, struct bulwark_name_key);
	__type(value, u32);
} bw_names SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BULWARK_MAX_PATH_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bulwark_path_key);
	__type(value, struct bulwark_path_value);
} bw_path_pfx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BULWARK_MAX_PATH_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bulwark_path_key);
	__type(value, struct bulwark_path_value);
} bw_path_sfx SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BULWARK_MAX_COMPOUND);
	__type(key, struct bulwark_compound_key);
	__type(value, struct bulwark_verdict);
} bw_compound SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BULWARK_MAX_SOCKET_ENTRIES);
	__type(key, struct bulwark_socket_key);
	__type(value, struct bulwark_verdict);
} bw_sockets SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BULWARK_MAX_EGRESS_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bulwark_egress4_key);
	__type(value, struct bulwark_egress_value);
} bw_egress4 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LPM_TRIE);
	__uint(max_entries, BULWARK_MAX_EGRESS_ENTRIES);
	__uint(map_flags, BPF_F_NO_PREALLOC);
	__type(key, struct bulwark_egress6_key);
	__type(value, struct bulwark_egress_value);
} bw_egress6 SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BULWARK_MAX_PORT_RANGES);
	__type(key, struct bulwark_port_range_key);
	__type(value, struct bulwark_port_range);
} bw_ports SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, BULWARK_MAX_MOUNT_ENTRIES);
	__type(key, struct bulwark_mount_key);
	__type(value, struct bulwark_mount_rule);
} bw_mounts SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, BULWARK_EVENTS_BYTES);
} bw_events SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, BULWARK_COUNTERS);
	__type(key, u32);
	__type(value, u64);
} bw_counters SEC(".maps");

/* Per-CPU scratch space (programs run with migration disabled). */
#define BUF_SIZE 8192
#define BUF_MASK (BUF_SIZE - 1)
#define PATH_SPACE 4096
struct scratch {
	u8 buf[BUF_SIZE + 8]; /* path: d_path writes at 0, the walk right-aligned below 4096;
			       * +8: 8-byte loads at any masked index stay inside */
	struct bulwark_path_key key;
	u8 key_pad[8]; /* the last 8-byte store of a reversed key may run one byte past it */
	u64 pfx_compound[BULWARK_COMPOUND_WORDS];
	u64 sfx_compound[BULWARK_COMPOUND_WORDS];
	struct bulwark_verdict path_out; /* bw_path_verdict's answer */
};
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, u32);
	__type(value, struct scratch);
} bw_scratch SEC(".maps");

/* ---- helpers ---------------------------------------------------------------------------- */

/* Keeps the compiler from folding a bounds check away from the use the verifier must see. */
#define opaque(x) asm volatile("" : "+r"(x))
/* An index into a buffer, masked in a way the compiler cannot drop. */
#define masked(x, m)               \
	({                         \
		u32 _v = (u32)(x); \
		opaque(_v);        \
		_v & (m);          \
	})

static __always_inline void count(u32 which)
{
	u64 *c = bpf_map_lookup_elem(&bw_counters, &which);
	if (c)
		*c += 1;
}

static __always_inline struct scratch *scratch(void)
{
	u32 zero = 0;
	return bpf_map_lookup_elem(&bw_scratch, &zero);
}

/* Hot path: direct (CO-RE relocated, fault-tolerant) loads through BTF pointers instead of
 * bpf_probe_read_kernel calls. */
static __always_inline struct mnt_namespace *task_mnt_ns(struct task_struct *t)
{
	struct nsproxy *n = t->nsproxy;
	return n ? n->mnt_ns : 0;
}


/* Who is confined, and by what. */
struct subject {
	u32 ns;
	u32 profile_id;
	struct bulwark_profile *profile;
	struct bulwark_binding *binding;
};

/* Looks up the binding of namespace `ns_ptr`; arms it when `arm_exec` is this task's entrypoint
 * exec (BULWARK_ARM_EXEC) or on first use (BULWARK_ARM_FIRST_USE). Returns 0 when confined. */
static __always_inline int resolve(struct mnt_namespace *ns_ptr, bool arm_exec, struct subject *s)
{
	if (!ns_ptr)
		return -1;
	u32 ns = ns_ptr->ns.inum;
	struct bulwark_binding *b = bpf_map_lookup_elem(&bw_bindings, &ns);
	if (!b)
		return -1;
	u64 inst = ns_instance(ns_ptr);
	u64 armed = b->ns_instance;
	if (armed == 0) {
		bool arm = false;
		if (b->arm == BULWARK_ARM_FIRST_USE)
			arm = true;
		else if (b->arm == BULWARK_ARM_EXEC && arm_exec &&
			 (u32)(bpf_get_current_pid_tgid() >> 32) == b->pid)
			arm = true;
		if (!arm)
			return -1;
		b->ns_instance = inst; /* one 8-byte store: armed atomically */
		count(BULWARK_COUNTER_ARMED);
	} else if (armed != inst) {
		count(BULWARK_COUNTER_STALE);
		return -1;
	}
	u32 id = b->profile;
	struct bulwark_profile *p = bpf_map_lookup_elem(&bw_profiles, &id);
	if (!p)
		return -1;
	s->ns = ns;
	s->profile_id = id;
	s->profile = p;
	s->binding = b;
	return 0;
}

static __always_inline int current_subject(bool arm_exec, struct subject *s)
{
	struct task_struct *t = bpf_get_current_task_btf();
	return resolve(task_mnt_ns(t), arm_exec, s);
}

static __always_inline struct bulwark_event *event_begin(u32 action, u32 type, struct subject *s, u32 detail)
{
	struct bulwark_event *e = bpf_ringbuf_reserve(&bw_events, sizeof(*e), 0);
	if (!e) {
		count(BULWARK_COUNTER_DROPS);
		return 0;
	}
	e->action = action;
	e->type = type;
	e->mnt_ns = s->ns;
	e->pid = bpf_get_current_pid_tgid() >> 32;
	e->ktime = bpf_ktime_get_boot_ns();
	e->profile = s->profile_id;
	e->detail = detail;
	e->family = 0;
	e->sock_type = 0;
	e->protocol = 0;
	e->port = 0;
	__builtin_memset(e->addr, 0, sizeof(e->addr));
	e->peer = 0;
	e->external = 0;
	__builtin_memset(e->fstype, 0, sizeof(e->fstype));
	bpf_get_current_comm(e->comm, sizeof(e->comm));
	e->path[0] = 0;
	return e;
}

static __always_inline void event_submit(struct bulwark_event *e)
{
	bpf_ringbuf_submit(e, 0);
	count(BULWARK_COUNTER_EVENTS);
}

/* What happens to an operation of class `cls` (BULWARK_ALLOW_*) that requests `requested`, given
 * the verdict of the rules. Returns the action to record (0 = none) and sets *deny. */
static __always_inline u32 decide(struct subject *s, struct bulwark_verdict v, u32 requested, u32 cls, bool *deny)
{
	*deny = false;
	struct bulwark_profile *p = s->profile;
	if (p->mode == BULWARK_PROFILE_COMPLAIN)
		return BULWARK_ACTION_ALLOWED;
	if (p->mode != BULWARK_PROFILE_ENFORCE)
		return 0;
	bool outside = (p->allowlist & cls) && (requested & ~v.allow) != 0;
	bool observe = (p->allowlist & BULWARK_ALLOW_OBSERVE) != 0;
	if (outside)
		count(BULWARK_COUNTER_OUTSIDE);
	*deny = (v.deny & requested) != 0 || (outside && !observe);
	if (*deny)
		count(BULWARK_COUNTER_DENIALS);
	if (v.audit & requested)
		return *deny ? BULWARK_ACTION_DENIED : BULWARK_ACTION_AUDIT;
	if (outside) /* what an allow-list refuses (or would) is always recorded */
		return *deny ? BULWARK_ACTION_DENIED : BULWARK_ACTION_ALLOWED;
	return 0;
}

/* ---- paths ------------------------------------------------------------------------------ */

/* A path in the scratch buffer: bytes [start, start+len), NUL at start+len. */
struct span {
	u32 start;
	u32 len;
};

struct walk_ctx {
	struct dentry *dentry;
	struct vfsmount *vfsmnt;
	struct mount *mnt;
	struct dentry *root_dentry;
	struct vfsmount *root_mnt;
	u32 pos;
	u32 done;
};

static long walk_step(u32 i, struct walk_ctx *c)
{
	struct scratch *s = scratch();
	if (!s)
		return 1;
	struct dentry *d = c->dentry;
	struct vfsmount *vm = c->vfsmnt;
	struct mount *m = c->mnt;
	if (d == c->root_dentry && vm == c->root_mnt) {
		c->done = 1;
		return 1;
	}
	struct dentry *mnt_root = BPF_CORE_READ(vm, mnt_root);
	if (d == mnt_root) {
		struct mount *parent = BPF_CORE_READ(m, mnt_parent);
		if (!parent || parent == m) {
			c->done = 1; /* the namespace's root mount */
			return 1;
		}
		c->dentry = BPF_CORE_READ(m, mnt_mountpoint);
		c->mnt = parent;
		c->vfsmnt = (struct vfsmount *)((char *)parent + bpf_core_field_offset(struct mount, mnt));
		return 0;
	}
	struct dentry *up = BPF_CORE_READ(d, d_parent);
	if (!up || up == d) {
		c->done = 1;
		return 1;
	}
	u32 len = BPF_CORE_READ(d, d_name.len);
	const unsigned char *name = BPF_CORE_READ(d, d_name.name);
	if (len > 255 || c->pos < len + 2) {
		count(BULWARK_COUNTER_TRUNCATED);
		return 1; /* not done: the caller sees a truncated path */
	}
	c->pos -= len;
	bpf_probe_read_kernel(&s->buf[c->pos & (PATH_SPACE - 1)], len & 255, name);
	c->pos -= 1;
	s->buf[c->pos & (PATH_SPACE - 1)] = '/';
	c->dentry = up;
	return 0;
}

/* Rebuilds the path of (dentry, vfsmnt) as seen from the current task's root (the container's
 * root after pivot_root), right-aligned in buf[0, 4096). A global function: verified once.
 * Returns start << 32 | len, or -1 if it did not fit. */
__attribute__((noinline)) s64 bw_walk(u64 dentry_addr, u64 vfsmnt_addr)
{
	struct scratch *s = scratch();
	if (!s)
		return -1;
	struct vfsmount *vfsmnt = (struct vfsmount *)vfsmnt_addr;
	struct task_struct *t = bpf_get_current_task_btf();
	struct walk_ctx c = {};
	c.dentry = (struct dentry *)dentry_addr;
	c.vfsmnt = vfsmnt;
	c.mnt = (struct mount *)((char *)vfsmnt - bpf_core_field_offset(struct mount, mnt));
	c.root_dentry = BPF_CORE_READ(t, fs, root.dentry);
	c.root_mnt = BPF_CORE_READ(t, fs, root.mnt);
	c.pos = PATH_SPACE - 1;
	s->buf[PATH_SPACE - 1] = 0;
	bpf_loop(PATH_SPACE / 2, (void *)walk_step, &c, 0);
	if (!c.done)
		return -1;
	if (c.pos == PATH_SPACE - 1) {
		c.pos -= 1;
		s->buf[PATH_SPACE - 2] = '/';
	}
	return ((s64)c.pos << 32) | (PATH_SPACE - 1 - c.pos);
}

static __always_inline int walk_path(struct dentry *dentry, struct vfsmount *vfsmnt, struct span *out)
{
	/* global functions take scalars: copy the pointers' values */
	u64 d = 0, m = 0;
	bpf_probe_read_kernel(&d, sizeof(d), &dentry);
	bpf_probe_read_kernel(&m, sizeof(m), &vfsmnt);
	s64 r = bw_walk(d, m);
	if (r < 0)
		return -1;
	out->start = (u32)(r >> 32);
	out->len = (u32)r;
	return 0;
}

static __always_inline int dpath(struct path *p, struct span *out)
{
	struct scratch *s = scratch();
	if (!s)
		return -1;
	long n = bpf_d_path(p, (char *)s->buf, PATH_SPACE);
	if (n <= 0 || n > PATH_SPACE)
		return -1;
	out->start = 0;
	out->len = n - 1;
	return 0;
}

struct compound_ctx {
	u32 tables;
	u16 kind;
	struct bulwark_verdict v;
};

static long compound_word(u32 w, struct compound_ctx *c)
{
	struct scratch *s = scratch();
	if (!s || w >= BULWARK_COMPOUND_WORDS)
		return 1;
	u64 bits = s->pfx_compound[w] & s->sfx_compound[w];
	if (!bits)
		return 0;
	/* bit by bit: one test per bit keeps the verifier's states few (a lowest-set-bit
	 * search multiplied them past its limit once verdicts grew an allow mask) */
	for (int i = 0; i < 64; i++) {
		if (!((bits >> i) & 1))
			continue;
		struct bulwark_compound_key k = { .profile = c->tables, .kind = c->kind, .index = (u16)(w * 64 + i) };
		struct bulwark_verdict *v = bpf_map_lookup_elem(&bw_compound, &k);
		if (v) {
			c->v.deny |= v->deny;
			c->v.audit |= v->audit;
			c->v.allow |= v->allow;
		}
	}
	return 0;
}

struct name_ctx {
	u32 floor;
	u32 pos;
};

static long name_step(u32 i, struct name_ctx *c)
{
	struct scratch *s = scratch();
	if (!s || c->pos <= c->floor || s->buf[(c->pos - 1) & BUF_MASK] == '/')
		return 1;
	c->pos--;
	return 0;
}

/* Start of the last path component of [start, end) (names are at most 255 bytes). */
static __always_inline u32 basename_start(u32 start, u32 end)
{
	struct name_ctx c = { .floor = start, .pos = end };
	bpf_loop(256, (void *)name_step, &c, 0);
	return c.pos;
}

/* Verdict of the path rules of `kind` for the subject text [start, start+len): one prefix
 * lookup (text + NUL, so exact keys match only the whole text), one suffix lookup (reversed
 * text) and the compound rules named by both. `which`: bit 0 prefix rows exist, bit 1 suffix. */
static __always_inline void path_lookup(u32 tables, u8 kind, u32 start, u32 len, u32 which,
					struct bulwark_verdict *acc)
{
	struct scratch *s = scratch();
	if (!s)
		return;
	struct bulwark_path_key *k = &s->key;
	k->profile = bpf_htonl(tables);
	k->kind = kind;
	bool any_pfx = false;
	if (which & 1) {
		u32 n = len + 1;
		if (n > BULWARK_PATH_KEY_MAX)
			n = BULWARK_PATH_KEY_MAX;
		opaque(n);
		if (n > BULWARK_PATH_KEY_MAX)
			return;
		bpf_probe_read_kernel(k->path, n, &s->buf[start & (PATH_SPACE - 1)]);
		k->prefixlen = 40 + 8 * n;
		struct bulwark_path_value *pv = bpf_map_lookup_elem(&bw_path_pfx, k);
		if (pv) {
			acc->deny |= pv->verdict.deny;
			acc->audit |= pv->verdict.audit;
			acc->allow |= pv->verdict.allow;
			for (int i = 0; i < BULWARK_COMPOUND_WORDS; i++) {
				s->pfx_compound[i] = pv->compound[i];
				if (pv->compound[i])
					any_pfx = true;
			}
		}
	}
	if (!(which & 2))
		return;
	/* the reversed text, 8 bytes at a time (bytes past the text are ignored: prefixlen) */
	u32 n = len > BULWARK_PATH_KEY_MAX ? BULWARK_PATH_KEY_MAX : len;
	u32 end = start + len;
	for (int w = 0; w < (BULWARK_PATH_KEY_MAX + 7) / 8; w++) {
		if (w * 8 >= n)
			break;
		u64 v = *(u64 *)&s->buf[masked(end - 8 - w * 8, BUF_MASK)];
		*(u64 *)&k->path[w * 8] = __builtin_bswap64(v);
	}
	k->prefixlen = 40 + 8 * n;
	struct bulwark_path_value *sv = bpf_map_lookup_elem(&bw_path_sfx, k);
	if (!sv)
		return;
	acc->deny |= sv->verdict.deny;
	acc->audit |= sv->verdict.audit;
	acc->allow |= sv->verdict.allow;
	if (!any_pfx)
		return;
	bool any = false;
	for (int i = 0; i < BULWARK_COMPOUND_WORDS; i++) {
		s->sfx_compound[i] = sv->compound[i];
		if (sv->compound[i] & s->pfx_compound[i])
			any = true;
	}
	if (!any)
		return;
	struct compound_ctx c = { .tables = tables, .kind = kind };
	bpf_loop(BULWARK_COMPOUND_WORDS, (void *)compound_word, &c, 0);
	acc->deny |= c.v.deny;
	acc->audit |= c.v.audit;
	acc->allow |= c.v.allow;
}

/* Verdict of the full-path kind and the basename kind for the path [start, start+len), looking
 * only at the tables the profile has (`path_tables`). A global function (verified once); the
 * verdict goes to the scratch space's `path_out` (returns 0, or -1 when there is none). */
__attribute__((noinline)) int bw_path_verdict(u32 tables, u32 exec, u32 start, u32 len, u32 path_tables)
{
	struct bulwark_verdict v = {};
	struct scratch *s = scratch();
	if (!s)
		return -1;
	s->path_out = v;
	if (start >= PATH_SPACE || len >= PATH_SPACE)
		return 0;
	u32 kind = exec ? BULWARK_PATH_KIND_EXEC : BULWARK_PATH_KIND_FILE;
	u32 name_kind = exec ? BULWARK_PATH_KIND_EXEC_NAME : BULWARK_PATH_KIND_FILE_NAME;
	u32 which = (path_tables >> (2 * kind)) & 3;
	if (which)
		path_lookup(tables, kind, start, len, which, &v);
	which = (path_tables >> (2 * name_kind)) & 3;
	if (!which) {
		s->path_out = v;
		return 0;
	}
	/* basename: after the last '/' (names are at most 255 bytes) */
	u32 end = start + len;
	u32 pos = end;
	for (int i = 0; i < 256; i++) {
		if (pos <= start || s->buf[masked(pos - 1, BUF_MASK)] == '/')
			break;
		pos--;
	}
	path_lookup(tables, name_kind, pos, end - pos, which, &v);
	s->path_out = v;
	return 0;
}

static __always_inline bool has_path_tables(struct bulwark_profile *p, bool exec)
{
	u32 kinds = exec ? (0xf << (2 * BULWARK_PATH_KIND_EXEC)) : (0xf << (2 * BULWARK_PATH_KIND_FILE));
	return (p->path_tables & kinds) != 0;
}

static __always_inline struct bulwark_verdict path_verdict(struct bulwark_profile *p, bool exec, struct span *sp)
{
	struct bulwark_verdict v = {};
	if (bw_path_verdict(p->tables, exec, sp->start, sp->len, p->path_tables))
		return v;
	struct scratch *s = scratch();
	if (s)
		v = s->path_out;
	return v;
}

static __always_inline void event_path(struct bulwark_event *e, struct span *sp)
{
	struct scratch *s = scratch();
	if (!s)
		return;
	u32 n = sp->len + 1;
	if (n > BULWARK_EVENT_PATH_MAX)
		n = BULWARK_EVENT_PATH_MAX;
	bpf_probe_read_kernel(e->path, n & (BULWARK_EVENT_PATH_MAX - 1), &s->buf[sp->start & (PATH_SPACE - 1)]);
	e->path[BULWARK_EVENT_PATH_MAX - 1] = 0;
}

/* Checks one path operation; returns 0 or -EPERM. */
static __always_inline int check_path(struct subject *s, struct span *sp, bool exec, u32 requested, u32 type)
{
	struct bulwark_verdict v = path_verdict(s->profile, exec, sp);
	bool deny;
	u32 action = decide(s, v, requested, exec ? BULWARK_ALLOW_EXEC : BULWARK_ALLOW_FILE, &deny);
	if (action) {
		struct bulwark_event *e = event_begin(action, type, s, requested);
		if (e) {
			event_path(e, sp);
			event_submit(e);
		}
	}
	return deny ? -EPERM : 0;
}

/* ---- file and exec ---------------------------------------------------------------------- */

SEC("lsm/file_open")
int BPF_PROG(bw_file_open, struct file *file, int ret)
{
	if (ret)
		return ret;
	unsigned int flags = file->f_flags;
	unsigned int fmode = file->f_mode;
	bool exec = (flags & __FMODE_EXEC) || (fmode & FMODE_EXEC);
	struct subject s;
	if (current_subject(exec, &s))
		return 0;
	if (s.profile->mode == BULWARK_PROFILE_ENFORCE && !has_path_tables(s.profile, exec) &&
	    !(s.profile->allowlist & (exec ? BULWARK_ALLOW_EXEC : BULWARK_ALLOW_FILE)))
		return 0; /* nothing to match, nothing to record */
	struct span sp;
	if (dpath(&file->f_path, &sp)) {
		count(BULWARK_COUNTER_TRUNCATED);
		return 0;
	}
	if (exec)
		return check_path(&s, &sp, true, BULWARK_PERM_EXEC, BULWARK_EVENT_EXEC);
	u32 req = 0;
	if (fmode & FMODE_READ)
		req |= BULWARK_PERM_READ;
	if (fmode & FMODE_WRITE)
		req |= (flags & O_APPEND) ? BULWARK_PERM_APPEND : BULWARK_PERM_WRITE;
	if (flags & O_TRUNC)
		req |= BULWARK_PERM_WRITE;
	if (flags & O_CREAT)
		req |= BULWARK_PERM_CREATE;
	if (!req)
		return 0;
	return check_path(&s, &sp, false, req, BULWARK_EVENT_FILE);
}

SEC("lsm/path_symlink")
int BPF_PROG(bw_path_symlink, const struct path *dir, struct dentry *dentry, const char *old_name, int ret)
{
	if (ret)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	struct span sp;
	if (walk_path(dentry, BPF_CORE_READ(dir, mnt), &sp))
		return 0;
	return check_path(&s, &sp, false, BULWARK_PERM_LINK | BULWARK_PERM_WRITE, BULWARK_EVENT_FILE);
}

SEC("lsm/path_link")
int BPF_PROG(bw_path_link, struct dentry *old_dentry, const struct path *new_dir, struct dentry *new_dentry,
	     int ret)
{
	if (ret)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	struct vfsmount *mnt = BPF_CORE_READ(new_dir, mnt);
	struct span sp;
	if (walk_path(old_dentry, mnt, &sp) == 0 &&
	    check_path(&s, &sp, false, BULWARK_PERM_LINK | BULWARK_PERM_READ, BULWARK_EVENT_FILE))
		return -EPERM;
	if (walk_path(new_dentry, mnt, &sp))
		return 0;
	return check_path(&s, &sp, false, BULWARK_PERM_LINK | BULWARK_PERM_WRITE, BULWARK_EVENT_FILE);
}

SEC("lsm/path_rename")
int BPF_PROG(bw_path_rename, const struct path *old_dir, struct dentry *old_dentry, const struct path *new_dir,
	     struct dentry *new_dentry, unsigned int flags, int ret)
{
	if (ret)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	struct span sp;
	if (walk_path(old_dentry, BPF_CORE_READ(old_dir, mnt), &sp) == 0 &&
	    check_path(&s, &sp, false, BULWARK_PERM_RENAME | BULWARK_PERM_READ, BULWARK_EVENT_FILE))
		return -EPERM;
	if (walk_path(new_dentry, BPF_CORE_READ(new_dir, mnt), &sp))
		return 0;
	return check_path(&s, &sp, false, BULWARK_PERM_RENAME | BULWARK_PERM_WRITE, BULWARK_EVENT_FILE);
}

/* ---- network ---------------------------------------------------------------------------- */

SEC("lsm/socket_post_create")
int BPF_PROG(bw_socket_create, struct socket *sock, int family, int type, int protocol, int kern, int ret)
{
	if (ret || kern)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	/* The protocol the kernel chose (socket(AF_INET, SOCK_STREAM, 0) is TCP). */
	u16 proto = BPF_CORE_READ(sock, sk, sk_protocol);
	struct bulwark_verdict v = {};
	u16 fams[2] = { (u16)family, BULWARK_SOCKET_ANY };
	u16 types[2] = { (u16)type, BULWARK_SOCKET_ANY };
	u16 protos[2] = { proto, BULWARK_SOCKET_ANY };
	for (int i = 0; i < 8; i++) {
		struct bulwark_socket_key k = {
			.profile = s.profile->tables,
			.family = fams[(i >> 2) & 1],
			.type = types[(i >> 1) & 1],
			.protocol = protos[i & 1],
		};
		struct bulwark_verdict *r = bpf_map_lookup_elem(&bw_sockets, &k);
		if (r) {
			v.deny |= r->deny;
			v.audit |= r->audit;
			v.allow |= r->allow;
		}
	}
	bool deny;
	u32 action = decide(&s, v, 1, BULWARK_ALLOW_NETWORK, &deny);
	if (action) {
		struct bulwark_event *e = event_begin(action, BULWARK_EVENT_NETWORK, &s, BULWARK_NET_SOCKET);
		if (e) {
			e->family = family;
			e->sock_type = type;
			e->protocol = proto;
			event_submit(e);
		}
	}
	return deny ? -EPERM : 0;
}

/* Mode of the port range containing `port` among `count` ranges at `first` (binary search). */
static __always_inline u8 port_mode(u32 tables, u32 first, u32 count, u16 port)
{
	u32 lo = 0, hi = count;
	for (int i = 0; i < 18 && lo < hi; i++) {
		u32 mid = lo + (hi - lo) / 2;
		struct bulwark_port_range_key k = { .profile = tables, .index = first + mid };
		struct bulwark_port_range *r = bpf_map_lookup_elem(&bw_ports, &k);
		if (!r)
			return 0;
		if (port < r->first)
			hi = mid;
		else if (port > r->last)
			lo = mid + 1;
		else
			return r->mode;
	}
	return 0;
}

/* Checks a destination; `sub` is BULWARK_NET_CONNECT or _SENDMSG. */
static __always_inline int check_address(struct subject *s, void *addr, u32 sub, int socktype)
{
	u16 family = 0;
	bpf_probe_read_kernel(&family, sizeof(family), addr);
	u8 ip[16] = {};
	u16 port = 0;
	bool v4;
	if (family == AF_INET) {
		struct bw_sockaddr_in in = {};
		bpf_probe_read_kernel(&in, sizeof(in), addr);
		__builtin_memcpy(ip, &in.sin_addr, 4);
		port = bpf_ntohs(in.sin_port);
		v4 = true;
	} else if (family == AF_INET6) {
		struct bw_sockaddr_in6 in6 = {};
		bpf_probe_read_kernel(&in6, sizeof(in6), addr);
		port = bpf_ntohs(in6.sin6_port);
		/* ::ffff:a.b.c.d is IPv4 */
		u64 hi8;
		u32 mid4;
		__builtin_memcpy(&hi8, in6.sin6_addr, 8);
		__builtin_memcpy(&mid4, in6.sin6_addr + 8, 4);
		if (hi8 == 0 && mid4 == bpf_htonl(0xffff)) {
			__builtin_memcpy(ip, in6.sin6_addr + 12, 4);
			v4 = true;
		} else {
			__builtin_memcpy(ip, in6.sin6_addr, 16);
			v4 = false;
		}
	} else {
		return 0;
	}
	u32 tables = s->profile->tables;
	u8 mode = 0;
	struct bulwark_egress_value *ev;
	if (v4) {
		struct bulwark_egress4_key k = { .prefixlen = 64, .profile = bpf_htonl(tables) };
		__builtin_memcpy(k.addr, ip, 4);
		ev = bpf_map_lookup_elem(&bw_egress4, &k);
	} else {
		struct bulwark_egress6_key k = { .prefixlen = 160, .profile = bpf_htonl(tables) };
		__builtin_memcpy(k.addr, ip, 16);
		ev = bpf_map_lookup_elem(&bw_egress6, &k);
	}
	if (ev)
		mode |= port_mode(tables, ev->ranges_first, ev->ranges_count, port);
	/* pod-self: the container's own pod IP */
	struct bulwark_binding *b = s->binding;
	if (s->profile->pod_self_ranges_count) {
		bool self = false;
		if (v4 && (b->flags & BULWARK_BINDING_POD_IP4))
			self = __builtin_memcmp(ip, b->pod_ip4, 4) == 0;
		if (!v4 && (b->flags & BULWARK_BINDING_POD_IP6)) {
			u64 a0, a1, b0, b1;
			__builtin_memcpy(&a0, ip, 8);
			__builtin_memcpy(&a1, ip + 8, 8);
			__builtin_memcpy(&b0, b->pod_ip6, 8);
			__builtin_memcpy(&b1, b->pod_ip6 + 8, 8);
			self = a0 == b0 && a1 == b1;
		}
		if (self)
			mode |= port_mode(tables, s->profile->pod_self_ranges_first, s->profile->pod_self_ranges_count,
					  port);
	}
	struct bulwark_verdict v = {
		.deny = (mode & BULWARK_RULE_DENY) ? 1 : 0,
		.audit = (mode & BULWARK_RULE_AUDIT) ? 1 : 0,
		.allow = (mode & BULWARK_RULE_ALLOW) ? 1 : 0,
	};
	bool deny;
	u32 action = decide(s, v, 1, BULWARK_ALLOW_NETWORK, &deny);
	if (action) {
		struct bulwark_event *e = event_begin(action, BULWARK_EVENT_NETWORK, s, sub);
		if (e) {
			e->family = v4 ? AF_INET : AF_INET6;
			e->sock_type = socktype;
			e->port = port;
			__builtin_memcpy(e->addr, ip, 16);
			event_submit(e);
		}
	}
	return deny ? -EPERM : 0;
}

SEC("lsm/socket_connect")
int BPF_PROG(bw_connect, struct socket *sock, struct bw_sockaddr *address, int addrlen, int ret)
{
	if (ret)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	return check_address(&s, address, BULWARK_NET_CONNECT, BPF_CORE_READ(sock, type));
}

/* sendto/sendmsg with a destination address (unconnected UDP, TCP fast open). */
SEC("lsm/socket_sendmsg")
int BPF_PROG(bw_sendmsg, struct socket *sock, struct msghdr *msg, int size, int ret)
{
	if (ret)
		return ret;
	void *name = BPF_CORE_READ(msg, msg_name);
	if (!name || BPF_CORE_READ(msg, msg_namelen) < 2)
		return 0;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	return check_address(&s, name, BULWARK_NET_SENDMSG, BPF_CORE_READ(sock, type));
}

/* ---- capabilities and ptrace ----------------------------------------------------------- */

SEC("lsm/capable")
int BPF_PROG(bw_capable, const struct cred *cred, struct user_namespace *ns, int cap, unsigned int opts, int ret)
{
	if (ret || cap < 0 || cap > 63)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0; /* unconfined: the common case, decided by one map lookup */
	/* A check made with credentials the kernel substituted (overlayfs copy-up uses the
	 * mounter's) is the kernel's, not the task's. A task's own full capability set is not an
	 * exemption (vArmor exempts it: §9.3 #2). */
	struct task_struct *t = bpf_get_current_task_btf();
	const struct cred *own = t->cred;
	if (cred != own || own != t->real_cred)
		return 0;
	u64 bit = 1ULL << cap;
	struct bulwark_verdict v = {
		.deny = (s.profile->cap_deny & bit) ? 1 : 0,
		.audit = (s.profile->cap_audit & bit) ? 1 : 0,
		.allow = (s.profile->cap_allow & bit) ? 1 : 0,
	};
	bool deny;
	u32 action = decide(&s, v, 1, BULWARK_ALLOW_CAPABILITY, &deny);
	if (action && !(opts & CAP_OPT_NOAUDIT)) {
		struct bulwark_event *e = event_begin(action, BULWARK_EVENT_CAPABILITY, &s, cap);
		if (e)
			event_submit(e);
	}
	return deny ? -EPERM : 0;
}

static __always_inline int ptrace_side(struct subject *s, u32 perm, bool external, u32 peer)
{
	struct bulwark_profile *p = s->profile;
	struct bulwark_verdict v = {
		.deny = (p->ptrace_deny_strict | (external ? p->ptrace_deny_cross : 0)) & perm,
		.audit = (p->ptrace_audit_strict | (external ? p->ptrace_audit_cross : 0)) & perm,
		.allow = (p->ptrace_allow_any | (external ? 0 : p->ptrace_allow_inner)) & perm,
	};
	bool deny;
	u32 action = decide(s, v, perm, BULWARK_ALLOW_PTRACE, &deny);
	if (action) {
		struct bulwark_event *e = event_begin(action, BULWARK_EVENT_PTRACE, s, perm);
		if (e) {
			e->peer = peer;
			e->external = external;
			event_submit(e);
		}
	}
	return deny ? -EPERM : 0;
}

SEC("lsm/ptrace_access_check")
int BPF_PROG(bw_ptrace, struct task_struct *child, unsigned int mode, int ret)
{
	if (ret)
		return ret;
	bool read = mode & PTRACE_MODE_READ;
	struct task_struct *cur = bpf_get_current_task_btf();
	struct mnt_namespace *cur_ns = task_mnt_ns(cur);
	struct mnt_namespace *child_ns = task_mnt_ns(child);
	u32 cur_inum = BPF_CORE_READ(cur_ns, ns.inum);
	bool external = cur_ns != child_ns;
	struct subject s;
	/* tracer side */
	if (resolve(cur_ns, false, &s) == 0 &&
	    ptrace_side(&s, read ? BULWARK_PTRACE_READ : BULWARK_PTRACE_TRACE, external, BPF_CORE_READ(child, tgid)))
		return -EPERM;
	/* tracee side, unless the tracer is the host (vArmor) */
	if (cur_inum == host_mnt_ns)
		return 0;
	if (resolve(child_ns, false, &s))
		return 0;
	return ptrace_side(&s, read ? BULWARK_PTRACE_READBY : BULWARK_PTRACE_TRACEBY, external,
			   bpf_get_current_pid_tgid() >> 32);
}

/* ---- mounts ----------------------------------------------------------------------------- */

struct mount_ctx {
	u32 tables;
	u32 flags;
	u32 src_len;
	u32 name_start;
	bool fs_none;
	u8 mode;
};

/* Source pattern of a mount rule against the source text in buf[4096, 4096+len). */
static __always_inline bool mount_source_matches(struct scratch *s, struct bulwark_mount_rule *r, u32 len,
						 u32 name_start)
{
	u32 pf = r->pattern_flags;
	u32 start = PATH_SPACE;
	if (pf & BULWARK_PATTERN_BASENAME) {
		start = name_start;
		len = PATH_SPACE + len - name_start;
	}
	if (pf & (BULWARK_PATTERN_PREFIX | BULWARK_PATTERN_PRECISE)) {
		for (int i = 0; i < BULWARK_MOUNT_PATTERN_MAX; i++) {
			u8 c = r->prefix[i];
			if (c == 0) {
				if ((pf & BULWARK_PATTERN_PRECISE) && i != len)
					return false;
				break;
			}
			if (i >= len || s->buf[(start + i) & BUF_MASK] != c)
				return false;
		}
	}
	if (pf & BULWARK_PATTERN_SUFFIX) {
		for (int i = 0; i < BULWARK_MOUNT_PATTERN_MAX; i++) {
			u8 c = r->suffix[i]; /* stored reversed */
			if (c == 0)
				break;
			if (i >= len || s->buf[(start + len - 1 - i) & BUF_MASK] != c)
				return false;
		}
	}
	return true;
}

static long mount_rule_step(u32 i, struct mount_ctx *c)
{
	struct scratch *s = scratch();
	if (!s)
		return 1;
	struct bulwark_mount_key k = { .profile = c->tables, .index = i };
	struct bulwark_mount_rule *r = bpf_map_lookup_elem(&bw_mounts, &k);
	if (!r)
		return 1;
	bool flags_match = (c->flags & r->flags) || (~c->flags & r->reverse_flags);
	if (!flags_match)
		return 0;
	if (r->fstype[0] != '*' || r->fstype[1] != 0) {
		/* exact fstype; the requested one is in buf[PATH_SPACE*2 - 16 ...] */
		for (int j = 0; j < BULWARK_FSTYPE_MAX; j++) {
			u8 want = r->fstype[j];
			u8 have = s->buf[(BUF_SIZE - BULWARK_FSTYPE_MAX + j) & BUF_MASK];
			if (want != have)
				return 0;
			if (!want)
				break;
		}
	}
	if (!mount_source_matches(s, r, c->src_len, c->name_start))
		return 0;
	c->mode |= (u8)r->mode;
	return 0;
}

/* Source text goes to buf[4096...], the fstype to the last 16 bytes of buf. */
static __always_inline int check_mount(struct subject *s, u32 flags, u32 src_len, bool fs_none)
{
	struct scratch *sc = scratch();
	if (!sc)
		return 0;
	if (fs_none) {
		__builtin_memset(&sc->buf[BUF_SIZE - BULWARK_FSTYPE_MAX], 0, BULWARK_FSTYPE_MAX);
		__builtin_memcpy(&sc->buf[BUF_SIZE - BULWARK_FSTYPE_MAX], "none", 4);
	}
	struct mount_ctx c = { .tables = s->profile->tables, .flags = flags, .src_len = src_len };
	c.name_start = basename_start(PATH_SPACE, PATH_SPACE + src_len);
	u32 n = s->profile->mount_rules;
	if (n > BULWARK_MOUNT_RULES_MAX)
		n = BULWARK_MOUNT_RULES_MAX;
	bpf_loop(n, (void *)mount_rule_step, &c, 0);
	struct bulwark_verdict v = {
		.deny = (c.mode & BULWARK_RULE_DENY) ? 1 : 0,
		.audit = (c.mode & BULWARK_RULE_AUDIT) ? 1 : 0,
		.allow = (c.mode & BULWARK_RULE_ALLOW) ? 1 : 0,
	};
	bool deny;
	u32 action = decide(s, v, 1, BULWARK_ALLOW_MOUNT, &deny);
	if (action) {
		struct bulwark_event *e = event_begin(action, BULWARK_EVENT_MOUNT, s, flags);
		if (e) {
			bpf_probe_read_kernel(e->fstype, BULWARK_FSTYPE_MAX, &sc->buf[BUF_SIZE - BULWARK_FSTYPE_MAX]);
			e->fstype[BULWARK_FSTYPE_MAX - 1] = 0;
			u32 m = src_len + 1;
			if (m > PATH_SPACE - BULWARK_FSTYPE_MAX)
				m = PATH_SPACE - BULWARK_FSTYPE_MAX;
			bpf_probe_read_kernel(e->path, m & (PATH_SPACE - 1), &sc->buf[PATH_SPACE]);
			e->path[BULWARK_EVENT_PATH_MAX - 1] = 0;
			event_submit(e);
		}
	}
	return deny ? -EPERM : 0;
}

#define MS_FSTYPE_NONE (MS_REMOUNT | MS_BIND | MS_SHARED | MS_PRIVATE | MS_SLAVE | MS_UNBINDABLE | MS_MOVE | BULWARK_MOUNT_UMOUNT)

SEC("lsm/sb_mount")
int BPF_PROG(bw_mount, const char *dev_name, const struct path *path, const char *type, unsigned long flags,
	     void *data, int ret)
{
	if (ret)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	struct scratch *sc = scratch();
	if (!sc)
		return 0;
	long n = 0;
	if (dev_name)
		n = bpf_probe_read_kernel_str(&sc->buf[PATH_SPACE], PATH_SPACE - BULWARK_FSTYPE_MAX, dev_name);
	if (n <= 0) {
		sc->buf[PATH_SPACE] = 0;
		n = 1;
	}
	bool none = (flags & MS_FSTYPE_NONE) != 0;
	if (!none) {
		__builtin_memset(&sc->buf[BUF_SIZE - BULWARK_FSTYPE_MAX], 0, BULWARK_FSTYPE_MAX);
		if (type)
			bpf_probe_read_kernel_str(&sc->buf[BUF_SIZE - BULWARK_FSTYPE_MAX], BULWARK_FSTYPE_MAX, type);
	}
	return check_mount(&s, (u32)flags, (u32)(n - 1), none);
}

/* Puts the path of (dentry, mnt) at buf[4096...] as the mount "source". */
static __always_inline int mount_path(struct dentry *d, struct vfsmount *m, u32 *len)
{
	struct span sp;
	if (walk_path(d, m, &sp))
		return -1;
	struct scratch *sc = scratch();
	if (!sc)
		return -1;
	u32 n = sp.len + 1;
	if (n > PATH_SPACE - BULWARK_FSTYPE_MAX)
		return -1;
	bpf_probe_read_kernel(&sc->buf[PATH_SPACE], n & (PATH_SPACE - 1), &sc->buf[sp.start & (PATH_SPACE - 1)]);
	*len = sp.len;
	return 0;
}

SEC("lsm/move_mount")
int BPF_PROG(bw_move_mount, const struct path *from_path, const struct path *to_path, int ret)
{
	if (ret)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	u32 len;
	if (mount_path(BPF_CORE_READ(from_path, dentry), BPF_CORE_READ(from_path, mnt), &len))
		return 0;
	return check_mount(&s, MS_MOVE, len, true);
}

SEC("lsm/sb_umount")
int BPF_PROG(bw_umount, struct vfsmount *mnt, int flags, int ret)
{
	if (ret)
		return ret;
	struct subject s;
	if (current_subject(false, &s))
		return 0;
	u32 len;
	if (mount_path(BPF_CORE_READ(mnt, mnt_root), mnt, &len))
		return 0;
	return check_mount(&s, BULWARK_MOUNT_UMOUNT, len, true);
}

/* Never called: keeps struct bulwark_event in the object's BTF so that a test can compare its
 * layout with the Swift view (the ring buffer carries no type information). */
__attribute__((noinline)) int bw_event_layout(struct bulwark_event *e)
{
	return e ? 0 : 1;
}
