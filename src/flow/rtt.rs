//! Round-trip times of one TCP connection as the appliance sees them, at two layers.
//!
//! The appliance sits somewhere between client and server, so every round trip it can time is
//! a round trip from itself: a segment going one way and the packet that acknowledges it coming
//! back.
//!
//! - **Transport RTT, server side** (appliance → server → appliance): client SYN → server
//!   SYN/ACK, and client data → the server's first ACK that covers it.
//! - **Transport RTT, client side** (appliance → client → appliance): server SYN/ACK → the
//!   client's ACK, and server data → the client's ACK of it.
//! - **Application RTT**: the first client data segment of a request burst → the server's first
//!   data after it. A burst is the client's data since the server last sent any, as long as
//!   each segment follows the one before within twice the server-side RTT: a client whose stack
//!   holds a small segment back until the previous one is acknowledged (Nagle) sends one
//!   request in pieces an RTT apart, and the server may answer its first piece already; a
//!   longer pause starts a new burst (the client thought, the server was not waiting). A direct server answers in the server-side transport RTT plus its think
//!   time; a relay (a proxy that forwards to an origin elsewhere) adds its own leg to the
//!   origin, which its transport RTT, answered by the relay's own TCP stack, does not show.
//!
//! The estimator for the transport RTT is the minimum of the samples: delayed ACKs, queues and
//! a server's think time only ever add to a sample, never take away, so the minimum is the
//! path's own delay once one sample was not inflated (the handshake's almost never is). Samples
//! follow Karn's rule: a segment sent again before it was acknowledged gives no sample, since
//! the ACK cannot say which copy it answers.
//!
//! A server turn can hold two answers: a relay's TLS stack that answers the client's Finished
//! at once (session tickets) and then, one extra leg later, the origin's answer to the request
//! that came in the same burst. So after the first answer of a turn, server data that arrives
//! after the connection was quiet for a gap (at least the server-side RTT and the caller's
//! minimum) counts once more, timed from the same burst: a *continuation*.
//!
//! Fixed size, no allocation: the state is [`RttState`], one per flow, and a pair is reported
//! as it completes ([`RttSample`]); what to conclude from the pairs is the detector's.

use crate::capture::Timestamp;
use crate::flow::Dir;

/// Round trips are kept in microseconds (u32: up to 71 minutes, far beyond any timeout).
fn micros(ns: u64) -> u32 {
    u32::try_from(ns / 1_000).unwrap_or(u32::MAX)
}

/// `a` is at or after `b` in sequence space (RFC 1982 arithmetic, 2^31 window).
fn seq_ge(a: u32, b: u32) -> bool {
    (a.wrapping_sub(b) as i32) >= 0
}

/// What one packet brings to the RTT state: its direction and TCP header fields.
#[derive(Debug, Clone, Copy)]
pub struct Segment {
    pub dir: Dir,
    pub syn: bool,
    pub fin: bool,
    pub ack: bool,
    pub rst: bool,
    pub seq: u32,
    pub ack_no: u32,
    /// Payload length from the IP header (not what the capture kept).
    pub len: u32,
    pub ts: Timestamp,
}

/// One request/response pair (or continuation), with the transport RTTs known when it closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RttSample {
    /// Client burst's first data → the server's answer, microseconds.
    pub app_us: u32,
    /// Minimum server-side transport RTT so far, microseconds.
    pub server_us: u32,
    /// Minimum client-side transport RTT so far, microseconds (0: none yet).
    pub client_us: u32,
    /// A later answer in the same server turn (see the module docs).
    pub continuation: bool,
}

impl RttSample {
    /// What the application round trip adds to the transport one: think time, or a relay's leg.
    pub fn excess_us(&self) -> u32 {
        self.app_us.saturating_sub(self.server_us)
    }
}

/// Added to twice the server-side RTT for the gap that still joins a burst (capture timestamps
/// and the client's own scheduling).
const BURST_SLACK_NS: u64 = 1_000_000;

const AWAITING: u8 = 1;
const CONTINUATION_OPEN: u8 = 2;
const PENDING_TO_SERVER: u8 = 4;
const PENDING_TO_CLIENT: u8 = 8;

