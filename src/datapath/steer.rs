//! Which worker owns a frame's flow.
//!
//! A flow belongs to exactly one worker: `owner = fnv1a(canonical key bytes) % workers`. The
//! hash is fixed (no random seed) so every worker computes the same owner for both directions
//! of a flow. The key is the outermost IP address pair ([`Steering::IpPair`], the default, so
//! fragments and tunnels meet their flows) or the TCP 5-tuple ([`Steering::Flow`]). This reads
//! only what the owner decision needs (Ethernet, two VLAN tags, the IP addresses, for the
//! 5-tuple IPv4 / IPv6 with a few extension headers and the TCP ports); anything else stays
//! with the worker that received it. The engine does its own full parse afterwards.

use crate::flow::FlowKey;

const ETH_IPV4: u16 = 0x0800;
const ETH_IPV6: u16 = 0x86DD;
const ETH_VLAN: u16 = 0x8100;
const ETH_QINQ: u16 = 0x88A8;
const PROTO_TCP: u8 = 6;
const V6_HOPOPTS: u8 = 0;
const V6_ROUTING: u8 = 43;
const V6_DSTOPTS: u8 = 60;
const MAX_V6_EXT: usize = 4;

fn be16(b: &[u8], at: usize) -> Option<u16> {
    let s = b.get(at..at.checked_add(2)?)?;
    Some(u16::from_be_bytes([*s.first()?, *s.get(1)?]))
}

/// The EtherType after at most two VLAN/QinQ tags, and where its header starts.
fn network_layer(frame: &[u8]) -> Option<(u16, usize)> {
    let mut off = 12usize;
    let mut ethertype = be16(frame, off)?;
    off += 2;
    for _ in 0..2 {
        if ethertype != ETH_VLAN && ethertype != ETH_QINQ {
            break;
        }
        ethertype = be16(frame, off + 2)?;
        off += 4;
    }
    Some((ethertype, off))
}

/// The canonical flow key of a TCP frame (Ethernet link layer), `None` for anything else or
/// anything malformed. Never panics.
pub fn tcp_flow_key(frame: &[u8]) -> Option<FlowKey> {
    let (ethertype, off) = network_layer(frame)?;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let (family, l4) = match ethertype {
        ETH_IPV4 => {
            let vihl = *frame.get(off)?;
            let ihl = usize::from(vihl & 0x0F) * 4;
            if vihl >> 4 != 4 || ihl < 20 {
                return None;
            }
            let frag = be16(frame, off + 6)?;
            if *frame.get(off + 9)? != PROTO_TCP || frag & 0x3FFF != 0 {
                return None;
            }
            src[..4].copy_from_slice(frame.get(off + 12..off + 16)?);
            dst[..4].copy_from_slice(frame.get(off + 16..off + 20)?);
            (4u8, off + ihl)
        }
        ETH_IPV6 => {
            if *frame.get(off)? >> 4 != 6 {
                return None;
            }
            src.copy_from_slice(frame.get(off + 8..off + 24)?);
            dst.copy_from_slice(frame.get(off + 24..off + 40)?);
            let mut next = *frame.get(off + 6)?;
            let mut at = off + 40;
            // The same few extension headers the XDP program walks; a fragment has no
            // trustworthy ports.
            for _ in 0..MAX_V6_EXT {
                match next {
                    V6_HOPOPTS | V6_ROUTING | V6_DSTOPTS => {
                        next = *frame.get(at)?;
                        let len = (usize::from(*frame.get(at + 1)?) + 1) * 8;
                        at = at.checked_add(len)?;
                    }
                    _ => break,
                }
            }
            if next != PROTO_TCP {
                return None;
            }
            (6u8, at)
        }
        _ => return None,
    };
    let sport = be16(frame, l4)?;
    let dport = be16(frame, l4 + 2)?;
    // The whole fixed TCP header must be there, as the XDP program requires.
    frame.get(l4 + 19)?;
    Some(canonical(family, src, sport, dst, dport))
}

/// Orders the endpoints: lexicographic on the address bytes, ties broken by host-order port.
pub fn canonical(family: u8, a: [u8; 16], aport: u16, b: [u8; 16], bport: u16) -> FlowKey {
    let a_lo = (a, aport) <= (b, bport);
    let ((lo_addr, lo_port), (hi_addr, hi_port)) = if a_lo {
        ((a, aport), (b, bport))
    } else {
        ((b, bport), (a, aport))
    };
    FlowKey {
        lo_addr,
        hi_addr,
        lo_port,
        hi_port,
        family,
        proto: PROTO_TCP,
        _pad: [0; 2],
    }
}

