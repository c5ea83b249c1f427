/* Bounds-checked header parsing for the XDP program: every helper takes a cursor and data_end
 * and checks the bytes it reads before reading them, so the verifier accepts every access and a
 * short frame can only make a helper fail, never read past the packet. */
#ifndef UNMASK_PARSE_H
#define UNMASK_PARSE_H

#include <linux/types.h>
#include <linux/if_ether.h>
#include <linux/ip.h>
#include <linux/ipv6.h>
#include <linux/in.h>
#include <linux/tcp.h>
#include <bpf/bpf_endian.h>

#ifndef ETH_P_8021AD
#define ETH_P_8021AD 0x88A8
#endif

#define UNMASK_MAX_VLAN 2
#define UNMASK_MAX_V6_EXT 4

struct cursor {
	void *pos;
};

struct vlan_tag {
	__be16 tci;
	__be16 inner_proto;
};

/* Ethernet plus up to two VLAN tags. Returns the inner EtherType (network order) or -1. */
static __always_inline int parse_eth(struct cursor *c, void *data_end)
{
	struct ethhdr *eth = c->pos;
	if ((void *)(eth + 1) > data_end)
		return -1;
	c->pos = eth + 1;
	__be16 proto = eth->h_proto;

#pragma unroll
	for (int i = 0; i < UNMASK_MAX_VLAN; i++) {
		if (proto != bpf_htons(ETH_P_8021Q) && proto != bpf_htons(ETH_P_8021AD))
			break;
		struct vlan_tag *tag = c->pos;
		if ((void *)(tag + 1) > data_end)
			return -1;
		c->pos = tag + 1;
		proto = tag->inner_proto;
	}
	/* A third tag is more than we parse: report it as an unknown EtherType. */
	return proto;
}

/* Returns the IP protocol, or -1 when the header is cut short or malformed. Sets *frag when
 * the packet is a fragment (no transport header can be trusted then). */
static __always_inline int parse_ipv4(struct cursor *c, void *data_end, struct iphdr **out,
				      int *frag)
{
	struct iphdr *ip = c->pos;
	if ((void *)(ip + 1) > data_end)
		return -1;
	if (ip->version != 4 || ip->ihl < 5)
		return -1;
	void *next = (void *)ip + ip->ihl * 4;
	if (next > data_end)
		return -1;
	c->pos = next;
	*out = ip;
	/* More-fragments flag or a non-zero offset. */
	*frag = (ip->frag_off & bpf_htons(0x3FFF)) != 0;
	return ip->protocol;
}

/* Walks a small fixed number of IPv6 extension headers. Returns the upper-layer protocol,
 * or -1 when the chain runs past the packet or is longer than we walk. */
static __always_inline int parse_ipv6(struct cursor *c, void *data_end, struct ipv6hdr **out,
				      int *frag)
{
	struct ipv6hdr *ip6 = c->pos;
	if ((void *)(ip6 + 1) > data_end)
		return -1;
	if (ip6->version != 6)
		return -1;
	c->pos = ip6 + 1;
	*out = ip6;
	__u8 nexthdr = ip6->nexthdr;

#pragma unroll
	for (int i = 0; i < UNMASK_MAX_V6_EXT; i++) {
		switch (nexthdr) {
		case IPPROTO_HOPOPTS:
		case IPPROTO_ROUTING:
		case IPPROTO_DSTOPTS: {
			__u8 *ext = c->pos;
			if ((void *)(ext + 2) > data_end)
				return -1;
			void *next = c->pos + (ext[1] + 1) * 8;
			if (next > data_end)
				return -1;
			nexthdr = ext[0];
			c->pos = next;
			break;
		}
		case IPPROTO_FRAGMENT: {
			__u8 *ext = c->pos;
			if ((void *)(ext + 8) > data_end)
				return -1;
			*frag = 1;
			return ext[0];
		}
		default:
			return nexthdr;
		}
	}
	return -1;
}

#ifndef IPPROTO_GRE
#define IPPROTO_GRE 47
#endif
#define UNMASK_ETH_P_MPLS_UC 0x8847
#define UNMASK_ETH_P_MPLS_MC 0x8848
#define UNMASK_PORT_VXLAN 4789
#define UNMASK_PORT_GENEVE 6081
#define UNMASK_PORT_GTPU 2152

struct udp_ports {
	__be16 source;
	__be16 dest;
};

/* Is this IP payload a tunnel that may carry TCP? GRE (ERSPAN included), IP-in-IP, IPv6 in
 * IP, and UDP to the VXLAN, Geneve or GTP-U port. The worker opens it; here only the carrier
 * is recognised, so a tunnelled flow is inspected rather than bridged unseen. */
static __always_inline int is_tunnel(struct cursor *c, void *data_end, int l4)
{
	if (l4 == IPPROTO_GRE || l4 == IPPROTO_IPIP || l4 == IPPROTO_IPV6)
		return 1;
	if (l4 != IPPROTO_UDP)
		return 0;
	struct udp_ports *udp = c->pos;
	if ((void *)(udp + 1) > data_end)
		return 0;
	return udp->dest == bpf_htons(UNMASK_PORT_VXLAN) || udp->dest == bpf_htons(UNMASK_PORT_GENEVE) ||
	       udp->dest == bpf_htons(UNMASK_PORT_GTPU) || udp->source == bpf_htons(UNMASK_PORT_GTPU);
}

static __always_inline struct tcphdr *parse_tcp(struct cursor *c, void *data_end)
{
	struct tcphdr *tcp = c->pos;
	if ((void *)(tcp + 1) > data_end)
		return 0;
	if (tcp->doff < 5)
		return 0;
	return tcp;
}

#endif
