// SPDX-License-Identifier: GPL-2.0
/* XDP steering for unmask.
 *
 *   tunnel carrier, fragment -> AF_XDP socket (the worker opens tunnels, reassembles fragments),
 *                               unless the inner flow (one level of GRE, IP-in-IP, VXLAN,
 *                               Geneve, GTP-U) is in the block or bypass map
 *   non-TCP                  -> peer port via devmap (inline) | XDP_DROP (tap)
 *   TCP, flow in block map   -> XDP_DROP
 *   TCP, flow in bypass map  -> peer port via devmap (inline) | XDP_DROP (tap)
 *   TCP otherwise            -> AF_XDP socket of (port, rx queue)
 *   ... no socket bound      -> fail-open: peer port (inline) | XDP_PASS (tap); fail-closed: drop
 *
 * Tap mode drops what it does not hand to a socket: a tap port receives a mirror copy that
 * nothing on the host consumes, and passing mirrored frames up would make the host stack act on
 * someone else's traffic. Fail-open in tap mode passes, as the contract asks, which only matters
 * while no worker is there.
 *
 * Every exit goes through finish(), which counts the frame once under its reason and once under
 * its action. */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "unmask_shared.h"
#include "unmask_parse.h"

/* Load-time knobs, set by the loader before the program is loaded. */
const volatile __u32 cfg_ifindex[UNMASK_MAX_PORTS] = { 0, 0 };
const volatile __u8 cfg_tap = 0;
const volatile __u8 cfg_fail_closed = 0;
/* Diagnostics: every frame of a port goes to its socket, unparsed (raw benchmarks). */
const volatile __u8 cfg_steer_all = 0;

struct {
	__uint(type, BPF_MAP_TYPE_XSKMAP);
	__uint(max_entries, UNMASK_XSK_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} unmask_xsks SEC(".maps");

/* Index = ingress port; value = the ifindex of the other port. */
struct {
	__uint(type, BPF_MAP_TYPE_DEVMAP);
	__uint(max_entries, UNMASK_MAX_PORTS);
	__type(key, __u32);
	__type(value, __u32);
} unmask_peer SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, UNMASK_FLOW_MAP_ENTRIES);
	__type(key, struct unmask_flow_key);
	__type(value, struct unmask_flow_entry);
} unmask_block SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, UNMASK_FLOW_MAP_ENTRIES);
	__type(key, struct unmask_flow_key);
	__type(value, struct unmask_flow_entry);
} unmask_bypass SEC(".maps");

/* Index UNMASK_USE_BLOCK / UNMASK_USE_BYPASS: nonzero once userspace has put an entry in that
 * flow map (or kept an earlier program's). Until then a lookup can only miss, and the two hash
 * lookups (jhash of the 40-byte key each) were most of what the program costs per TCP frame:
 * a monitor without bypass never needs them. */
struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, UNMASK_USE_SLOTS);
	__type(key, __u32);
	__type(value, __u32);
} unmask_flow_use SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, UNMASK_COUNTERS);
	__type(key, __u32);
	__type(value, struct unmask_counter);
} unmask_counters SEC(".maps");

static __always_inline void count(__u32 slot, __u64 bytes)
{
	struct unmask_counter *c = bpf_map_lookup_elem(&unmask_counters, &slot);
	if (c) {
		c->packets++;
		c->bytes += bytes;
	}
}

static __always_inline int finish(struct xdp_md *ctx, __u32 reason, int action)
{
	__u64 bytes = ctx->data_end - ctx->data;
	count(reason, bytes);
	__u32 act = (__u32)action;
	if (act > XDP_REDIRECT)
		act = XDP_ABORTED;
	count(UNMASK_ACT_BASE + act, bytes);
	return action;
}

/* Bridge to the other port (inline). Drops when the peer slot is empty. */
static __always_inline int to_peer(__u32 port)
{
	return bpf_redirect_map(&unmask_peer, port, XDP_DROP);
}

/* The action for a frame the program lets through without a worker. */
static __always_inline int let_through(__u32 port)
{
	if (cfg_tap)
		return XDP_DROP;
	return to_peer(port);
}

/* Compare two addresses of `words` 32-bit words as big-endian byte strings. */
static __always_inline int addr_cmp(const __u32 *a, const __u32 *b, int words)
{
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (i >= words)
			break;
		__u32 x = bpf_ntohl(a[i]);
		__u32 y = bpf_ntohl(b[i]);
		if (x != y)
			return x < y ? -1 : 1;
	}
	return 0;
}