/// FNV-1a over the canonical key bytes (ports big-endian). Fixed, unseeded, direction-free.
pub fn owner_hash(k: &FlowKey) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut h = OFFSET;
    let mut eat = |b: u8| {
        h ^= u64::from(b);
        h = h.wrapping_mul(PRIME);
    };
    k.lo_addr.iter().for_each(|&b| eat(b));
    k.hi_addr.iter().for_each(|&b| eat(b));
    k.lo_port.to_be_bytes().iter().for_each(|&b| eat(b));
    k.hi_port.to_be_bytes().iter().for_each(|&b| eat(b));
    eat(k.family);
    eat(k.proto);
    h
}

/// What decides a frame's worker when there are several (`datapath.steering`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Hash, Default, serde::Deserialize, serde::Serialize,
)]
#[serde(rename_all = "snake_case")]
pub enum Steering {
    /// Every IP frame by its outermost address pair, whatever it carries: the fragments of a
    /// datagram and the unfragmented segments of the same flow, and both directions of a
    /// tunnel (whose outer UDP source ports differ), all meet on one worker. Fewer spread
    /// keys: a link of few host pairs uses few workers.
    #[default]
    IpPair,
    /// TCP by its 5-tuple, everything else where it arrived: the widest spread, but a flow's
    /// IP fragments and its tunnelled packets may be judged by another worker than the flow's.
    Flow,
}

/// The worker that owns a frame, `None` when the frame has no flow (it stays where it is).
pub fn owner(frame: &[u8], workers: usize, steering: Steering) -> Option<usize> {
    if workers <= 1 {
        return None;
    }
    let k = match steering {
        Steering::Flow => tcp_flow_key(frame)?,
        Steering::IpPair => ip_pair_key(frame)?,
    };
    Some((owner_hash(&k) % workers as u64) as usize)
}

