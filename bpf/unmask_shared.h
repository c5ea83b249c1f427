/* The only contract between the XDP program and userspace. Every struct here has fixed-width
 * fields, explicit padding, and a size assertion on both sides (Rust asserts the sizes of the
 * skeleton's generated types in src/datapath/bpf.rs). */
#ifndef UNMASK_SHARED_H
#define UNMASK_SHARED_H

#include <linux/types.h>

/* Direction-free TCP flow key: lo is the endpoint whose (address bytes, host-order port) sorts
 * first. IPv4 addresses use the first 4 bytes, the rest zero. Ports are network byte order. */
struct unmask_flow_key {
	__u8 lo_addr[16];
	__u8 hi_addr[16];
	__u16 lo_port;
	__u16 hi_port;
	__u8 family; /* 4 or 6 */
	__u8 proto;  /* IPPROTO_TCP */
	__u8 pad[2];
};
_Static_assert(sizeof(struct unmask_flow_key) == 40, "unmask_flow_key layout");

/* Value of the block and bypass maps. The XDP program ignores (and deletes) an entry whose
 * expiry has passed; 0 means it never expires. Times are CLOCK_MONOTONIC nanoseconds
 * (bpf_ktime_get_ns), so userspace writes them from clock_gettime(CLOCK_MONOTONIC).
 *
 * The program counts what it settles per sending side of the key (index 0: sent by the lo
 * endpoint, 1: by hi), so the worker that bypassed a flow can still account for it: flow
 * records, byte-ratio checks and idle timeouts see the packets userspace never did. */
struct unmask_flow_entry {
	__u64 expires_ns;
	__u64 last_ns;    /* when the program last matched a packet of the flow; 0: never */
	__u64 pkts[2];    /* by sending side, incremented atomically */
	__u64 bytes[2];   /* frame bytes, by sending side */
	__u8 tcp_flags[2]; /* TCP flags seen, OR-ed, by sending side (FIN/RST: the flow closed) */
	__u8 pad[6];
};
_Static_assert(sizeof(struct unmask_flow_entry) == 56, "unmask_flow_entry layout");

/* One slot of the per-CPU counter array. */
struct unmask_counter {
	__u64 packets;
	__u64 bytes;
};
_Static_assert(sizeof(struct unmask_counter) == 16, "unmask_counter layout");

/* Why a frame left the program the way it did. Each frame is counted exactly once under a
 * reason and once under the action it got (UNMASK_ACT_BASE + action). */
enum unmask_reason {
	UNMASK_R_FOREIGN_PORT = 0,  /* arrived on an interface that is not a configured port */
	UNMASK_R_NON_TCP = 1,       /* not TCP: bridged in the kernel (inline) or dropped (tap) */
	UNMASK_R_BLOCKED = 2,       /* flow in the block map: dropped */
	UNMASK_R_BYPASSED = 3,      /* flow in the bypass map: bridged in the kernel */
	UNMASK_R_TO_SOCKET = 4,     /* TCP handed to the AF_XDP socket of (port, rx queue) */
	UNMASK_R_UNSURE = 5,        /* TCP-looking but not keyable (fragment, odd header): to socket */
	UNMASK_R_NO_SOCKET = 6,     /* no socket bound for (port, rx queue): fail mode decides */
	UNMASK_R_EXPIRED = 7,       /* event, not an exit: an expired block/bypass entry was removed */
	UNMASK_R_TUNNEL = 8,        /* a tunnel carrier (GRE, IP-in-IP, VXLAN, Geneve, GTP-U, MPLS) or
				     * a non-TCP fragment: to socket, the worker opens it */
	UNMASK_R_MAX = 9,
};

/* Action slots follow the reason slots: index UNMASK_ACT_BASE + XDP action code. */
#define UNMASK_ACT_BASE UNMASK_R_MAX
#define UNMASK_ACT_ABORTED (UNMASK_ACT_BASE + 0)
#define UNMASK_ACT_DROP (UNMASK_ACT_BASE + 1)
#define UNMASK_ACT_PASS (UNMASK_ACT_BASE + 2)
#define UNMASK_ACT_TX (UNMASK_ACT_BASE + 3)
#define UNMASK_ACT_REDIRECT (UNMASK_ACT_BASE + 4)
#define UNMASK_COUNTERS (UNMASK_ACT_BASE + 5)

/* XSKMAP key = port * UNMASK_MAX_QUEUES + rx queue: the kernel only delivers a redirect to a
 * socket bound to the same device and queue, so each port has its own range of slots. */
#define UNMASK_MAX_QUEUES 64
#define UNMASK_MAX_PORTS 2
#define UNMASK_XSK_SLOTS (UNMASK_MAX_QUEUES * UNMASK_MAX_PORTS)

/* Slots of the flow-map use flags (unmask_flow_use). */
#define UNMASK_USE_BLOCK 0
#define UNMASK_USE_BYPASS 1
#define UNMASK_USE_SLOTS 2

/* Default capacity of the block and bypass maps (LRU: the least recently used entry goes). */
#define UNMASK_FLOW_MAP_ENTRIES 65536

#endif