/* Fills the direction-free key; returns the sending side (0: src is the lo endpoint). */
static __always_inline int fill_key(struct unmask_flow_key *k, const __u32 *src, const __u32 *dst,
				    int words, __be16 sport, __be16 dport, __u8 family)
{
	__builtin_memset(k, 0, sizeof(*k));
	int c = addr_cmp(src, dst, words);
	int src_lo = c < 0 || (c == 0 && bpf_ntohs(sport) <= bpf_ntohs(dport));
	const __u32 *lo = src_lo ? src : dst;
	const __u32 *hi = src_lo ? dst : src;
	__u32 *klo = (__u32 *)k->lo_addr;
	__u32 *khi = (__u32 *)k->hi_addr;
#pragma unroll
	for (int i = 0; i < 4; i++) {
		if (i >= words)
			break;
		klo[i] = lo[i];
		khi[i] = hi[i];
	}
	k->lo_port = src_lo ? sport : dport;
	k->hi_port = src_lo ? dport : sport;
	k->family = family;
	k->proto = IPPROTO_TCP;
	return src_lo ? 0 : 1;
}

/* The TCP flags byte (CWR..FIN), the 14th byte of the header. */
static __always_inline __u8 tcp_flags(const struct tcphdr *tcp)
{
	return ((const __u8 *)tcp)[13];
}

static __always_inline int map_in_use(__u32 which)
{
	__u32 *used = bpf_map_lookup_elem(&unmask_flow_use, &which);
	return used && *used;
}

/* Looks the key up in a flow map; expired entries are removed and reported as absent. A hit
 * is counted under the sending side, with its time and flags, for the worker's accounting. */
static __always_inline int flow_hit(void *map, struct unmask_flow_key *k, int side, __u64 bytes,
				    __u8 flags, int *expired)
{
	struct unmask_flow_entry *e = bpf_map_lookup_elem(map, k);
	if (!e)
		return 0;
	__u64 now = bpf_ktime_get_ns();
	if (e->expires_ns != 0 && e->expires_ns <= now) {
		bpf_map_delete_elem(map, k);
		*expired = 1;
		return 0;
	}
	/* Two CPUs may race on last_ns and tcp_flags (ports or queues of one flow): either
	 * store is a recent time, and a lost flag bit only delays the close to the idle
	 * timeout. The counters are atomic. */
	e->last_ns = now;
	if (side == 0) {
		__sync_fetch_and_add(&e->pkts[0], 1);
		__sync_fetch_and_add(&e->bytes[0], bytes);
		e->tcp_flags[0] |= flags;
	} else {
		__sync_fetch_and_add(&e->pkts[1], 1);
		__sync_fetch_and_add(&e->bytes[1], bytes);
		e->tcp_flags[1] |= flags;
	}
	return 1;
}

static __always_inline int to_socket(struct xdp_md *ctx, __u32 port, __u32 reason)
{
	__u32 queue = ctx->rx_queue_index;
	if (queue < UNMASK_MAX_QUEUES) {
		__u32 slot = port * UNMASK_MAX_QUEUES + queue;
		/* A lookup first, so a missing socket takes the fail-mode path instead of the
		 * redirect's fallback action. */
		if (bpf_map_lookup_elem(&unmask_xsks, &slot))
			return finish(ctx, reason, bpf_redirect_map(&unmask_xsks, slot, XDP_DROP));
	}
	if (cfg_fail_closed)
		return finish(ctx, UNMASK_R_NO_SOCKET, XDP_DROP);
	if (cfg_tap)
		return finish(ctx, UNMASK_R_NO_SOCKET, XDP_PASS);
	return finish(ctx, UNMASK_R_NO_SOCKET, to_peer(port));
}

/* What an IP header (outer or a tunnel's inner) turned out to hold. */
enum l3_result {
	L3_TCP,       /* a keyable TCP segment: key, side and flags are set */
	L3_OTHER,     /* another protocol, not a fragment: *l4 is set, the cursor is on it */
	L3_FRAGMENT,  /* a non-TCP fragment: its ports may be in another fragment */
	L3_UNSURE,    /* TCP-looking but not keyable: a broken header, a TCP fragment, a cut TCP */
	L3_NOT_IP,    /* an EtherType other than IPv4 or IPv6 */
};

/* `keyed`: whether a flow map is in use; without one the key (and side) are not built. */
static __always_inline int l3_key(struct cursor *c, void *data_end, int eth_proto, int keyed,
				  struct unmask_flow_key *key, int *side, __u8 *flags, int *l4)
{
	int frag = 0;
	struct tcphdr *tcp;
	if (eth_proto == bpf_htons(ETH_P_IP)) {
		struct iphdr *ip;
		*l4 = parse_ipv4(c, data_end, &ip, &frag);
		if (*l4 < 0) /* a broken IPv4 header could hide TCP: let a worker look */
			return L3_UNSURE;
		if (*l4 != IPPROTO_TCP)
			return frag ? L3_FRAGMENT : L3_OTHER;
		if (frag)
			return L3_UNSURE;
		tcp = parse_tcp(c, data_end);
		if (!tcp)
			return L3_UNSURE;
		if (keyed)
			*side = fill_key(key, &ip->saddr, &ip->daddr, 1, tcp->source, tcp->dest, 4);
	} else if (eth_proto == bpf_htons(ETH_P_IPV6)) {
		struct ipv6hdr *ip6;
		*l4 = parse_ipv6(c, data_end, &ip6, &frag);
		if (*l4 < 0)
			return L3_UNSURE;
		if (*l4 != IPPROTO_TCP)
			return frag ? L3_FRAGMENT : L3_OTHER;
		if (frag)
			return L3_UNSURE;
		tcp = parse_tcp(c, data_end);
		if (!tcp)
			return L3_UNSURE;
		if (keyed)
			*side = fill_key(key, (__u32 *)&ip6->saddr, (__u32 *)&ip6->daddr, 4,
					 tcp->source, tcp->dest, 6);
	} else {
		return L3_NOT_IP;
	}
	*flags = tcp_flags(tcp);
	return L3_TCP;
}

