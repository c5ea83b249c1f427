//! Packet I/O: capture files, and (in the live appliance) the XDP program and AF_XDP sockets.
//! The only module allowed to use `unsafe`.
//!
//! - [`bpf`]: load / attach / detach the XDP program, its maps and counters.
//! - [`xsk`]: one worker's AF_XDP sockets (shared UMEM) as a [`crate::source::PacketSource`].
//! - [`steer`]: which worker owns a flow (handoffs when RSS is not symmetric).
//! - [`live`]: the runtime that ties them together ([`live::run`]).
//! - [`diag`]: trivial frame handlers for diagnostics and namespace tests.

#![allow(unsafe_code)]

pub mod bpf;
pub mod diag;
pub mod live;
pub mod pcap;
pub mod steer;
pub mod xsk;

pub use bpf::{Topology, XdpMode};
pub use live::{run, stop_on_signals, LiveError, LiveSetup, RunReport};
pub use xsk::{PollMode, XskConfig, ZeroCopy};
