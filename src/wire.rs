//! Frame bytes to a checked packet view. Stateless: nothing here remembers earlier packets.
//!
//! Once [`parse`] has returned a [`TcpPacket`], every field is plain data that was bounds-checked
//! during the parse; nothing downstream indexes into the frame again.

use crate::source::LinkType;

/// IP version of a packet or flow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u8)]
pub enum Family {
    V4 = 4,
    V6 = 6,
}

/// TCP header flags as on the wire (the low 8 bits of the flags field).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct TcpFlags(pub u8);

impl TcpFlags {
    pub const FIN: u8 = 0x01;
    pub const SYN: u8 = 0x02;
    pub const RST: u8 = 0x04;
    pub const PSH: u8 = 0x08;
    pub const ACK: u8 = 0x10;
    pub const URG: u8 = 0x20;
    pub const ECE: u8 = 0x40;
    pub const CWR: u8 = 0x80;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
    pub fn syn(self) -> bool {
        self.has(Self::SYN)
    }
    pub fn ack(self) -> bool {
        self.has(Self::ACK)
    }
    pub fn fin(self) -> bool {
        self.has(Self::FIN)
    }
    pub fn rst(self) -> bool {
        self.has(Self::RST)
    }
}

/// Oddities that do not stop a packet from being tracked, but are worth counting.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct WireAnomalies(pub u8);

impl WireAnomalies {
    /// TCP options whose kinds or lengths do not parse (the segment is still tracked).
    pub const BAD_TCP_OPTIONS: u8 = 0x01;
    /// The capture cut the frame (snaplen): `payload` is shorter than the segment.
    pub const TRUNCATED_PAYLOAD: u8 = 0x02;
    /// Bytes after the IP datagram's end (Ethernet padding excluded).
    pub const TRAILING_BYTES: u8 = 0x04;

    pub fn has(self, bit: u8) -> bool {
        self.0 & bit != 0
    }
}

/// A TCP segment, checked and sliced. Addresses are 16 bytes; IPv4 uses the first four
/// and leaves the rest zero, which is also the layout of the flow key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpPacket<'a> {
    pub family: Family,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    pub sport: u16,
    pub dport: u16,
    pub seq: u32,
    pub ack: u32,
    pub flags: TcpFlags,
    pub window: u16,
    /// IPv4 TTL or IPv6 hop limit.
    pub ttl: u8,
    /// Outermost VLAN id when tagged.
    pub vlan: Option<u16>,
    /// Segment length from the IP header (what the sequence space advances by, minus SYN/FIN).
    pub segment_len: u32,
    /// The payload bytes present in the frame (shorter than `segment_len` when truncated).
    pub payload: &'a [u8],
    pub anomalies: WireAnomalies,
}

/// Traffic that is counted and passed, never inspected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum OtherKind {
    Udp,
    Icmp,
    Arp,
    /// An IPv4 or IPv6 fragment (counted, not reassembled).
    Fragment,
    /// Another IP protocol number.
    OtherIp(u8),
    /// Another EtherType.
    OtherEther(u16),
}

impl OtherKind {
    pub const COUNT: usize = 6;

    /// Dense index for per-kind counter arrays.
    pub fn index(self) -> usize {
        match self {
            OtherKind::Udp => 0,
            OtherKind::Icmp => 1,
            OtherKind::Arp => 2,
            OtherKind::Fragment => 3,
            OtherKind::OtherIp(_) => 4,
            OtherKind::OtherEther(_) => 5,
        }
    }

    pub const NAMES: [&'static str; Self::COUNT] =
        ["udp", "icmp", "arp", "fragment", "other_ip", "other_ether"];
}

/// Why a frame could not be parsed. Each is a counter label; none is an error of the engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Malformed {
    /// Frame shorter than its link-layer header.
    TruncatedLink,
    /// A VLAN tag chain cut short or nested deeper than two tags.
    BadVlan,
    /// IPv4 header cut short or IHL < 5.
    BadIpv4Header,
    /// IPv4 total length smaller than the header or larger than the frame allows.
    BadIpv4Length,
    /// IPv6 header cut short or payload length beyond the frame.
    BadIpv6Header,
    /// An IPv6 extension header chain that runs past the packet.
    BadIpv6Extension,
    /// TCP header cut short or data offset < 5 / beyond the segment.
    BadTcpHeader,
    /// Link-layer says IP but the version nibble disagrees.
    BadIpVersion,
}

impl Malformed {
    pub const COUNT: usize = 8;

    pub fn index(self) -> usize {
        self as usize
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    pub const NAMES: [&'static str; Self::COUNT] = [
        "truncated_link",
        "bad_vlan",
        "bad_ipv4_header",
        "bad_ipv4_length",
        "bad_ipv6_header",
        "bad_ipv6_extension",
        "bad_tcp_header",
        "bad_ip_version",
    ];
}

/// The outcome of parsing one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    Tcp(TcpPacket<'a>),
    Other(OtherKind),
    Malformed(Malformed),
}

/// Parses one frame of the given link type. Never panics, never allocates.
pub fn parse(data: &[u8], link: LinkType) -> Parsed<'_> {
    let _ = (data, link);
    unimplemented!("wire::parse is being written in the wire/capture branch")
}
