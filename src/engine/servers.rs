//! Per-worker memory of servers: how many judged flows each recent server had and how many of
//! them opened with a fully encrypted payload. "Every flow to this server looks random" is a
//! far stronger sign of a fully encrypted proxy than one random-looking flow, which a game, a
//! VPN or a compressed upload can produce.
//!
//! Fixed size, direct-mapped, allocated once: a new server takes the slot of whatever hashed
//! there (the older server loses its history, never the worker its memory), and a slot idle
//! longer than the window starts over.

use std::net::IpAddr;

use crate::capture::Timestamp;
use crate::inspect::ServerTally;

#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    /// Hash of (address, port); 0 marks an empty slot.
    tag: u64,
    last_seen_secs: u64,
    tally: ServerTally,
}

pub struct ServerHistory {
    slots: Box<[Slot]>,
    mask: usize,
    window_secs: u64,
}

impl ServerHistory {
    /// `capacity` is rounded up to a power of two (at least 1).
    pub fn new(capacity: usize, window_secs: u64) -> ServerHistory {
        let n = capacity.max(1).next_power_of_two();
        ServerHistory {
            slots: vec![Slot::default(); n].into_boxed_slice(),
            mask: n - 1,
            window_secs,
        }
    }

    /// Counts one judged flow to `addr:port` and returns the server's tally with it.
    pub fn record(
        &mut self,
        addr: IpAddr,
        port: u16,
        fully_encrypted: bool,
        now: Timestamp,
    ) -> ServerTally {
        let tag = server_tag(addr, port);
        let slot = &mut self.slots[(tag as usize) & self.mask];
        let now_secs = now.secs();
        let stale = now_secs.saturating_sub(slot.last_seen_secs) > self.window_secs;
        if slot.tag != tag || stale {
            *slot = Slot {
                tag,
                ..Slot::default()
            };
        }
        slot.last_seen_secs = now_secs;
        slot.tally.judged = slot.tally.judged.saturating_add(1);
        slot.tally.fully_encrypted = slot
            .tally
            .fully_encrypted
            .saturating_add(u32::from(fully_encrypted));
        slot.tally
    }

    pub fn capacity(&self) -> usize {
        self.slots.len()
    }
}

/// FNV-1a over the address and port; never 0, so 0 can mark an empty slot.
fn server_tag(addr: IpAddr, port: u16) -> u64 {
    let mut h = 0xcbf2_9ce4_8422_2325u64;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    };
    match addr {
        IpAddr::V4(a) => a.octets().iter().for_each(|b| eat(*b)),
        IpAddr::V6(a) => a.octets().iter().for_each(|b| eat(*b)),
    }
    port.to_be_bytes().iter().for_each(|b| eat(*b));
    h | 1
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    const A: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 7));
    const B: IpAddr = IpAddr::V4(Ipv4Addr::new(192, 0, 2, 8));

    #[test]
    fn counts_per_server_and_port() {
        let mut h = ServerHistory::new(1024, 3600);
        let t = Timestamp::from_secs_nanos(1000, 0);
        h.record(A, 8388, true, t);
        h.record(A, 8388, true, t);
        let tally = h.record(A, 8388, false, t);
        assert_eq!(
            tally,
            ServerTally {
                judged: 3,
                fully_encrypted: 2
            }
        );
        let other = h.record(A, 443, false, t);
        assert_eq!(
            other,
            ServerTally {
                judged: 1,
                fully_encrypted: 0
            }
        );
        assert_eq!(h.record(B, 8388, true, t).judged, 1);
    }

    #[test]
    fn history_older_than_the_window_starts_over() {
        let mut h = ServerHistory::new(16, 60);
        h.record(A, 1, true, Timestamp::from_secs_nanos(100, 0));
        let later = h.record(A, 1, true, Timestamp::from_secs_nanos(161, 0));
        assert_eq!(later.judged, 1);
        let soon = h.record(A, 1, true, Timestamp::from_secs_nanos(200, 0));
        assert_eq!(soon.judged, 2);
    }

    #[test]
    fn a_colliding_server_takes_the_slot_over() {
        let mut h = ServerHistory::new(1, 3600);
        let t = Timestamp::from_secs_nanos(1, 0);
        h.record(A, 1, true, t);
        assert_eq!(h.record(B, 1, true, t).judged, 1);
        assert_eq!(h.record(A, 1, true, t).judged, 1);
    }
}
