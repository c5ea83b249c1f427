//! Community ID v1 (corelight/community-id-spec): a flow hash that Suricata, Zeek, Arkime and
//! most SIEM pipelines compute the same way, so an analyst can join unmask's records with other
//! sensors' records of the same connection.
//!
//! The hash is SHA-1 over, in network byte order: the seed (2 bytes), the two addresses, the IP
//! protocol (1 byte), one zero byte, and the two ports; the endpoint with the smaller address
//! (then the smaller port) goes first, so both directions of a flow hash alike. The result is
//! written "1:" followed by the digest in standard base64.
//!
//! It is computed on the EVE writer thread from a record's [`FlowMeta`], never by a worker. It
//! still allocates nothing (a fixed-size result), so it costs the writer one SHA-1 block.

use std::cell::RefCell;

use sha1::{Digest, Sha1};

use crate::engine::record::FlowMeta;
use crate::wire::Family;

/// IANA protocol number of TCP, the one transport unmask tracks.
pub const PROTO_TCP: u8 = 6;

/// A 20-byte digest is 28 base64 characters (the last one padding), after the "1:" version.
const ID_LEN: usize = 2 + 28;

/// One Community ID v1 string, held inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct CommunityId([u8; ID_LEN]);

impl CommunityId {
    pub fn as_str(&self) -> &str {
        // Only "1:" and base64 characters are ever written, all ASCII.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }
}

impl std::fmt::Display for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl std::fmt::Debug for CommunityId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "CommunityId({})", self.as_str())
    }
}

/// One side of a flow: its address bytes (4 for IPv4, 16 for IPv6) and port.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct Endpoint<'a> {
    pub addr: &'a [u8],
    pub port: u16,
}

/// The Community ID v1 of a flow between `a` and `b`, in either order.
pub fn community_id_v1(seed: u16, proto: u8, a: Endpoint<'_>, b: Endpoint<'_>) -> CommunityId {
    // Field order makes the derived ordering the spec's: address bytes first (byte-wise, which
    // for network-order bytes is numeric order), then port.
    let (lo, hi) = if a <= b { (a, b) } else { (b, a) };
    let mut h = Sha1::new();
    h.update(seed.to_be_bytes());
    h.update(lo.addr);
    h.update(hi.addr);
    h.update([proto, 0]);
    h.update(lo.port.to_be_bytes());
    h.update(hi.port.to_be_bytes());
    let digest: [u8; 20] = h.finalize().into();
    let mut out = [0u8; ID_LEN];
    out[..2].copy_from_slice(b"1:");
    crate::text::base64_into(&digest, &mut out[2..]);
    CommunityId(out)
}

/// The Community ID of the flow a record belongs to. The engine orients flows client/server,
/// which the ordering above makes irrelevant: both orientations give the same ID.
pub fn for_flow(seed: u16, meta: &FlowMeta) -> CommunityId {
    // IPv4 addresses sit in the first 4 bytes of the 16-byte fields; only those are hashed.
    let len = match meta.family {
        Family::V4 => 4,
        Family::V6 => 16,
    };
    community_id_v1(
        seed,
        PROTO_TCP,
        Endpoint {
            addr: &meta.client_addr[..len],
            port: meta.client_port,
        },
        Endpoint {
            addr: &meta.server_addr[..len],
            port: meta.server_port,
        },
    )
}

/// What a flow's Community ID depends on.
#[derive(Clone, Copy, PartialEq, Eq)]
struct FlowTuple {
    seed: u16,
    family: Family,
    client_addr: [u8; 16],
    client_port: u16,
    server_addr: [u8; 16],
    server_port: u16,
}

const CACHED: usize = 256;

thread_local! {
    /// The IDs this thread worked out last, by flow_id. A flow's records (its tls record,
    /// alerts, flow record) mostly reach the EVE writer close together: on a real mix half of
    /// them find their flow's ID here, and the SHA-1 was a quarter of writing a record's head.
    static RECENT: RefCell<[Option<(FlowTuple, CommunityId)>; CACHED]> =
        const { RefCell::new([None; CACHED]) };
}