/// The direction-free outermost address pair of an IPv4 or IPv6 frame (ports zero), for any
/// payload, fragment or not; `None` for non-IP or a header cut short.
pub fn ip_pair_key(frame: &[u8]) -> Option<FlowKey> {
    let (ethertype, off) = network_layer(frame)?;
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    let family = match ethertype {
        ETH_IPV4 if frame.get(off)? >> 4 == 4 => {
            src[..4].copy_from_slice(frame.get(off + 12..off + 16)?);
            dst[..4].copy_from_slice(frame.get(off + 16..off + 20)?);
            4u8
        }
        ETH_IPV6 if frame.get(off)? >> 4 == 6 => {
            src.copy_from_slice(frame.get(off + 8..off + 24)?);
            dst.copy_from_slice(frame.get(off + 24..off + 40)?);
            6u8
        }
        _ => return None,
    };
    Some(canonical(family, src, 0, dst, 0))
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A minimal Ethernet/IPv4/TCP frame (checksums zero; nothing here checks them).
    pub fn tcp4(src: [u8; 4], sport: u16, dst: [u8; 4], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 20 + 20];
        f[0..6].copy_from_slice(&[0x02, 0, 0, 0, 0, 2]);
        f[6..12].copy_from_slice(&[0x02, 0, 0, 0, 0, 1]);
        f[12..14].copy_from_slice(&ETH_IPV4.to_be_bytes());
        f[14] = 0x45;
        f[16..18].copy_from_slice(&40u16.to_be_bytes());
        f[22] = 64;
        f[23] = PROTO_TCP;
        f[26..30].copy_from_slice(&src);
        f[30..34].copy_from_slice(&dst);
        f[34..36].copy_from_slice(&sport.to_be_bytes());
        f[36..38].copy_from_slice(&dport.to_be_bytes());
        f[46] = 0x50;
        f[47] = 0x02;
        f
    }

    pub fn tcp6(src: [u8; 16], sport: u16, dst: [u8; 16], dport: u16) -> Vec<u8> {
        let mut f = vec![0u8; 14 + 40 + 20];
        f[12..14].copy_from_slice(&ETH_IPV6.to_be_bytes());
        f[14] = 0x60;
        f[18..20].copy_from_slice(&20u16.to_be_bytes());
        f[20] = PROTO_TCP;
        f[21] = 64;
        f[22..38].copy_from_slice(&src);
        f[38..54].copy_from_slice(&dst);
        f[54..56].copy_from_slice(&sport.to_be_bytes());
        f[56..58].copy_from_slice(&dport.to_be_bytes());
        f[66] = 0x50;
        f
    }

    fn vlan(mut f: Vec<u8>, tpid: u16, vid: u16) -> Vec<u8> {
        let mut tag = tpid.to_be_bytes().to_vec();
        tag.extend_from_slice(&vid.to_be_bytes());
        f.splice(12..12, tag);
        f
    }

    #[test]
    fn both_directions_get_the_same_key_and_owner() {
        let a = tcp4([10, 77, 0, 1], 40000, [10, 77, 0, 2], 80);
        let b = tcp4([10, 77, 0, 2], 80, [10, 77, 0, 1], 40000);
        let ka = tcp_flow_key(&a).unwrap();
        let kb = tcp_flow_key(&b).unwrap();
        assert_eq!(ka, kb);
        assert_eq!(ka.lo_addr[..4], [10, 77, 0, 1]);
        assert_eq!(ka.lo_port, 40000);
        assert_eq!(ka.hi_port, 80);
        for n in 2..8 {
            assert_eq!(owner(&a, n, Steering::Flow), owner(&b, n, Steering::Flow));
        }
    }

    #[test]
    fn same_address_orders_by_port() {
        let k = tcp_flow_key(&tcp4([1, 1, 1, 1], 9000, [1, 1, 1, 1], 80)).unwrap();
        assert_eq!((k.lo_port, k.hi_port), (80, 9000));
    }

    #[test]
    fn ipv6_and_vlan_tags_are_keyed() {
        let mut s = [0u8; 16];
        s[0] = 0xfd;
        s[15] = 2;
        let mut d = s;
        d[15] = 1;
        let k = tcp_flow_key(&tcp6(s, 443, d, 50000)).unwrap();
        assert_eq!(k.family, 6);
        assert_eq!(k.lo_addr, d);
        assert_eq!(k.lo_port, 50000);
        let tagged = vlan(
            vlan(tcp4([1, 0, 0, 1], 1, [1, 0, 0, 2], 2), 0x8100, 5),
            0x88A8,
            7,
        );
        assert_eq!(
            tcp_flow_key(&tagged),
            tcp_flow_key(&tcp4([1, 0, 0, 1], 1, [1, 0, 0, 2], 2))
        );
    }

    #[test]
    fn ipv6_extension_headers_are_walked() {
        let mut s = [0u8; 16];
        s[0] = 0xfd;
        let mut d = s;
        d[15] = 9;
        let plain = tcp6(s, 1000, d, 443);
        // Insert a hop-by-hop header (8 bytes) in front of TCP.
        let mut hbh = plain.clone();
        hbh[20] = 0; // next header: hop-by-hop
        hbh.splice(54..54, [6u8, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(tcp_flow_key(&hbh), tcp_flow_key(&plain));
        // A fragment header ends the walk without a key.
        let mut frag = plain.clone();
        frag[20] = 44;
        frag.splice(54..54, [6u8, 0, 0, 1, 0, 0, 0, 1]);
        assert_eq!(tcp_flow_key(&frag), None);
        // A hop-by-hop header that claims more bytes than the frame has.
        let mut long = hbh.clone();
        long[55] = 200;
        assert_eq!(tcp_flow_key(&long), None);
    }

    #[test]
    fn truncated_and_non_tcp_frames_have_no_key() {
        let f = tcp4([10, 0, 0, 1], 1, [10, 0, 0, 2], 2);
        for cut in 0..f.len() {
            assert_eq!(tcp_flow_key(&f[..cut]), None, "cut at {cut}");
        }
        let mut udp = f.clone();
        udp[23] = 17;
        assert_eq!(tcp_flow_key(&udp), None);
        let mut frag = f.clone();
        frag[20] = 0x20; // more fragments
        assert_eq!(tcp_flow_key(&frag), None);
        let mut bad_ihl = f;
        bad_ihl[14] = 0x44;
        assert_eq!(tcp_flow_key(&bad_ihl), None);
    }

    #[test]
    fn arbitrary_bytes_never_panic() {
        let mut x: u64 = 0x1234_5678_9abc_def1;
        let base = tcp4([10, 0, 0, 1], 1, [10, 0, 0, 2], 2);
        for len in 0..160usize {
            for _ in 0..50 {
                let mut f: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        x as u8
                    })
                    .collect();
                // Half the time keep a plausible Ethernet/IP prefix so deeper code runs.
                if x & 1 == 0 {
                    let n = len.min(24);
                    f[..n].copy_from_slice(&base[..n]);
                }
                let _ = tcp_flow_key(&f);
                let _ = owner(&f, 3, Steering::Flow);
                let _ = owner(&f, 3, Steering::IpPair);
            }
        }
    }

    #[test]
    fn owners_spread_over_workers() {
        let mut seen = [0usize; 2];
        for p in 0..64u16 {
            let f = tcp4([10, 77, 0, 1], 40000 + p, [10, 77, 0, 2], 80);
            seen[owner(&f, 2, Steering::Flow).unwrap()] += 1;
        }
        assert!(seen[0] > 8 && seen[1] > 8, "{seen:?}");
        let mut seen = [0usize; 2];
        for h in 0..64u8 {
            let f = tcp4([10, 77, 1, h], 40000, [10, 77, 0, 2], 80);
            seen[owner(&f, 2, Steering::IpPair).unwrap()] += 1;
        }
        assert!(seen[0] > 8 && seen[1] > 8, "{seen:?}");
        for steering in [Steering::Flow, Steering::IpPair] {
            assert_eq!(
                owner(&tcp4([1, 0, 0, 1], 1, [1, 0, 0, 2], 2), 1, steering),
                None
            );
        }
    }

    /// `inner` wrapped in IPv4/UDP/VXLAN from `src` to `dst`, outer UDP source port `sport`.
    fn vxlan(src: [u8; 4], dst: [u8; 4], sport: u16, inner: &[u8]) -> Vec<u8> {
        let mut f = tcp4(src, 0, dst, 0);
        f.truncate(14 + 20);
        f[23] = 17;
        f.extend_from_slice(&sport.to_be_bytes());
        f.extend_from_slice(&4789u16.to_be_bytes());
        f.extend_from_slice(&[0, 0, 0, 0, 0x08, 0, 0, 0, 0, 0, 77, 0]);
        f.extend_from_slice(inner);
        f
    }

    #[test]
    fn ip_pair_steering_keeps_fragments_and_tunnels_with_their_flow() {
        let syn = tcp4([10, 77, 0, 1], 40000, [10, 77, 0, 2], 443);
        let reply = tcp4([10, 77, 0, 2], 443, [10, 77, 0, 1], 40000);
        // The same flow's data split into IPv4 fragments: the first keeps the TCP header, a
        // later one carries no ports at all.
        let mut first = syn.clone();
        first[20] = 0x20; // more fragments
        let mut later = syn.clone();
        later[20..22].copy_from_slice(&0x0003u16.to_be_bytes()); // offset 24 bytes, last
        later[34..38].copy_from_slice(&[0xde, 0xad, 0xbe, 0xef]); // payload, not ports
                                                                  // IPv6: a fragment header between the fixed header and TCP.
        let mut a = [0u8; 16];
        a[0] = 0xfd;
        a[15] = 1;
        let mut b = a;
        b[15] = 2;
        let v6 = tcp6(a, 40000, b, 443);
        let mut v6_frag = v6.clone();
        v6_frag[20] = 44;
        v6_frag.splice(54..54, [6u8, 0, 0, 8, 0, 0, 0, 1]);
        // Both directions of a VXLAN overlay: the kernel picks each side's UDP source port
        // from the inner flow's hash, so the two directions differ outside.
        let out = vxlan([10, 77, 9, 1], [10, 77, 9, 2], 51000, &syn);
        let back = vxlan([10, 77, 9, 2], [10, 77, 9, 1], 38123, &reply);
        for workers in 2..9 {
            let o = |f: &[u8]| owner(f, workers, Steering::IpPair);
            assert!(o(&syn).is_some());
            for f in [&reply, &first, &later] {
                assert_eq!(o(f), o(&syn), "{workers} workers");
            }
            assert_eq!(o(&v6_frag), o(&v6), "{workers} workers");
            assert_eq!(o(&back), o(&out), "{workers} workers");
        }
        // The 5-tuple cannot place a later fragment: it stays where it arrived.
        assert_eq!(owner(&later, 4, Steering::Flow), None);
        assert_eq!(owner(&out, 4, Steering::Flow), None);
    }
}
