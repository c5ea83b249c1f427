//! Per-worker flow state: the direction-free key, the fixed-capacity table, and the in-order
//! stream prefix kept for inspection.

pub mod defrag;
pub mod key;
pub mod rtt;
pub mod stream;
pub mod table;

pub use key::{FlowHasher, FlowKey, Side};
pub use stream::{InsertOutcome, OverlapPolicy, StreamDir, StreamPool};
pub use table::{
    EndReason, Flow, FlowExt, FlowIdx, FlowTable, ListCounts, Lookup, RoleSource, SegmentMeta,
    TableConfig, TableStats, TcpState, Track,
};

/// Direction of a packet relative to the flow's roles.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum Dir {
    ToServer = 0,
    ToClient = 1,
}

impl Dir {
    pub fn index(self) -> usize {
        self as usize
    }
    pub fn reverse(self) -> Dir {
        match self {
            Dir::ToServer => Dir::ToClient,
            Dir::ToClient => Dir::ToServer,
        }
    }
}