/// [`for_flow`], remembered for the flows seen last. The whole tuple is compared, so a flow_id
/// that two flows share (another worker's, a later run's) can only miss, never give the other
/// flow's ID.
pub fn for_flow_cached(seed: u16, meta: &FlowMeta) -> CommunityId {
    let tuple = FlowTuple {
        seed,
        family: meta.family,
        client_addr: meta.client_addr,
        client_port: meta.client_port,
        server_addr: meta.server_addr,
        server_port: meta.server_port,
    };
    let slot = (meta.flow_id % CACHED as u64) as usize;
    RECENT.with_borrow_mut(|recent| match recent.get_mut(slot) {
        Some(Some((t, id))) if *t == tuple => *id,
        Some(entry) => {
            let id = for_flow(seed, meta);
            *entry = Some((tuple, id));
            id
        }
        None => for_flow(seed, meta),
    })
}

#[cfg(test)]
mod tests {
    use std::net::IpAddr;

    use super::*;

    fn octets(ip: &str) -> Vec<u8> {
        match ip.parse::<IpAddr>().unwrap() {
            IpAddr::V4(a) => a.octets().to_vec(),
            IpAddr::V6(a) => a.octets().to_vec(),
        }
    }

    fn id(seed: u16, proto: u8, src: &str, sport: u16, dst: &str, dport: u16) -> String {
        let (s, d) = (octets(src), octets(dst));
        community_id_v1(
            seed,
            proto,
            Endpoint {
                addr: &s,
                port: sport,
            },
            Endpoint {
                addr: &d,
                port: dport,
            },
        )
        .to_string()
    }

    /// The port-based rows of the spec's published baseline (baseline/README.md tables and
    /// baseline_deflt.json / baseline_seed1.json in corelight/community-id-spec): proto, src,
    /// sport, dst, dport, ID with seed 0, ID with seed 1. Every row is also checked reversed.
    const BASELINE: &[(u8, &str, u16, &str, u16, &str, &str)] = &[
        (
            6,
            "1.2.3.4",
            1122,
            "5.6.7.8",
            3344,
            "1:wCb3OG7yAFWelaUydu0D+125CLM=",
            "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk=",
        ),
        (
            17,
            "1.2.3.4",
            1122,
            "5.6.7.8",
            3344,
            "1:0Mu9InQx6z4ZiCZM/7HXi2WMhOg=",
            "1:OShq+iKDAMVouh/4bMxB9Sz4amw=",
        ),
        (
            132,
            "1.2.3.4",
            1122,
            "5.6.7.8",
            3344,
            "1:EKt4MsxuyaE6mL+hmrEkQ9csDD8=",
            "1:uitchpn5MMGAQKBJh7bIr/bAr7s=",
        ),
        (
            6,
            "2001:470:e5bf:dead:4957:2174:e82c:4887",
            63943,
            "2607:f8b0:400c:c03::1a",
            25,
            "1:/qFaeAR+gFe1KYjMzVDsMv+wgU4=",
            "1:eJYTW6AOzFLlSUoESovMjnu7rMw=",
        ),
        (
            6,
            "128.232.110.120",
            34855,
            "66.35.250.204",
            80,
            "1:LQU9qZlK+B5F3KDmev6m5PMibrg=",
            "1:3V71V58M3Ksw/yuFALMcW0LAHvc=",
        ),
        (
            17,
            "192.168.1.52",
            54585,
            "8.8.8.8",
            53,
            "1:d/FP5EW3wiY1vCndhwleRRKHowQ=",
            "1:Q9We8WO3piVF8yEQBNJF4uiSVrI=",
        ),
        // Equal ports: only the addresses order the endpoints.
        (
            132,
            "192.168.170.8",
            7,
            "192.168.170.56",
            7,
            "1:MP2EtRCAUIZvTw6MxJHLV7N7JDs=",
            "1:5w3ZRjeKBzqT3zsaEECDGjUbYeg=",
        ),
    ];

