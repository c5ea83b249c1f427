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

#define UNMASK_ETH_P_TEB 0x6558

struct gre_base {
	__be16 flags;
	__be16 proto;
};

struct udp_head {
	__be16 source;
	__be16 dest;
	__be16 len;
	__be16 check;
};

/* Where a tunnel's payload starts and what it is: the payload's EtherType. Ethernet payloads
 * (VXLAN, Geneve and GRE bridging) are opened here too, so the caller always gets IP next.
 * Returns the inner EtherType (network order) with the cursor on the inner IP header, or -1
 * for anything this one-level opener leaves to the worker: MPLS, ERSPAN, GTP-U extension
 * headers, PPTP's GRE, a VXLAN header without its I flag, or a cut-short header. The worker
 * decodes every one of those; this only lets block and bypass entries of inner flows act in
 * the kernel. */
static __always_inline int open_tunnel(struct cursor *c, void *data_end, int l4)
{
	if (l4 == IPPROTO_IPIP)
		return bpf_htons(ETH_P_IP);
	if (l4 == IPPROTO_IPV6)
		return bpf_htons(ETH_P_IPV6);
	if (l4 == IPPROTO_GRE) {
		struct gre_base *gre = c->pos;
		if ((void *)(gre + 1) > data_end)
			return -1;
		__u16 flags = bpf_ntohs(gre->flags);
		/* Version 1 (PPTP) and the obsolete routing bit carry nothing taken as IP. */
		if (flags & 0x4007)
			return -1;
		__u32 len = 4 + ((flags & 0x8000) ? 4 : 0) + ((flags & 0x2000) ? 4 : 0) +
			    ((flags & 0x1000) ? 4 : 0);
		c->pos = (void *)gre + len;
		if (c->pos > data_end)
			return -1;
		if (gre->proto == bpf_htons(ETH_P_IP) || gre->proto == bpf_htons(ETH_P_IPV6))
			return gre->proto;
		if (gre->proto == bpf_htons(UNMASK_ETH_P_TEB))
			return parse_eth(c, data_end);
		return -1;
	}
	if (l4 != IPPROTO_UDP)
		return -1;
	struct udp_head *udp = c->pos;
	if ((void *)(udp + 1) > data_end)
		return -1;
	__u8 *body = (void *)(udp + 1);
	if ((void *)(body + 8) > data_end)
		return -1;
	if (udp->dest == bpf_htons(UNMASK_PORT_VXLAN)) {
		if (!(body[0] & 0x08))
			return -1;
		c->pos = body + 8;
		return parse_eth(c, data_end);
	}
	if (udp->dest == bpf_htons(UNMASK_PORT_GENEVE)) {
		if (body[0] >> 6)
			return -1;
		c->pos = body + 8 + (body[0] & 0x3f) * 4;
		if (c->pos > data_end)
			return -1;
		__be16 proto = *(__be16 *)(body + 2);
		if (proto == bpf_htons(ETH_P_IP) || proto == bpf_htons(ETH_P_IPV6))
			return proto;
		if (proto == bpf_htons(UNMASK_ETH_P_TEB))
			return parse_eth(c, data_end);
		return -1;
	}
	if (udp->dest == bpf_htons(UNMASK_PORT_GTPU) || udp->source == bpf_htons(UNMASK_PORT_GTPU)) {
		/* GTPv1-U G-PDU; with any of E, S, PN set a 4-byte word follows, and a next
		 * extension header (E with a non-zero type) is the worker's to walk. */
		if ((body[0] >> 5) != 1 || !(body[0] & 0x10) || body[1] != 0xff)
			return -1;
		__u8 *pdu = body + 8;
		if (body[0] & 0x07) {
			if ((void *)(body + 12) > data_end)
				return -1;
			if ((body[0] & 0x04) && body[11] != 0)
				return -1;
			pdu = body + 12;
		}
		if ((void *)(pdu + 1) > data_end)
			return -1;
		c->pos = pdu;
		if ((pdu[0] >> 4) == 4)
			return bpf_htons(ETH_P_IP);
		if ((pdu[0] >> 4) == 6)
			return bpf_htons(ETH_P_IPV6);
		return -1;
	}
	return -1;
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