fn pending_bit(dir: Dir) -> u8 {
    match dir {
        Dir::ToServer => PENDING_TO_SERVER,
        Dir::ToClient => PENDING_TO_CLIENT,
    }
}

/// Per-flow round-trip state: 64 bytes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RttState {
    /// The segment per sending direction ([`Dir::index`]) whose ACK is awaited: when it was
    /// seen and the sequence number that acknowledges it.
    pending_at: [Timestamp; 2],
    pending_end: [u32; 2],
    /// Minimum transport RTT per side in microseconds, by the direction of the timed segment:
    /// `[ToServer]` is the server side, `[ToClient]` the client side; 0: no sample yet.
    transport_min_us: [u32; 2],
    /// When the client's latest request burst started and when its last data segment came.
    burst_start: Timestamp,
    burst_end: Timestamp,
    /// The latest packet of the flow, either way (for the continuation's quiet gap).
    last_packet: Timestamp,
    flags: u8,
    /// Pairs and continuations reported so far (saturating).
    pub samples: u8,
}

const _: () = assert!(std::mem::size_of::<RttState>() <= 64);

impl RttState {
    /// Minimum server-side transport RTT in microseconds, if any was timed.
    pub fn server_rtt_us(&self) -> Option<u32> {
        let v = self.transport_min_us[Dir::ToServer.index()];
        (v != 0).then_some(v)
    }

    /// Minimum client-side transport RTT in microseconds, if any was timed.
    pub fn client_rtt_us(&self) -> Option<u32> {
        let v = self.transport_min_us[Dir::ToClient.index()];
        (v != 0).then_some(v)
    }

    fn set(&mut self, bit: u8, on: bool) {
        if on {
            self.flags |= bit;
        } else {
            self.flags &= !bit;
        }
    }

    fn has(&self, bit: u8) -> bool {
        self.flags & bit != 0
    }