    #[test]
    fn matches_the_spec_baseline_in_both_directions_and_seeds() {
        for &(proto, src, sport, dst, dport, seed0, seed1) in BASELINE {
            for (seed, want) in [(0, seed0), (1, seed1)] {
                assert_eq!(id(seed, proto, src, sport, dst, dport), want, "{src} {dst}");
                assert_eq!(id(seed, proto, dst, dport, src, sport), want, "{dst} {src}");
            }
        }
    }

    #[test]
    fn same_address_is_ordered_by_port() {
        // A flow to itself: only the ports order the endpoints. Expected values are the
        // reference implementation's (pycommunityid 1.5).
        let want = "1:KtokAHyz+LpmkWAFBK/+HjzP3tE=";
        assert_eq!(id(0, 6, "127.0.0.1", 40000, "127.0.0.1", 8080), want);
        assert_eq!(id(0, 6, "127.0.0.1", 8080, "127.0.0.1", 40000), want);
        let want6 = "1:UKRSwncr90O8F3awUS6FHV/xpaI=";
        assert_eq!(id(0, 6, "fe80::1", 40000, "fe80::1", 8080), want6);
        assert_eq!(id(0, 6, "fe80::1", 8080, "fe80::1", 40000), want6);
    }

    #[test]
    fn address_order_is_numeric_not_textual() {
        // As text "10.0.0.10" sorts before "10.0.0.9"; as numbers it does not. Ordering the
        // endpoints the textual way would hash 10.0.0.10:2 first and give another ID.
        // Expected values are the reference implementation's (pycommunityid 1.5).
        let want = "1:o+RoHqstDhOtlnqElcglD1b+T3o=";
        assert_eq!(id(0, 6, "10.0.0.9", 1, "10.0.0.10", 2), want);
        assert_eq!(id(0, 6, "10.0.0.10", 2, "10.0.0.9", 1), want);
        assert_eq!(
            id(0, 6, "10.0.0.9", 2, "10.0.0.10", 1),
            "1:Bq5ta94C1D7gXVQM0NZAS/RrS4M="
        );
    }

    #[test]
    fn for_flow_hashes_four_ipv4_bytes_whichever_side_is_client() {
        let mut c = [0u8; 16];
        c[..4].copy_from_slice(&[1, 2, 3, 4]);
        let mut s = [0u8; 16];
        s[..4].copy_from_slice(&[5, 6, 7, 8]);
        let meta = FlowMeta {
            flow_id: 1,
            family: Family::V4,
            client_addr: s,
            client_port: 3344,
            server_addr: c,
            server_port: 1122,
            app_proto: crate::proto::AppProto::Unknown,
            app_ts: crate::proto::AppProto::Unknown,
            app_tc: crate::proto::AppProto::Unknown,
            tunnels: Default::default(),
        };
        assert_eq!(
            for_flow(0, &meta).as_str(),
            "1:wCb3OG7yAFWelaUydu0D+125CLM="
        );
        assert_eq!(
            for_flow(1, &meta).as_str(),
            "1:HhA1B+6CoLbiKPEs5nhNYN4XWfk="
        );
    }

    #[test]
    fn the_cached_id_is_the_flows_own_even_when_a_flow_id_is_reused() {
        let mut a = FlowMeta {
            flow_id: 5,
            family: Family::V4,
            client_addr: [0; 16],
            client_port: 1000,
            server_addr: [0; 16],
            server_port: 443,
            app_proto: crate::proto::AppProto::Tls,
            app_ts: crate::proto::AppProto::Tls,
            app_tc: crate::proto::AppProto::Tls,
            tunnels: Default::default(),
        };
        a.client_addr[..4].copy_from_slice(&[10, 0, 0, 1]);
        a.server_addr[..4].copy_from_slice(&[10, 0, 0, 2]);
        let mut b = a;
        b.server_port = 8443;
        for seed in [0, 7] {
            for m in [a, b, a, a, b, b] {
                assert_eq!(for_flow_cached(seed, &m), for_flow(seed, &m));
            }
        }
        // Same slot, another flow.
        let mut c = a;
        c.flow_id = 5 + CACHED as u64;
        c.client_port = 2000;
        assert_eq!(for_flow_cached(0, &c), for_flow(0, &c));
        assert_eq!(for_flow_cached(0, &a), for_flow(0, &a));
    }
}
