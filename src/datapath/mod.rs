//! Packet I/O: capture files, and (in the live appliance) the XDP program and AF_XDP sockets.
//! The only module allowed to use `unsafe`.
//!
//! - [`bpf`]: load / attach / detach the XDP program, its maps and counters.
//! - [`xsk`]: one worker's AF_XDP sockets (shared UMEM) as a [`crate::capture::PacketSource`].
//! - [`steer`]: which worker owns a flow (handoffs when RSS is not symmetric).
//! - [`live`]: the runtime that ties them together ([`live::run`]).
//! - [`diag`]: trivial frame handlers for diagnostics and namespace tests.
//!
//! # Steering (bpf/unmask.bpf.c)
//!
//! | frame | inline | tap |
//! |---|---|---|
//! | not TCP (ARP, ICMP, UDP, ...) | bridged to the peer port in the kernel (devmap) | dropped |
//! | TCP, flow in the block map | dropped | dropped |
//! | TCP, flow in the bypass map | bridged in the kernel | dropped |
//! | TCP, or unsure (fragment, broken IP/TCP header) | AF_XDP socket of (port, rx queue) | same |
//! | ... no socket bound (daemon dead), fail-open | bridged in the kernel | passed to the host |
//! | ... no socket bound, fail-closed | dropped | dropped |
//!
//! A tap port receives a mirror copy that nothing on the host consumes; passing it up would
//! make the host stack act on other machines' traffic, so tap mode drops what it does not hand
//! to a worker. Every exit is counted once under its reason and once under its XDP action.
//!
//! # Lifecycle
//!
//! The program is attached through netlink (not a bpf_link) so it keeps bridging after the
//! daemon dies. A start refuses a port with a foreign XDP program (identified by name), and
//! replaces an earlier unmask program atomically (`XDP_FLAGS_REPLACE` with the old fd). A
//! graceful stop (SIGINT / SIGTERM) detaches from every port; nothing is pinned, so the maps go
//! with the last file descriptor.
//!
//! # Workers, queues and symmetric RSS
//!
//! Worker i owns queue i of both ports: its sockets share one UMEM, so forwarding is a TX
//! descriptor on the other port's socket. Configure the NIC with as many combined queues as
//! workers (`ethtool -L <if> combined N`); a frame on a queue without a socket takes the
//! fail-mode path.
//!
//! A flow belongs to one worker (`steer::owner`): a fixed hash of the direction-free outermost
//! IP address pair (`datapath.steering = "ip_pair"`, the default, so a flow's IP fragments and
//! both directions of a tunnel meet on its worker) or of the TCP 5-tuple (`"flow"`). When
//! the NIC's RSS puts a frame on another queue, the receiving worker copies the frame into the
//! owner's lock-free queue (a "handoff", counted) and the owner judges and sends it. Symmetric
//! RSS over the same fields avoids handoffs, on both ports:
//!
//! ```text
//! # a symmetric Toeplitz key (0x6d5a repeated) and the IP fields (ip_pair; "sdfn" adds the
//! # ports, for steering = "flow") in the hash:
//! ethtool -X <if> hfunc toeplitz hkey 6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a:6d:5a
//! ethtool -N <if> rx-flow-hash tcp4 sd
//! ethtool -N <if> rx-flow-hash tcp6 sd
//! # or, on NICs that offer it (ice, mlx5 on recent kernels), the symmetric XOR transform:
//! ethtool -X <if> hfunc toeplitz symmetric-xor
//! ```
//!
//! Both ports need the same key and the same queue count, so that a flow's reply arrives on
//! the same queue index at port B as its request at port A. veth has no RSS: its receive queue
//! follows the sender, which is why the two-queue lab test sees handoffs.

#![allow(unsafe_code)]

pub mod bpf;
pub mod diag;
pub mod live;
pub mod privilege;
pub mod steer;
pub mod xsk;

pub use bpf::{Topology, XdpMode};
pub use live::{run, stop_on_signals, LiveError, LiveSetup, RunReport};
pub use xsk::{PollMode, XskConfig, ZeroCopy};
