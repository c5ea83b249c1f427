//! unmask: an inline appliance that unmasks traffic impersonating another protocol or service
//! (MITRE ATT&CK T1001.003, analytic DET0470) and drops it in line when asked (M1031).
//!
//! ```text
//!  NIC A ──► XDP program (bpf/) ──┬─ non-TCP ──────────────────────────► devmap ─► NIC B
//!                                 ├─ TCP, flow in block map ─► XDP_DROP
//!                                 ├─ TCP, flow in bypass map ─► devmap ─► NIC B
//!                                 └─ TCP ─► XSKMAP[port, rx queue] ─► AF_XDP socket of worker i
//!
//!  worker i (pinned to core i, owns its flows):
//!    source batch ─► wire::parse ─► flow table ─► stream ─► proto ─► detect ─► verdict
//!                                                          alerts ─► EVE thread   forward / drop
//! ```
//!
//! The same [`engine::Engine`] runs on capture files (`unmask replay`) and on AF_XDP rings
//! (`unmask run`): the packet source is a trait ([`capture::PacketSource`]).

#![deny(unsafe_code)]

pub mod app;
pub mod capture;
pub mod config;
pub mod datapath;
pub mod detect;
pub mod engine;
pub mod fixtures;
pub mod flow;
pub mod host;
pub mod inspect;
pub mod output;
pub mod proto;
pub mod text;
pub mod verdict;
pub mod wire;