/* Which flow maps are in use, read once per frame. */
struct maps_in_use {
	int block;
	int bypass;
};

/* The block and bypass maps (those in use) for a keyed flow; `reason` is where a frame no
 * entry settles goes (to the socket). */
static __always_inline int judge_flow(struct xdp_md *ctx, __u32 port, struct maps_in_use use,
				      struct unmask_flow_key *key, int side, __u8 flags, __u32 reason)
{
	int expired = 0;
	__u64 bytes = ctx->data_end - ctx->data;
	if (use.block && flow_hit(&unmask_block, key, side, bytes, flags, &expired))
		return finish(ctx, UNMASK_R_BLOCKED, XDP_DROP);
	if (use.bypass && flow_hit(&unmask_bypass, key, side, bytes, flags, &expired))
		return finish(ctx, UNMASK_R_BYPASSED, let_through(port));
	if (expired)
		count(UNMASK_R_EXPIRED, 0);
	return to_socket(ctx, port, reason);
}

SEC("xdp")
int unmask_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *data_end = (void *)(long)ctx->data_end;
	__u32 port;

	if (ctx->ingress_ifindex == cfg_ifindex[0])
		port = 0;
	else if (ctx->ingress_ifindex == cfg_ifindex[1])
		port = 1;
	else
		return finish(ctx, UNMASK_R_FOREIGN_PORT, XDP_PASS);

	if (cfg_steer_all)
		return to_socket(ctx, port, UNMASK_R_TO_SOCKET);

	struct cursor c = { .pos = data };
	int eth_proto = parse_eth(&c, data_end);
	if (eth_proto < 0)
		return finish(ctx, UNMASK_R_NON_TCP, let_through(port));
	if (eth_proto == bpf_htons(UNMASK_ETH_P_MPLS_UC) || eth_proto == bpf_htons(UNMASK_ETH_P_MPLS_MC))
		return to_socket(ctx, port, UNMASK_R_TUNNEL);

	/* Until a flow map is in use no frame can be settled by its flow: no key is built. */
	struct maps_in_use use = {
		.block = map_in_use(UNMASK_USE_BLOCK),
		.bypass = map_in_use(UNMASK_USE_BYPASS),
	};
	int keyed = use.block || use.bypass;
	struct unmask_flow_key key;
	int side = 0;
	int l4 = 0;
	__u8 flags = 0;
	switch (l3_key(&c, data_end, eth_proto, keyed, &key, &side, &flags, &l4)) {
	case L3_TCP:
		return judge_flow(ctx, port, use, &key, side, flags, UNMASK_R_TO_SOCKET);
	case L3_UNSURE:
		return to_socket(ctx, port, UNMASK_R_UNSURE);
	case L3_FRAGMENT:
		/* Any fragment may be a tunnel's: the worker reassembles it and decides. */
		return to_socket(ctx, port, UNMASK_R_TUNNEL);
	case L3_OTHER:
		break;
	default:
		return finish(ctx, UNMASK_R_NON_TCP, let_through(port));
	}
	if (!is_tunnel(&c, data_end, l4))
		return finish(ctx, UNMASK_R_NON_TCP, let_through(port));

	/* One level of the common tunnels is opened here, so a tunnelled flow the worker blocked
	 * or bypassed (it keys inner flows by their inner 5-tuple) is settled in the kernel too.
	 * Anything else inside a tunnel, and every frame no entry settles, goes to the worker,
	 * which opens tunnels to any depth. */
	int inner_proto = open_tunnel(&c, data_end, l4);
	if (inner_proto < 0)
		return to_socket(ctx, port, UNMASK_R_TUNNEL);
	if (l3_key(&c, data_end, inner_proto, keyed, &key, &side, &flags, &l4) != L3_TCP)
		return to_socket(ctx, port, UNMASK_R_TUNNEL);
	return judge_flow(ctx, port, use, &key, side, flags, UNMASK_R_TUNNEL);
}

char LICENSE[] SEC("license") = "GPL";
