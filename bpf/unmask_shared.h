/* The only contract between the XDP program and userspace. Every struct here has fixed-width
 * fields, explicit padding, and a size assertion on both sides. */
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

#endif
