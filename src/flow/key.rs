//! The direction-free flow key: both directions of a connection map to the same key.

use crate::wire::{Family, TcpPacket};

/// A TCP connection's endpoints in canonical order: `lo` is the endpoint whose (address bytes,
/// port) pair sorts first. Layout matches `struct unmask_flow_key` in bpf/unmask_shared.h,
/// except that ports here are host order (the datapath converts when it writes the BPF map).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(C)]
pub struct FlowKey {
    pub lo_addr: [u8; 16],
    pub hi_addr: [u8; 16],
    pub lo_port: u16,
    pub hi_port: u16,
    pub family: u8,
    pub proto: u8,
    pub _pad: [u8; 2],
}

const _: () = assert!(std::mem::size_of::<FlowKey>() == 40);

/// Which endpoint of the key sent a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Side {
    Lo,
    Hi,
}

impl FlowKey {
    /// The key of a packet's flow, and which end of it sent the packet.
    pub fn from_tcp(p: &TcpPacket<'_>) -> (FlowKey, Side) {
        let _ = p;
        unimplemented!("flow key lands with the flow branch")
    }

    pub fn family(&self) -> Family {
        if self.family == 6 {
            Family::V6
        } else {
            Family::V4
        }
    }

    /// A well-mixed 64-bit hash of the key (the same on both directions).
    pub fn hash64(&self) -> u64 {
        unimplemented!("flow key hash lands with the flow branch")
    }
}
