// SPDX-License-Identifier: GPL-2.0 OR MIT
// corecast's XDP program: UDP over IPv4 to one of the router's ports goes to
// the AF_XDP socket of the worker that owns the port, when it arrived on that
// worker's queue; everything else (ARP, ICMP, TCP, IPv6, other UDP, a router
// port's datagram on another queue) goes on to the kernel (XDP_PASS).
//
// Built by router/build.rs with `clang -target bpf`; loaded by
// router/src/net/xdp/loader.rs, which reads the two maps below from the
// "maps" section (its own layout, `struct cc_map`, not libbpf's) and patches
// their file descriptors into the program's map loads.
#include <linux/bpf.h>
#include <linux/if_ether.h>
#include <linux/in.h>
#include <linux/ip.h>
#include <linux/udp.h>
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_endian.h>

// The map layout the loader reads: type, key size, value size, max entries.
struct cc_map {
	__u32 type;
	__u32 key_size;
	__u32 value_size;
	__u32 max_entries;
};

// Queue index -> AF_XDP socket of the worker bound to that queue.
struct cc_map xsks SEC("maps") = {
	.type = BPF_MAP_TYPE_XSKMAP,
	.key_size = 4,
	.value_size = 4,
	.max_entries = 256,
};

// UDP destination port -> queue index + 1 of the worker that owns it (0: not
// a router port).
struct cc_map ports SEC("maps") = {
	.type = BPF_MAP_TYPE_ARRAY,
	.key_size = 4,
	.value_size = 4,
	.max_entries = 65536,
};

SEC("xdp")
int corecast_xdp(struct xdp_md *ctx)
{
	void *data = (void *)(long)ctx->data;
	void *end = (void *)(long)ctx->data_end;
	struct ethhdr *eth = data;
	if ((void *)(eth + 1) > end || eth->h_proto != bpf_htons(ETH_P_IP))
		return XDP_PASS;
	struct iphdr *ip = (void *)(eth + 1);
	if ((void *)(ip + 1) > end || ip->protocol != IPPROTO_UDP || ip->ihl < 5)
		return XDP_PASS;
	// Fragments go to the kernel, which reassembles them.
	if (ip->frag_off & bpf_htons(0x3fff))
		return XDP_PASS;
	struct udphdr *udp = (void *)ip + ip->ihl * 4;
	if ((void *)(udp + 1) > end)
		return XDP_PASS;
	__u32 port = bpf_ntohs(udp->dest);
	__u32 *owner = bpf_map_lookup_elem(&ports, &port);
	if (!owner || *owner != ctx->rx_queue_index + 1)
		return XDP_PASS;
	// No socket on this queue (yet): the kernel's socket on the port has it.
	return bpf_redirect_map(&xsks, ctx->rx_queue_index, XDP_PASS);
}

char LICENSE[] SEC("license") = "Dual MIT/GPL";
