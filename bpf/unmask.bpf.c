// SPDX-License-Identifier: GPL-2.0
/* XDP steering for unmask (placeholder until the datapath lands: passes everything). */
#include <linux/bpf.h>
#include <bpf/bpf_helpers.h>
#include "unmask_shared.h"

SEC("xdp")
int unmask_xdp(struct xdp_md *ctx)
{
	return XDP_PASS;
}

char LICENSE[] SEC("license") = "GPL";