    /// Takes one packet of the flow, in capture order; returns the pair it completed, if any.
    /// `min_gap_ns` is the least quiet time before a continuation (the detector's minimum
    /// extra leg); the server-side RTT is the floor of that gap. A pair completed before the
    /// server-side RTT is known is not reported: it could not be judged.
    #[inline]
    pub fn observe(&mut self, s: &Segment, min_gap_ns: u64) -> Option<RttSample> {
        let d = s.dir.index();
        let other = s.dir.reverse();
        if s.rst {
            // Nothing after a reset answers anything that came before it.
            self.flags &= !(AWAITING | CONTINUATION_OPEN | PENDING_TO_SERVER | PENDING_TO_CLIENT);
            self.last_packet = s.ts;
            return None;
        }
        // The other direction's timed segment, if this packet acknowledges it.
        if s.ack
            && self.has(pending_bit(other))
            && seq_ge(s.ack_no, self.pending_end[other.index()])
        {
            let rtt = micros(s.ts.since(self.pending_at[other.index()])).max(1);
            let min = &mut self.transport_min_us[other.index()];
            if *min == 0 || rtt < *min {
                *min = rtt;
            }
            self.set(pending_bit(other), false);
        }
        let advance = s.len + u32::from(s.syn) + u32::from(s.fin);
        if advance > 0 {
            let end = s.seq.wrapping_add(advance);
            if !self.has(pending_bit(s.dir)) {
                self.pending_at[d] = s.ts;
                self.pending_end[d] = end;
                self.set(pending_bit(s.dir), true);
            } else if !seq_ge(s.seq, self.pending_end[d]) {
                // Sent again (or overlapping) before the ACK: Karn's rule, no sample.
                self.set(pending_bit(s.dir), false);
            }
        }
        let quiet = s.ts.since(self.last_packet);
        self.last_packet = s.ts;
        if s.len == 0 {
            return None;
        }
        let answered_at = match s.dir {
            Dir::ToServer => {
                let server_ns = u64::from(self.transport_min_us[0]) * 1_000;
                let joins = self.has(AWAITING)
                    && server_ns != 0
                    && s.ts.since(self.burst_end) <= 2 * server_ns + BURST_SLACK_NS;
                if !joins {
                    self.burst_start = s.ts;
                }
                self.burst_end = s.ts;
                self.set(AWAITING, true);
                self.set(CONTINUATION_OPEN, false);
                return None;
            }
            Dir::ToClient if self.has(AWAITING) => {
                self.set(AWAITING, false);
                self.set(CONTINUATION_OPEN, true);
                false
            }
            Dir::ToClient if self.has(CONTINUATION_OPEN) => {
                let server_ns = u64::from(self.transport_min_us[0]) * 1_000;
                if quiet < min_gap_ns.max(server_ns) {
                    return None;
                }
                self.set(CONTINUATION_OPEN, false);
                true
            }
            Dir::ToClient => return None,
        };
        let server_us = self.server_rtt_us()?;
        self.samples = self.samples.saturating_add(1);
        Some(RttSample {
            app_us: micros(s.ts.since(self.burst_start)),
            server_us,
            client_us: self.transport_min_us[Dir::ToClient.index()],
            continuation: answered_at,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: u64 = 1_000_000;

    /// A scripted connection: the client at sequence 1000, the server at 5000.
    struct Conn {
        st: RttState,
        seq: [u32; 2],
        got: Vec<RttSample>,
    }

    impl Conn {
        fn new() -> Conn {
            Conn {
                st: RttState::default(),
                seq: [1000, 5000],
                got: Vec::new(),
            }
        }

        fn send(&mut self, dir: Dir, at_ms: u64, len: u32, syn: bool) {
            let d = dir.index();
            let s = Segment {
                dir,
                syn,
                fin: false,
                ack: !(syn && dir == Dir::ToServer),
                rst: false,
                seq: self.seq[d],
                ack_no: self.seq[1 - d],
                len,
                ts: Timestamp(at_ms * MS),
            };
            self.seq[d] = self.seq[d].wrapping_add(len + u32::from(syn));
            if let Some(x) = self.st.observe(&s, 10 * MS) {
                self.got.push(x);
            }
        }

        /// SYN at `t`, SYN/ACK after `srv` ms, ACK `cli` ms after that.
        fn handshake(&mut self, t: u64, srv: u64, cli: u64) {
            self.send(Dir::ToServer, t, 0, true);
            self.send(Dir::ToClient, t + srv, 0, true);
            self.send(Dir::ToServer, t + srv + cli, 0, false);
        }
    }

    #[test]
    fn handshake_times_both_sides() {
        let mut c = Conn::new();
        c.handshake(0, 20, 3);
        assert_eq!(c.st.server_rtt_us(), Some(20_000));
        assert_eq!(c.st.client_rtt_us(), Some(3_000));
        assert!(c.got.is_empty());
    }

    #[test]
    fn direct_answer_shows_no_excess_and_relayed_one_shows_the_leg() {
        let mut c = Conn::new();
        c.handshake(0, 20, 1);
        // A direct server: answered one transport RTT (plus 1 ms) after the request.
        c.send(Dir::ToServer, 30, 300, false);
        c.send(Dir::ToClient, 51, 1400, false);
        c.send(Dir::ToServer, 52, 0, false);
        // The same connection behind a relay 80 ms from its origin.
        c.send(Dir::ToServer, 100, 200, false);
        c.send(Dir::ToClient, 120, 0, false); // the relay's own ACK
        c.send(Dir::ToClient, 201, 900, false);
        assert_eq!(c.got.len(), 2);
        assert_eq!(c.got[0].excess_us(), 1_000);
        assert_eq!(c.got[1].app_us, 101_000);
        assert_eq!(c.got[1].excess_us(), 81_000);
        assert!(c.got.iter().all(|s| !s.continuation));
        assert_eq!(c.st.server_rtt_us(), Some(20_000), "the minimum holds");
        assert_eq!(c.st.samples, 2);
    }

    #[test]
    fn a_quiet_gap_in_the_server_turn_is_a_continuation_once() {
        let mut c = Conn::new();
        c.handshake(0, 20, 1);
        c.send(Dir::ToServer, 30, 100, false);
        c.send(Dir::ToClient, 50, 200, false); // tickets, at once
        c.send(Dir::ToServer, 51, 0, false);
        c.send(Dir::ToClient, 55, 100, false); // not quiet long enough: same answer
        c.send(Dir::ToClient, 150, 1400, false); // the origin, 100 ms after the burst
        c.send(Dir::ToClient, 300, 1400, false); // quiet again: only one continuation per turn
        assert_eq!(c.got.len(), 2);
        assert!(!c.got[0].continuation);
        assert!(c.got[1].continuation);
        assert_eq!(c.got[1].app_us, 120_000);
    }

    #[test]
    fn a_request_split_by_nagle_is_timed_from_its_first_piece() {
        let mut c = Conn::new();
        c.handshake(0, 20, 1);
        // The Finished, then the GET held back until the Finished was acknowledged.
        c.send(Dir::ToServer, 100, 114, false);
        c.send(Dir::ToClient, 120, 0, false);
        c.send(Dir::ToServer, 121, 217, false);
        c.send(Dir::ToClient, 201, 254, false); // the origin's answer to the Finished
                                                // A request after the client paused longer than twice the RTT is a new burst.
        c.send(Dir::ToServer, 300, 50, false);
        c.send(Dir::ToServer, 350, 50, false);
        c.send(Dir::ToClient, 371, 50, false);
        assert_eq!(c.got.len(), 2);
        assert_eq!(c.got[0].app_us, 101_000);
        assert_eq!(c.got[1].app_us, 21_000);
    }

    #[test]
    fn retransmitted_segments_give_no_transport_sample() {
        let mut c = Conn::new();
        c.handshake(0, 20, 1);
        let s = |seq, ts_ms, dir, len, ack_no| Segment {
            dir,
            syn: false,
            fin: false,
            ack: true,
            rst: false,
            seq,
            ack_no,
            len,
            ts: Timestamp(ts_ms * MS),
        };
        // Data at 100, sent again at 300, acked at 305: the ACK may answer either copy.
        c.st.observe(&s(1001, 100, Dir::ToServer, 10, 5001), 10 * MS);
        c.st.observe(&s(1001, 300, Dir::ToServer, 10, 5001), 10 * MS);
        c.st.observe(&s(5001, 305, Dir::ToClient, 0, 1011), 10 * MS);
        assert_eq!(c.st.server_rtt_us(), Some(20_000));
        // The next segment is timed again.
        c.st.observe(&s(1011, 400, Dir::ToServer, 10, 5001), 10 * MS);
        c.st.observe(&s(5001, 412, Dir::ToClient, 0, 1021), 10 * MS);
        assert_eq!(c.st.server_rtt_us(), Some(12_000));
    }

    #[test]
    fn pairs_before_any_transport_rtt_are_not_reported() {
        // A flow picked up mid-stream: the client's request is answered by server data that
        // also acknowledges it, so that answer is the first transport sample too (inflated by
        // the think time, which only makes excesses smaller: never a relay by mistake).
        let mut c = Conn::new();
        c.send(Dir::ToClient, 0, 100, false);
        assert!(c.got.is_empty(), "server data with no request before it");
        c.send(Dir::ToServer, 10, 100, false);
        c.send(Dir::ToClient, 100, 100, false);
        assert_eq!(c.st.server_rtt_us(), Some(90_000));
        assert_eq!(c.got.len(), 1);
        assert_eq!(c.got[0].excess_us(), 0);
        // Without any transport sample, an answer is not reported.
        let mut d = Conn::new();
        d.send(Dir::ToServer, 0, 100, false);
        d.st.flags &= !PENDING_TO_SERVER; // as if its ACK were never seen
        d.send(Dir::ToClient, 90, 100, false);
        assert!(d.got.is_empty());
        assert_eq!(d.st.samples, 0);
    }

    #[test]
    fn sequence_wrap_and_reset() {
        let mut c = Conn::new();
        c.seq = [u32::MAX - 5, 7];
        c.handshake(0, 10, 1);
        c.send(Dir::ToServer, 20, 100, false); // wraps past 0
        c.send(Dir::ToClient, 31, 0, false);
        assert_eq!(c.st.server_rtt_us(), Some(10_000));
        let rst = Segment {
            dir: Dir::ToClient,
            syn: false,
            fin: false,
            ack: true,
            rst: true,
            seq: 0,
            ack_no: 0,
            len: 0,
            ts: Timestamp(40 * MS),
        };
        c.send(Dir::ToServer, 35, 10, false);
        assert!(c.st.observe(&rst, 10 * MS).is_none());
        c.send(Dir::ToClient, 45, 10, false);
        assert!(c.got.is_empty(), "a reset ends the pending request");
    }
}
