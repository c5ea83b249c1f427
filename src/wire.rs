//! Frame bytes to a checked packet view. Stateless: nothing here remembers earlier packets.
//!
//! Once [`parse`] has returned a [`TcpPacket`], every field is plain data that was bounds-checked
//! during the parse; nothing downstream indexes into the frame again.
//!
//! [`parse_frame`] is the entry point for frames from a [`crate::capture::PacketSource`]: it knows
//! the original length, so a capture cut (snaplen) is told apart from a length field that lies.
//!
//! Tunnels are opened up to a bounded depth ([`decode_frame`]): GRE (with transparent Ethernet,
//! ERSPAN I/II/III and MPLS inside), IPv4/IPv6 in IPv4/IPv6, VXLAN (UDP 4789), Geneve (6081),
//! GTP-U (2152) and MPLS label stacks. The packet returned is the innermost one; the
//! [`TunnelPath`] beside it says what carried it. An attacker who nests one tunnel more than the
//! limit gets a counted [`OtherKind::TunnelTooDeep`], never an inspected-looking outer packet.

use etherparse::{
    Ethernet2HeaderSlice, IpAuthHeaderSlice, Ipv4HeaderSlice, Ipv6FragmentHeaderSlice,
    Ipv6HeaderSlice, Ipv6RawExtHeaderSlice, SingleVlanHeaderSlice, TcpHeaderSlice,
    TcpOptionReadError, TcpOptionsIterator,
};

use crate::capture::{Frame, LinkType};

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
    /// Bytes after the IP datagram's end (Ethernet padding excluded: trailing bytes are
    /// padding when the frame's network-layer part is at most 46 bytes plus a 4-byte FCS).
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
    /// The TCP header as on the wire, options included (for the checksum).
    pub header: &'a [u8],
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
    /// An IPv4 or IPv6 fragment (reassembled by the engine when `defrag.enabled`).
    Fragment,
    /// Another IP protocol number.
    OtherIp(u8),
    /// Another EtherType.
    OtherEther(u16),
    /// Tunnels nested deeper than the configured decapsulation depth.
    TunnelTooDeep,
}

impl OtherKind {
    pub const COUNT: usize = 7;

    /// Dense index for per-kind counter arrays.
    pub fn index(self) -> usize {
        match self {
            OtherKind::Udp => 0,
            OtherKind::Icmp => 1,
            OtherKind::Arp => 2,
            OtherKind::Fragment => 3,
            OtherKind::OtherIp(_) => 4,
            OtherKind::OtherEther(_) => 5,
            OtherKind::TunnelTooDeep => 6,
        }
    }

    pub const NAMES: [&'static str; Self::COUNT] = [
        "udp",
        "icmp",
        "arp",
        "fragment",
        "other_ip",
        "other_ether",
        "tunnel_too_deep",
    ];
}

/// An encapsulation [`decode_frame`] opens. Values are stable (stored in flows as `u8`, 0 = none).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum TunnelKind {
    /// GRE carrying IP, Ethernet (transparent bridging) or MPLS.
    Gre = 1,
    /// ERSPAN type I, II or III (mirrored Ethernet frames over GRE).
    Erspan = 2,
    /// IPv4 inside IPv4 or IPv6 (IP protocol 4).
    Ipv4InIp = 3,
    /// IPv6 inside IPv4 (6in4, 6to4) or IPv6 (IP protocol 41).
    Ipv6InIp = 4,
    /// VXLAN, UDP destination port 4789.
    Vxlan = 5,
    /// Geneve, UDP destination port 6081.
    Geneve = 6,
    /// GTP-U G-PDU, UDP port 2152.
    GtpU = 7,
    /// An MPLS label stack (EtherType 0x8847, or inside GRE) with IP under it.
    Mpls = 8,
}

impl TunnelKind {
    pub const COUNT: usize = 8;
    pub const ALL: [TunnelKind; Self::COUNT] = [
        TunnelKind::Gre,
        TunnelKind::Erspan,
        TunnelKind::Ipv4InIp,
        TunnelKind::Ipv6InIp,
        TunnelKind::Vxlan,
        TunnelKind::Geneve,
        TunnelKind::GtpU,
        TunnelKind::Mpls,
    ];
    /// Counter labels and EVE names, by [`TunnelKind::index`].
    pub const NAMES: [&'static str; Self::COUNT] = [
        "gre",
        "erspan",
        "ipv4_in_ip",
        "ipv6_in_ip",
        "vxlan",
        "geneve",
        "gtp_u",
        "mpls",
    ];

    /// Dense index for per-kind counter arrays.
    pub fn index(self) -> usize {
        self as usize - 1
    }

    pub fn name(self) -> &'static str {
        Self::NAMES[self.index()]
    }

    /// The kind stored as `v`; `None` for 0 and unknown values.
    pub fn from_u8(v: u8) -> Option<TunnelKind> {
        Self::ALL.get(usize::from(v).checked_sub(1)?).copied()
    }
}

/// The largest decapsulation depth a config may ask for.
pub const MAX_TUNNEL_DEPTH: usize = 8;
/// Decapsulation depth when none is configured: deeper nesting than this is not seen on real
/// links (GTP inside VXLAN inside MPLS is three).
pub const DEFAULT_TUNNEL_DEPTH: u8 = 4;

/// How frames are decoded (`[decode]`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize, serde::Serialize)]
#[serde(deny_unknown_fields, default)]
pub struct DecodeConfig {
    /// Nested tunnels opened at most; 0 leaves tunnels closed (their outer packet counts).
    pub tunnel_depth: u8,
    /// In block mode, drop frames nested deeper than `tunnel_depth` instead of forwarding them
    /// uninspected (one more tunnel layer would otherwise be a way past inspection).
    pub drop_too_deep: bool,
}

impl Default for DecodeConfig {
    fn default() -> Self {
        DecodeConfig {
            tunnel_depth: DEFAULT_TUNNEL_DEPTH,
            drop_too_deep: true,
        }
    }
}

/// The tunnels opened to reach a packet, outermost first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunnelPath {
    kinds: [u8; MAX_TUNNEL_DEPTH],
    depth: u8,
}

impl TunnelPath {
    pub fn depth(&self) -> usize {
        usize::from(self.depth)
    }

    pub fn is_empty(&self) -> bool {
        self.depth == 0
    }

    /// The kinds opened, outermost first.
    pub fn kinds(&self) -> impl Iterator<Item = TunnelKind> + '_ {
        self.kinds[..self.depth().min(MAX_TUNNEL_DEPTH)]
            .iter()
            .filter_map(|&k| TunnelKind::from_u8(k))
    }

    /// The first `N` kinds as stored values (0 past the end), for a fixed-size flow field.
    pub fn packed<const N: usize>(&self) -> [u8; N] {
        let mut out = [0u8; N];
        for (o, k) in out
            .iter_mut()
            .zip(&self.kinds[..self.depth().min(MAX_TUNNEL_DEPTH)])
        {
            *o = *k;
        }
        out
    }

    /// This path followed by `inner` (tunnels found inside a reassembled datagram), cut at
    /// [`MAX_TUNNEL_DEPTH`].
    pub fn then(&self, inner: &TunnelPath) -> TunnelPath {
        let mut out = *self;
        for k in inner.kinds() {
            out.push(k);
        }
        out
    }

    fn push(&mut self, kind: TunnelKind) {
        let at = self.depth();
        if let Some(slot) = self.kinds.get_mut(at) {
            *slot = kind as u8;
            self.depth += 1;
        }
    }
}

/// A parse and the tunnels opened on the way to it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoded<'a> {
    pub parsed: Parsed<'a>,
    pub tunnels: TunnelPath,
    /// Set when `parsed` is [`OtherKind::Fragment`]: the fragment, for reassembly.
    pub fragment: Option<IpFragment<'a>>,
}

/// One IPv4 or IPv6 fragment (not an atomic one), checked and sliced.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpFragment<'a> {
    pub family: Family,
    pub src: [u8; 16],
    pub dst: [u8; 16],
    /// IPv4 identification (16 bits) or IPv6 fragment identification.
    pub id: u32,
    /// The protocol of the reassembled payload (IPv4 protocol, IPv6 fragment next header).
    pub proto: u8,
    /// Byte offset of `data` in the reassembled payload.
    pub offset: u32,
    /// More fragments follow (MF / M flag).
    pub more: bool,
    pub ttl: u8,
    pub vlan: Option<u16>,
    /// The fragment's bytes as captured.
    pub data: &'a [u8],
    /// False when the capture cut the fragment: it cannot be reassembled.
    pub whole: bool,
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
    /// A tunnel header (GRE, ERSPAN, VXLAN, Geneve, GTP-U, MPLS) cut short or inconsistent.
    BadTunnel,
}

impl Malformed {
    pub const COUNT: usize = 9;

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
        "bad_tunnel",
    ];
}

/// The outcome of parsing one frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    Tcp(TcpPacket<'a>),
    Other(OtherKind),
    Malformed(Malformed),
}

const ETHERTYPE_IPV4: u16 = 0x0800;
const ETHERTYPE_ARP: u16 = 0x0806;
const ETHERTYPE_IPV6: u16 = 0x86dd;
/// 802.1Q customer tag.
const ETHERTYPE_VLAN: u16 = 0x8100;
/// 802.1ad service tag (QinQ outer tag).
const ETHERTYPE_QINQ: u16 = 0x88a8;
/// The pre-standard QinQ outer tag some switches still send.
const ETHERTYPE_QINQ_OLD: u16 = 0x9100;
/// A service tag plus a customer tag; anything deeper is not something we expect on a link.
const MAX_VLAN_TAGS: usize = 2;
/// MPLS unicast (RFC 3032).
const ETHERTYPE_MPLS: u16 = 0x8847;
/// Transparent Ethernet bridging: an Ethernet frame inside GRE or Geneve.
const ETHERTYPE_TEB: u16 = 0x6558;
/// ERSPAN type I and II inside GRE (type I has no sequence number and no ERSPAN header).
const ETHERTYPE_ERSPAN_2: u16 = 0x88be;
/// ERSPAN type III inside GRE.
const ETHERTYPE_ERSPAN_3: u16 = 0x22eb;
/// Labels beyond this are a loop or an attack, not a label stack (real stacks are 2 to 5 deep).
const MAX_MPLS_LABELS: usize = 16;
/// GTP-U extension headers beyond this are not a real G-PDU.
const MAX_GTP_EXTENSIONS: usize = 8;
const UDP_PORT_VXLAN: u16 = 4789;
const UDP_PORT_GENEVE: u16 = 6081;
const UDP_PORT_GTP_U: u16 = 2152;

const LINUX_SLL_LEN: usize = 16;
const LINUX_SLL2_LEN: usize = 20;
const NULL_LEN: usize = 4;

/// BSD address families as DLT_NULL / DLT_LOOP write them. AF_INET is 2 everywhere; AF_INET6
/// differs per OS: Linux 10, NetBSD/OpenBSD/BSD/OS 24, FreeBSD/DragonFly 28, Darwin 30.
const AF_INET: u32 = 2;
const AF_INET6: [u32; 4] = [10, 24, 28, 30];

const IPPROTO_HOPOPTS: u8 = 0;
const IPPROTO_ICMP: u8 = 1;
const IPPROTO_IPIP: u8 = 4;
const IPPROTO_TCP: u8 = 6;
const IPPROTO_IPV6: u8 = 41;
const IPPROTO_GRE: u8 = 47;
const IPPROTO_UDP: u8 = 17;
const IPPROTO_ROUTING: u8 = 43;
const IPPROTO_FRAGMENT: u8 = 44;
const IPPROTO_AH: u8 = 51;
const IPPROTO_ICMPV6: u8 = 58;
const IPPROTO_DSTOPTS: u8 = 60;

const IPV6_HEADER_LEN: usize = 40;

/// The largest network-layer region that an Ethernet-like link may have padded: the 46-byte
/// minimum payload, plus 4 bytes for a captured FCS or a tag a switch removed after padding.
const MAX_PADDED_L3: usize = 50;

/// What the capture is known to have left out at the end of the frame.
#[derive(Debug, Clone, Copy)]
enum Cut {
    /// The frame is all there is; a length field that points past it is a bad length.
    Exact(usize),
    /// Unknown (no original length given): a length past the frame is taken as a snaplen cut.
    Unknown,
}

impl Cut {
    /// Whether `missing` bytes beyond the frame are explained by the capture cutting it.
    fn explains(self, missing: usize) -> bool {
        match self {
            Cut::Exact(dropped) => missing <= dropped,
            Cut::Unknown => true,
        }
    }
}

/// Parses one frame of the given link type, opening tunnels up to [`DEFAULT_TUNNEL_DEPTH`].
/// Never panics, never allocates.
///
/// Without the original length, an IP length that points past the end of `data` is taken as a
/// capture cut (snaplen): the segment is still returned, with
/// [`WireAnomalies::TRUNCATED_PAYLOAD`]. Use [`parse_frame`] (or [`parse_captured`]) when the
/// original length is known, so that a lying length field is told apart from a short capture.
pub fn parse(data: &[u8], link: LinkType) -> Parsed<'_> {
    parse_with(data, link, Cut::Unknown, DEFAULT_TUNNEL_DEPTH).parsed
}

/// Parses a frame whose original (on the wire) length is `wire_len`; `data` may be shorter when
/// the capture cut it. An IP length reaching further than `wire_len` is malformed.
pub fn parse_captured(data: &[u8], wire_len: u32, link: LinkType) -> Parsed<'_> {
    decode_captured(data, wire_len, link, DEFAULT_TUNNEL_DEPTH).parsed
}

/// [`parse_captured`] over a source's frame.
pub fn parse_frame<'a>(frame: &Frame<'a>) -> Parsed<'a> {
    parse_captured(frame.data, frame.wire_len, frame.link)
}

/// [`parse_captured`] opening at most `max_depth` nested tunnels (0: none, the outer packet is
/// what counts), and saying which it opened.
pub fn decode_captured(data: &[u8], wire_len: u32, link: LinkType, max_depth: u8) -> Decoded<'_> {
    let wire_len = usize::try_from(wire_len).unwrap_or(usize::MAX);
    let cut = Cut::Exact(wire_len.saturating_sub(data.len()));
    parse_with(data, link, cut, max_depth)
}

/// [`decode_captured`] over a source's frame.
pub fn decode_frame<'a>(frame: &Frame<'a>, max_depth: u8) -> Decoded<'a> {
    decode_captured(frame.data, frame.wire_len, frame.link, max_depth)
}

/// The common case without the tunnel-capable walk: an Ethernet frame with at most two VLAN
/// tags around an unfragmented IPv4 or IPv6 datagram (no IPv6 extension headers) carrying a
/// TCP segment, read at fixed offsets. `None` for anything else (other links, tunnels, MPLS,
/// fragments, IPv6 extensions, TSO zero lengths, truncated or malformed frames), which
/// [`decode_frame`] handles. When it answers, the packet is exactly the one [`decode_frame`]
/// would give, with no tunnels: frames that cannot carry a tunnel do not pay for opening them.
pub fn decode_plain<'a>(frame: &Frame<'a>) -> Option<TcpPacket<'a>> {
    plain_view(frame).map(|v| v.packet())
}

/// A frame [`plain_view`] checked: header lengths known, fields read only when asked, so a
/// packet of a judged flow reads its key, flags and sequence number and nothing else.
#[derive(Debug, Clone, Copy)]
pub struct PlainTcp<'a> {
    /// The TCP segment, exactly as long as the IP header says.
    segment: &'a [u8],
    /// The fixed part of the TCP header (the start of `segment`).
    tcp: &'a [u8; 20],
    family: Family,
    /// The address bytes (IPv4 in the first four) as loaded little-endian: what the flow key
    /// stores, kept in registers rather than built in zeroed arrays.
    src: u128,
    dst: u128,
    ttl: u8,
    /// TCP header length, options included.
    tcp_len: usize,
    vlan: Option<u16>,
    anomalies: WireAnomalies,
}

impl<'a> PlainTcp<'a> {
    fn tcp_u16(&self, at: usize) -> u16 {
        u16::from_be_bytes([self.tcp[at], self.tcp[at + 1]])
    }

    fn tcp_u32(&self, at: usize) -> u32 {
        u32::from_be_bytes([
            self.tcp[at],
            self.tcp[at + 1],
            self.tcp[at + 2],
            self.tcp[at + 3],
        ])
    }

    pub fn family(&self) -> Family {
        self.family
    }

    pub fn flags(&self) -> TcpFlags {
        TcpFlags(self.tcp[13])
    }

    pub fn seq(&self) -> u32 {
        self.tcp_u32(4)
    }

    pub fn ack(&self) -> u32 {
        self.tcp_u32(8)
    }

    pub fn window(&self) -> u16 {
        self.tcp_u16(14)
    }

    pub fn ttl(&self) -> u8 {
        self.ttl
    }

    pub fn payload_len(&self) -> usize {
        self.segment.len().saturating_sub(self.tcp_len)
    }

    /// `(src, sport, dst, dport)`.
    pub fn endpoints(&self) -> ([u8; 16], u16, [u8; 16], u16) {
        let (src, sport, dst, dport) = self.endpoint_words();
        (src.to_le_bytes(), sport, dst.to_le_bytes(), dport)
    }

    /// [`PlainTcp::endpoints`] of an IPv4 view, each address's 4 bytes as one little-endian
    /// word: what [`plain_untagged_ipv4`]'s views hold.
    #[inline(always)]
    pub fn v4_endpoint_words(&self) -> (u32, u16, u32, u16) {
        (
            self.src as u32,
            self.tcp_u16(0),
            self.dst as u32,
            self.tcp_u16(2),
        )
    }

    /// [`PlainTcp::endpoints`] with each address's 16 bytes as one little-endian word
    /// (`u128::from_le_bytes` of the bytes), for building the flow key without copies.
    #[inline(always)]
    pub fn endpoint_words(&self) -> (u128, u16, u128, u16) {
        (self.src, self.tcp_u16(0), self.dst, self.tcp_u16(2))
    }

    pub fn anomalies(&self) -> WireAnomalies {
        self.anomalies
    }

    /// The whole packet, as [`decode_frame`] gives it.
    pub fn packet(&self) -> TcpPacket<'a> {
        TcpPacket {
            family: self.family,
            src: self.src.to_le_bytes(),
            dst: self.dst.to_le_bytes(),
            sport: self.tcp_u16(0),
            dport: self.tcp_u16(2),
            seq: self.seq(),
            ack: self.ack(),
            flags: self.flags(),
            window: self.window(),
            ttl: self.ttl,
            vlan: self.vlan,
            segment_len: u32::try_from(self.payload_len()).unwrap_or(u32::MAX),
            header: self.segment.get(..self.tcp_len).unwrap_or_default(),
            payload: self.segment.get(self.tcp_len..).unwrap_or_default(),
            anomalies: self.anomalies,
        }
    }
}

/// Checks a frame for [`decode_plain`]'s shape and finds its headers, reading no field the
/// check does not need. Inlined into the engine's per-packet entry, so the view is built in
/// place rather than copied out.
#[inline(always)]
pub fn plain_view<'a>(frame: &Frame<'a>) -> Option<PlainTcp<'a>> {
    if frame.link != LinkType::Ethernet {
        return None;
    }
    if let Some(v) = plain_untagged_ipv4(frame.data) {
        return Some(v);
    }
    plain_any(frame.data)
}

/// [`plain_view`] for the commonest shape, untagged IPv4 without IP options: every field at a
/// fixed offset of one length-checked array, so one bounds check instead of one per field.
/// `None` for any other shape and for any frame this shape's checks refuse, which
/// [`plain_any`] then decides (so this only ever answers what `plain_any` would).
#[inline(always)]
pub fn plain_untagged_ipv4(data: &[u8]) -> Option<PlainTcp<'_>> {
    // Ethernet (14) + IPv4 without options (20) + TCP's fixed header (20).
    const L3: usize = 14;
    const L4: usize = L3 + 20;
    let h: &[u8; L4 + 20] = data.first_chunk()?;
    // IPv4 ethertype, version 4 with a 20-byte header, TCP, neither MF nor an offset.
    let fragmenting = (h[L3 + 6] & 0x3f) | h[L3 + 7] != 0;
    if h[12..15] != [0x08, 0x00, 0x45] || h[L3 + 9] != IPPROTO_TCP || fragmenting {
        return None;
    }
    let have = data.len() - L3;
    let total = usize::from(u16::from_be_bytes([h[L3 + 2], h[L3 + 3]]));
    let tcp_len = usize::from(h[L4 + 12] >> 4) * 4;
    // The datagram fits the frame and holds the whole TCP header.
    if total > have || tcp_len < 20 || tcp_len + 20 > total {
        return None;
    }
    let segment = data.get(L4..L3 + total)?;
    // The segment's first 20 bytes, taken from the checked array: no second length check
    // (the segment holds them, as `tcp_len + 20 <= total` above says).
    let tcp: &[u8; 20] = h.last_chunk()?;
    let trailing = have > total && have > MAX_PADDED_L3;
    let mut anomalies = if trailing {
        WireAnomalies::TRAILING_BYTES
    } else {
        0
    };
    if tcp_len > 20 {
        let options = segment.get(20..tcp_len).unwrap_or_default();
        if !common_tcp_options(options) && !tcp_options_ok(options) {
            anomalies |= WireAnomalies::BAD_TCP_OPTIONS;
        }
    }
    let src = u32::from_le_bytes([h[L3 + 12], h[L3 + 13], h[L3 + 14], h[L3 + 15]]);
    let dst = u32::from_le_bytes([h[L3 + 16], h[L3 + 17], h[L3 + 18], h[L3 + 19]]);
    Some(PlainTcp {
        segment,
        tcp,
        family: Family::V4,
        src: src.into(),
        dst: dst.into(),
        ttl: h[L3 + 8],
        tcp_len,
        vlan: None,
        anomalies: WireAnomalies(anomalies),
    })
}

/// [`plain_view`] for every shape it takes: VLAN tags, IPv4 with options, IPv6. Out of line:
/// the common shape's inlined check stays small.
#[inline(never)]
pub fn plain_any(data: &[u8]) -> Option<PlainTcp<'_>> {
    let mut ethertype = be16_at(data, 12)?;
    let mut at = 14usize;
    let mut vlan = None;
    for _ in 0..MAX_VLAN_TAGS {
        if !matches!(
            ethertype,
            ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
        ) {
            break;
        }
        let tci = be16_at(data, at)?;
        vlan = vlan.or(Some(tci & 0x0fff));
        ethertype = be16_at(data, at + 2)?;
        at += 4;
    }
    let l3 = data.get(at..)?;
    let have = l3.len();
    let (family, ip_len, total, ttl, src, dst) = match ethertype {
        ETHERTYPE_IPV4 => {
            let head: &[u8; 20] = l3.get(..20)?.try_into().ok()?;
            let ihl = usize::from(head[0] & 0x0f) * 4;
            // Fragments (MF or an offset) go to reassembly; a zero total length (TSO) and
            // the errors are the full parse's to count.
            let fragmenting = u16::from_be_bytes([head[6], head[7]]) & 0x3fff != 0;
            let total = usize::from(u16::from_be_bytes([head[2], head[3]]));
            if head[0] >> 4 != 4 || ihl < 20 || head[9] != IPPROTO_TCP || fragmenting {
                return None;
            }
            if total < ihl {
                return None;
            }
            let src = u32::from_le_bytes([head[12], head[13], head[14], head[15]]);
            let dst = u32::from_le_bytes([head[16], head[17], head[18], head[19]]);
            (Family::V4, ihl, total, head[8], src.into(), dst.into())
        }
        ETHERTYPE_IPV6 => {
            let head: &[u8; 40] = l3.get(..IPV6_HEADER_LEN)?.try_into().ok()?;
            let payload_len = usize::from(u16::from_be_bytes([head[4], head[5]]));
            if head[0] >> 4 != 6 || head[6] != IPPROTO_TCP || payload_len == 0 {
                return None;
            }
            let src: [u8; 16] = head[8..24].try_into().ok()?;
            let dst: [u8; 16] = head[24..40].try_into().ok()?;
            (
                Family::V6,
                IPV6_HEADER_LEN,
                IPV6_HEADER_LEN + payload_len,
                head[7],
                u128::from_le_bytes(src),
                u128::from_le_bytes(dst),
            )
        }
        _ => return None,
    };
    // A datagram longer than the frame is a capture cut or a lying length: the full parse
    // tells them apart.
    if total > have {
        return None;
    }
    let padding_only = have <= MAX_PADDED_L3;
    let trailing = have > total && !padding_only;
    let segment = l3.get(ip_len..total)?;
    let tcp: &[u8; 20] = segment.get(..20)?.try_into().ok()?;
    let tcp_len = usize::from(tcp[12] >> 4) * 4;
    if tcp_len < 20 || tcp_len > segment.len() {
        return None;
    }
    let options = segment.get(20..tcp_len).unwrap_or_default();
    let mut anomalies = if trailing {
        WireAnomalies::TRAILING_BYTES
    } else {
        0
    };
    if !options.is_empty() && !common_tcp_options(options) && !tcp_options_ok(options) {
        anomalies |= WireAnomalies::BAD_TCP_OPTIONS;
    }
    Some(PlainTcp {
        segment,
        tcp,
        family,
        src,
        dst,
        ttl,
        tcp_len,
        vlan,
        anomalies: WireAnomalies(anomalies),
    })
}

/// The options nearly every established segment carries (NOP, NOP, timestamps), which
/// [`tcp_options_ok`] accepts: recognised without walking them.
fn common_tcp_options(options: &[u8]) -> bool {
    options.len() == 12 && options[..4] == [1, 1, 8, 10]
}

/// Which network layer the link layer announced.
#[derive(Debug, Clone, Copy)]
enum Net {
    V4,
    V6,
    /// Raw IP: the version nibble decides.
    AnyIp,
}

/// The network-layer bytes of a frame and what the link layer said about them.
#[derive(Debug, Clone, Copy)]
struct L3<'a> {
    net: Net,
    bytes: &'a [u8],
    vlan: Option<u16>,
    /// The link pads short frames (Ethernet and the cooked captures of it).
    padded: bool,
    cut: Cut,
    /// An MPLS label stack was stripped to reach these bytes.
    mpls: bool,
}

/// What one network layer leads to.
enum Step<'a> {
    Done(Parsed<'a>),
    Fragment(IpFragment<'a>),
    /// A tunnel: the inner layer (or why it cannot be reached), and what the outer packet is
    /// when tunnels are not opened.
    Tunnel {
        kind: TunnelKind,
        inner: Result<L3<'a>, Parsed<'a>>,
        outer: OtherKind,
    },
}

fn parse_with(data: &[u8], link: LinkType, cut: Cut, max_depth: u8) -> Decoded<'_> {
    let mut tunnels = TunnelPath::default();
    let done = |parsed, tunnels| Decoded {
        parsed,
        tunnels,
        fragment: None,
    };
    let mut l3 = match link_layer(data, link, cut) {
        Ok(l3) => l3,
        Err(parsed) => return done(parsed, tunnels),
    };
    // Every pass either returns or pushes one tunnel, and the depth is capped: the loop is
    // bounded by `max_depth` (itself at most MAX_TUNNEL_DEPTH) plus one.
    loop {
        let step = if l3.mpls {
            l3.mpls = false;
            Step::Tunnel {
                kind: TunnelKind::Mpls,
                inner: Ok(l3),
                outer: OtherKind::OtherEther(ETHERTYPE_MPLS),
            }
        } else {
            network_layer(l3)
        };
        match step {
            Step::Done(parsed) => return done(parsed, tunnels),
            Step::Fragment(f) => {
                return Decoded {
                    parsed: Parsed::Other(OtherKind::Fragment),
                    tunnels,
                    fragment: Some(f),
                }
            }
            Step::Tunnel { kind, inner, outer } => {
                if max_depth == 0 {
                    return done(Parsed::Other(outer), tunnels);
                }
                if tunnels.depth() >= usize::from(max_depth).min(MAX_TUNNEL_DEPTH) {
                    return done(Parsed::Other(OtherKind::TunnelTooDeep), tunnels);
                }
                tunnels.push(kind);
                match inner {
                    Ok(next) => l3 = next,
                    Err(parsed) => return done(parsed, tunnels),
                }
            }
        }
    }
}

fn network_layer(l3: L3<'_>) -> Step<'_> {
    let net = match l3.net {
        Net::AnyIp => match l3.bytes.first().map(|b| b >> 4) {
            Some(4) => Net::V4,
            Some(6) => Net::V6,
            Some(_) => return Step::Done(Parsed::Malformed(Malformed::BadIpVersion)),
            None => return Step::Done(Parsed::Malformed(Malformed::TruncatedLink)),
        },
        net => net,
    };
    match net {
        Net::V6 => ipv6(l3),
        _ => ipv4(l3),
    }
}

/// Strips the link layer; `Err` carries the final answer when the frame is not IP or is broken.
fn link_layer(data: &[u8], link: LinkType, cut: Cut) -> Result<L3<'_>, Parsed<'_>> {
    let truncated = Parsed::Malformed(Malformed::TruncatedLink);
    let l3 = |net, bytes| L3 {
        net,
        bytes,
        vlan: None,
        padded: false,
        cut,
        mpls: false,
    };
    match link {
        LinkType::Ethernet => {
            let eth = Ethernet2HeaderSlice::from_slice(data).map_err(|_| truncated)?;
            let rest = data.get(eth.slice().len()..).unwrap_or_default();
            ethertype_chain(eth.ether_type().0, rest, cut, None)
        }
        LinkType::LinuxSll => {
            // Parsed by hand: etherparse's SLL slice rejects hardware types (loopback, tun,
            // PPP) that real "any"-interface captures contain.
            let proto = be16_at(data, 14).ok_or(truncated)?;
            let rest = data.get(LINUX_SLL_LEN..).ok_or(truncated)?;
            ethertype_chain(proto, rest, cut, None)
        }
        LinkType::LinuxSll2 => {
            let rest = data.get(LINUX_SLL2_LEN..).ok_or(truncated)?;
            let proto = be16_at(data, 0).ok_or(truncated)?;
            ethertype_chain(proto, rest, cut, None)
        }
        LinkType::RawIp => {
            if data.is_empty() {
                return Err(truncated);
            }
            Ok(l3(Net::AnyIp, data))
        }
        LinkType::Ipv4 => match data.first() {
            None => Err(truncated),
            Some(b) if b >> 4 == 4 => Ok(l3(Net::V4, data)),
            Some(_) => Err(Parsed::Malformed(Malformed::BadIpVersion)),
        },
        LinkType::Ipv6 => match data.first() {
            None => Err(truncated),
            Some(b) if b >> 4 == 6 => Ok(l3(Net::V6, data)),
            Some(_) => Err(Parsed::Malformed(Malformed::BadIpVersion)),
        },
        LinkType::Null => {
            let head: [u8; NULL_LEN] = data
                .get(..NULL_LEN)
                .and_then(|h| h.try_into().ok())
                .ok_or(truncated)?;
            let rest = data.get(NULL_LEN..).unwrap_or_default();
            // DLT_NULL is in the writer's byte order, DLT_LOOP in network order: a family is a
            // small number, so whichever reading gives one is the right one.
            let le = u32::from_le_bytes(head);
            let family = if le <= 0xffff {
                le
            } else {
                u32::from_be_bytes(head)
            };
            if family == AF_INET {
                Ok(l3(Net::V4, rest))
            } else if AF_INET6.contains(&family) {
                Ok(l3(Net::V6, rest))
            } else {
                // Not an EtherType, but the closest counter label for "another link protocol".
                Err(Parsed::Other(OtherKind::OtherEther(
                    u16::try_from(family).unwrap_or(u16::MAX),
                )))
            }
        }
    }
}

/// Follows an EtherType through up to two VLAN tags (and an MPLS label stack) to the network
/// layer. `vlan` is the id an outer layer already saw: the outermost one is kept.
fn ethertype_chain(
    ethertype: u16,
    bytes: &[u8],
    cut: Cut,
    vlan: Option<u16>,
) -> Result<L3<'_>, Parsed<'_>> {
    let mut ethertype = ethertype;
    let mut bytes = bytes;
    let mut vlan = vlan;
    let mut tags = 0;
    while matches!(
        ethertype,
        ETHERTYPE_VLAN | ETHERTYPE_QINQ | ETHERTYPE_QINQ_OLD
    ) {
        if tags == MAX_VLAN_TAGS {
            return Err(Parsed::Malformed(Malformed::BadVlan));
        }
        let tag = SingleVlanHeaderSlice::from_slice(bytes)
            .map_err(|_| Parsed::Malformed(Malformed::BadVlan))?;
        vlan = vlan.or(Some(tag.vlan_identifier().value()));
        ethertype = tag.ether_type().0;
        bytes = bytes.get(tag.slice().len()..).unwrap_or_default();
        tags += 1;
    }
    let net = match ethertype {
        ETHERTYPE_IPV4 => Net::V4,
        ETHERTYPE_IPV6 => Net::V6,
        ETHERTYPE_MPLS => {
            let mut l3 = mpls(bytes, cut)?;
            l3.vlan = vlan;
            l3.padded = true;
            return Ok(l3);
        }
        ETHERTYPE_ARP => return Err(Parsed::Other(OtherKind::Arp)),
        other => return Err(Parsed::Other(OtherKind::OtherEther(other))),
    };
    Ok(L3 {
        net,
        bytes,
        vlan,
        padded: true,
        cut,
        mpls: false,
    })
}

/// Strips an MPLS label stack down to the bottom-of-stack label; the payload is IP when its
/// first nibble says so (RFC 4385: a pseudowire control word starts with 0000, and Ethernet
/// pseudowires are not decoded).
fn mpls(bytes: &[u8], cut: Cut) -> Result<L3<'_>, Parsed<'_>> {
    let bad = Parsed::Malformed(Malformed::BadTunnel);
    let mut at = 0usize;
    for _ in 0..MAX_MPLS_LABELS {
        let label = bytes.get(at..at + 4).ok_or(bad)?;
        at += 4;
        if label[2] & 0x01 != 0 {
            let rest = bytes.get(at..).unwrap_or_default();
            let net = match rest.first().map(|b| b >> 4) {
                Some(4) => Net::V4,
                Some(6) => Net::V6,
                None => return Err(bad),
                Some(_) => return Err(Parsed::Other(OtherKind::OtherEther(ETHERTYPE_MPLS))),
            };
            return Ok(L3 {
                net,
                bytes: rest,
                vlan: None,
                padded: false,
                cut,
                mpls: true,
            });
        }
    }
    Err(bad)
}

fn be16_at(data: &[u8], at: usize) -> Option<u16> {
    let end = at.checked_add(2)?;
    let b: [u8; 2] = data.get(at..end)?.try_into().ok()?;
    Some(u16::from_be_bytes(b))
}

/// Where an IP datagram ends, given the length its header claims.
#[derive(Debug, Clone, Copy)]
struct Extent {
    /// Bytes of the datagram present in the frame.
    present: usize,
    /// Bytes after the datagram that are neither padding nor missing.
    trailing: bool,
}

/// Checks a datagram's claimed length against the frame. `None` when the claim reaches past
/// what the capture could have dropped.
fn extent(l3: &L3<'_>, claimed: usize) -> Option<Extent> {
    let have = l3.bytes.len();
    if claimed > have {
        if !l3.cut.explains(claimed - have) {
            return None;
        }
        return Some(Extent {
            present: have,
            trailing: false,
        });
    }
    let padding_only = l3.padded && have <= MAX_PADDED_L3;
    Some(Extent {
        present: claimed,
        trailing: have > claimed && !padding_only,
    })
}

/// Network-layer facts a TCP segment inherits.
#[derive(Debug, Clone, Copy)]
struct IpInfo {
    family: Family,
    src: [u8; 16],
    dst: [u8; 16],
    ttl: u8,
    vlan: Option<u16>,
    anomalies: WireAnomalies,
}

fn ipv4(l3: L3<'_>) -> Step<'_> {
    let done = Step::Done;
    match l3.bytes.first() {
        None => return done(Parsed::Malformed(Malformed::BadIpv4Header)),
        Some(b) if b >> 4 != 4 => return done(Parsed::Malformed(Malformed::BadIpVersion)),
        Some(_) => {}
    }
    let Ok(ip) = Ipv4HeaderSlice::from_slice(l3.bytes) else {
        return done(Parsed::Malformed(Malformed::BadIpv4Header));
    };
    let header_len = ip.slice().len();
    let total = match usize::from(ip.total_len()) {
        // Linux captures outgoing TSO/GSO super-packets before the NIC splits them, with the
        // total length left at zero: the frame is the datagram.
        0 => l3.bytes.len(),
        n => n,
    };
    if total < header_len {
        return done(Parsed::Malformed(Malformed::BadIpv4Length));
    }
    let Some(extent) = extent(&l3, total) else {
        return done(Parsed::Malformed(Malformed::BadIpv4Length));
    };
    let segment = l3.bytes.get(header_len..extent.present).unwrap_or_default();
    if ip.is_fragmenting_payload() {
        let mut src = [0u8; 16];
        let mut dst = [0u8; 16];
        src[..4].copy_from_slice(&ip.source());
        dst[..4].copy_from_slice(&ip.destination());
        return Step::Fragment(IpFragment {
            family: Family::V4,
            src,
            dst,
            id: u32::from(ip.identification()),
            proto: ip.protocol().0,
            offset: u32::from(ip.fragments_offset().value()) * 8,
            more: ip.more_fragments(),
            ttl: ip.ttl(),
            vlan: l3.vlan,
            data: segment,
            whole: extent.present == total,
        });
    }
    match ip.protocol().0 {
        IPPROTO_TCP => {}
        IPPROTO_ICMP => return done(Parsed::Other(OtherKind::Icmp)),
        other => return transport(other, segment, inner_cut(&l3, total, extent), l3.vlan),
    }
    let mut src = [0u8; 16];
    let mut dst = [0u8; 16];
    src[..4].copy_from_slice(&ip.source());
    dst[..4].copy_from_slice(&ip.destination());
    let info = IpInfo {
        family: Family::V4,
        src,
        dst,
        ttl: ip.ttl(),
        vlan: l3.vlan,
        anomalies: trailing_anomaly(extent),
    };
    done(tcp(segment, total - header_len, info))
}

/// What the capture left out of a datagram's payload, for a layer inside it.
fn inner_cut(l3: &L3<'_>, claimed: usize, extent: Extent) -> Cut {
    match l3.cut {
        Cut::Exact(_) => Cut::Exact(claimed.saturating_sub(extent.present)),
        Cut::Unknown => Cut::Unknown,
    }
}

/// A non-TCP transport: a tunnel to open, or another kind of traffic.
fn transport(proto: u8, payload: &[u8], cut: Cut, vlan: Option<u16>) -> Step<'_> {
    let outer = OtherKind::OtherIp(proto);
    let tunnel = |kind, inner| Step::Tunnel { kind, inner, outer };
    match proto {
        IPPROTO_UDP => udp(payload, cut, vlan),
        IPPROTO_IPIP => tunnel(
            TunnelKind::Ipv4InIp,
            Ok(inner_ip(Net::V4, payload, cut, vlan)),
        ),
        IPPROTO_IPV6 => tunnel(
            TunnelKind::Ipv6InIp,
            Ok(inner_ip(Net::V6, payload, cut, vlan)),
        ),
        IPPROTO_GRE => gre(payload, cut, vlan),
        _ => Step::Done(Parsed::Other(outer)),
    }
}

fn inner_ip(net: Net, bytes: &[u8], cut: Cut, vlan: Option<u16>) -> L3<'_> {
    L3 {
        net,
        bytes,
        vlan,
        padded: false,
        cut,
        mpls: false,
    }
}

const BAD_TUNNEL: Parsed<'static> = Parsed::Malformed(Malformed::BadTunnel);

/// An Ethernet frame carried by a tunnel (VXLAN, Geneve, GRE bridging, ERSPAN).
fn inner_ethernet(bytes: &[u8], cut: Cut, vlan: Option<u16>) -> Result<L3<'_>, Parsed<'_>> {
    let eth = Ethernet2HeaderSlice::from_slice(bytes).map_err(|_| BAD_TUNNEL)?;
    let rest = bytes.get(eth.slice().len()..).unwrap_or_default();
    ethertype_chain(eth.ether_type().0, rest, cut, vlan)
}

fn gre(payload: &[u8], cut: Cut, vlan: Option<u16>) -> Step<'_> {
    let outer = OtherKind::OtherIp(IPPROTO_GRE);
    let (Some(flags), Some(proto)) = (be16_at(payload, 0), be16_at(payload, 2)) else {
        return Step::Done(BAD_TUNNEL);
    };
    // Version 1 is PPTP's enhanced GRE (PPP inside) and the routing bit is obsolete (RFC
    // 2784): neither carries what a receiver here would take as IP.
    if flags & 0x0007 != 0 || flags & 0x4000 != 0 {
        return Step::Done(Parsed::Other(outer));
    }
    let has_seq = flags & 0x1000 != 0;
    let header_len = 4
        + 4 * usize::from(flags & 0x8000 != 0)
        + 4 * usize::from(flags & 0x2000 != 0)
        + 4 * usize::from(has_seq);
    let Some(body) = payload.get(header_len..) else {
        return Step::Done(BAD_TUNNEL);
    };
    let (kind, inner) = match proto {
        ETHERTYPE_IPV4 => (TunnelKind::Gre, Ok(inner_ip(Net::V4, body, cut, vlan))),
        ETHERTYPE_IPV6 => (TunnelKind::Gre, Ok(inner_ip(Net::V6, body, cut, vlan))),
        ETHERTYPE_TEB => (TunnelKind::Gre, inner_ethernet(body, cut, vlan)),
        ETHERTYPE_MPLS => (
            TunnelKind::Gre,
            mpls(body, cut).map(|mut l3| {
                l3.vlan = vlan;
                l3
            }),
        ),
        // Type II carries an 8-byte ERSPAN header and sets the GRE sequence bit; type I has
        // neither.
        ETHERTYPE_ERSPAN_2 => {
            let skip = if has_seq { 8 } else { 0 };
            let inner = body
                .get(skip..)
                .ok_or(BAD_TUNNEL)
                .and_then(|f| inner_ethernet(f, cut, vlan));
            (TunnelKind::Erspan, inner)
        }
        // Type III: a 12-byte header, plus an 8-byte platform subheader when its O bit is set.
        ETHERTYPE_ERSPAN_3 => {
            let inner = body.get(11).ok_or(BAD_TUNNEL).and_then(|o| {
                let skip = if o & 0x01 != 0 { 20 } else { 12 };
                let frame = body.get(skip..).ok_or(BAD_TUNNEL)?;
                inner_ethernet(frame, cut, vlan)
            });
            (TunnelKind::Erspan, inner)
        }
        _ => return Step::Done(Parsed::Other(outer)),
    };
    Step::Tunnel { kind, inner, outer }
}

fn udp(payload: &[u8], cut: Cut, vlan: Option<u16>) -> Step<'_> {
    let outer = OtherKind::Udp;
    let (Some(sport), Some(dport), Some(len)) = (
        be16_at(payload, 0),
        be16_at(payload, 2),
        be16_at(payload, 4),
    ) else {
        return Step::Done(Parsed::Other(outer));
    };
    let end = match usize::from(len) {
        n if n >= 8 && n <= payload.len() => n,
        _ => payload.len(),
    };
    let body = payload.get(8..end).unwrap_or_default();
    let (kind, inner) = match (sport, dport) {
        (_, UDP_PORT_VXLAN) => (TunnelKind::Vxlan, vxlan(body, cut, vlan)),
        (_, UDP_PORT_GENEVE) => (TunnelKind::Geneve, geneve(body, cut, vlan)),
        (UDP_PORT_GTP_U, _) | (_, UDP_PORT_GTP_U) => (TunnelKind::GtpU, gtp_u(body, cut, vlan)),
        _ => return Step::Done(Parsed::Other(outer)),
    };
    match inner {
        // Not an encapsulation after all (a GTP echo, a VXLAN header without its I flag): the
        // datagram is plain UDP.
        None => Step::Done(Parsed::Other(outer)),
        Some(inner) => Step::Tunnel { kind, inner, outer },
    }
}

/// `None`: not a VXLAN data packet (the I flag, which receivers require, is clear).
fn vxlan(body: &[u8], cut: Cut, vlan: Option<u16>) -> Option<Result<L3<'_>, Parsed<'_>>> {
    let Some(frame) = body.get(8..) else {
        return Some(Err(BAD_TUNNEL));
    };
    if body.first()? & 0x08 == 0 {
        return None;
    }
    Some(inner_ethernet(frame, cut, vlan))
}

/// `None`: a Geneve version or protocol type not decoded here.
fn geneve(body: &[u8], cut: Cut, vlan: Option<u16>) -> Option<Result<L3<'_>, Parsed<'_>>> {
    let (Some(&first), Some(proto)) = (body.first(), be16_at(body, 2)) else {
        return Some(Err(BAD_TUNNEL));
    };
    if first >> 6 != 0 {
        return None;
    }
    let options = usize::from(first & 0x3f) * 4;
    let Some(inner) = body.get(8 + options..) else {
        return Some(Err(BAD_TUNNEL));
    };
    match proto {
        ETHERTYPE_TEB => Some(inner_ethernet(inner, cut, vlan)),
        ETHERTYPE_IPV4 => Some(Ok(inner_ip(Net::V4, inner, cut, vlan))),
        ETHERTYPE_IPV6 => Some(Ok(inner_ip(Net::V6, inner, cut, vlan))),
        _ => None,
    }
}

/// `None`: not a GTPv1-U G-PDU carrying IP (echo, error indication, GTP', PPP PDUs).
fn gtp_u(body: &[u8], cut: Cut, vlan: Option<u16>) -> Option<Result<L3<'_>, Parsed<'_>>> {
    let (&flags, &msg_type) = (body.first()?, body.get(1)?);
    // Version 1 and protocol type 1 (GTP, not GTP'); message type 255 is the G-PDU.
    if flags >> 5 != 1 || flags & 0x10 == 0 || msg_type != 0xff {
        return None;
    }
    let Some(len) = be16_at(body, 2) else {
        return Some(Err(BAD_TUNNEL));
    };
    let mut at = 8usize;
    // Any of E, S, PN adds the 4-byte sequence / N-PDU / next-extension word.
    if flags & 0x07 != 0 {
        let Some(&first_ext) = body.get(11) else {
            return Some(Err(BAD_TUNNEL));
        };
        at = 12;
        let mut next = if flags & 0x04 != 0 { first_ext } else { 0 };
        let mut extensions = 0;
        while next != 0 {
            extensions += 1;
            // Each extension is a multiple of 4 bytes, its length in 4-byte units first and
            // the next type last.
            let units = body.get(at).copied().unwrap_or(0);
            if units == 0 || extensions > MAX_GTP_EXTENSIONS {
                return Some(Err(BAD_TUNNEL));
            }
            let ext_len = usize::from(units) * 4;
            let Some(&n) = body.get(at + ext_len - 1) else {
                return Some(Err(BAD_TUNNEL));
            };
            next = n;
            at += ext_len;
        }
    }
    // The length counts everything after the mandatory 8 bytes.
    let end = (8 + usize::from(len)).min(body.len());
    let Some(pdu) = body.get(at..end) else {
        return Some(Err(BAD_TUNNEL));
    };
    match pdu.first().map(|b| b >> 4) {
        Some(4) => Some(Ok(inner_ip(Net::V4, pdu, cut, vlan))),
        Some(6) => Some(Ok(inner_ip(Net::V6, pdu, cut, vlan))),
        None => Some(Err(BAD_TUNNEL)),
        Some(_) => None,
    }
}

fn trailing_anomaly(extent: Extent) -> WireAnomalies {
    if extent.trailing {
        WireAnomalies(WireAnomalies::TRAILING_BYTES)
    } else {
        WireAnomalies::default()
    }
}

fn ipv6(l3: L3<'_>) -> Step<'_> {
    let done = Step::Done;
    match l3.bytes.first() {
        None => return done(Parsed::Malformed(Malformed::BadIpv6Header)),
        Some(b) if b >> 4 != 6 => return done(Parsed::Malformed(Malformed::BadIpVersion)),
        Some(_) => {}
    }
    let Ok(ip) = Ipv6HeaderSlice::from_slice(l3.bytes) else {
        return done(Parsed::Malformed(Malformed::BadIpv6Header));
    };
    let mut next = ip.next_header().0;
    let total = match usize::from(ip.payload_length()) {
        // A jumbogram (RFC 2675, also Linux BIG TCP seen before segmentation) carries its real
        // length in a hop-by-hop option; the frame is the datagram.
        0 if next == IPPROTO_HOPOPTS => l3.bytes.len(),
        n => IPV6_HEADER_LEN + n,
    };
    let Some(extent) = extent(&l3, total) else {
        return done(Parsed::Malformed(Malformed::BadIpv6Header));
    };
    let datagram = l3.bytes.get(..extent.present).unwrap_or_default();
    let mut offset = IPV6_HEADER_LEN;
    loop {
        let rest = datagram.get(offset..).unwrap_or_default();
        let ext_len = match next {
            IPPROTO_HOPOPTS | IPPROTO_ROUTING | IPPROTO_DSTOPTS => {
                let Ok(ext) = Ipv6RawExtHeaderSlice::from_slice(rest) else {
                    return done(Parsed::Malformed(Malformed::BadIpv6Extension));
                };
                next = ext.next_header().0;
                ext.slice().len()
            }
            IPPROTO_AH => {
                let Ok(ext) = IpAuthHeaderSlice::from_slice(rest) else {
                    return done(Parsed::Malformed(Malformed::BadIpv6Extension));
                };
                next = ext.next_header().0;
                ext.slice().len()
            }
            IPPROTO_FRAGMENT => {
                let Ok(ext) = Ipv6FragmentHeaderSlice::from_slice(rest) else {
                    return done(Parsed::Malformed(Malformed::BadIpv6Extension));
                };
                // An atomic fragment (offset 0, no more fragments; RFC 6946) is a whole packet.
                if ext.is_fragmenting_payload() {
                    let after = offset.saturating_add(ext.slice().len());
                    return Step::Fragment(IpFragment {
                        family: Family::V6,
                        src: ip.source(),
                        dst: ip.destination(),
                        id: ext.identification(),
                        proto: ext.next_header().0,
                        offset: u32::from(ext.fragment_offset().value()) * 8,
                        more: ext.more_fragments(),
                        ttl: ip.hop_limit(),
                        vlan: l3.vlan,
                        data: datagram.get(after..).unwrap_or_default(),
                        whole: extent.present == total,
                    });
                }
                next = ext.next_header().0;
                ext.slice().len()
            }
            _ => break,
        };
        // Each header is at least 8 bytes, so the walk ends within len/8 steps.
        offset = offset.saturating_add(ext_len);
    }
    let segment = datagram.get(offset..).unwrap_or_default();
    match next {
        IPPROTO_TCP => {}
        IPPROTO_ICMPV6 => return done(Parsed::Other(OtherKind::Icmp)),
        other => return transport(other, segment, inner_cut(&l3, total, extent), l3.vlan),
    }
    let info = IpInfo {
        family: Family::V6,
        src: ip.source(),
        dst: ip.destination(),
        ttl: ip.hop_limit(),
        vlan: l3.vlan,
        anomalies: trailing_anomaly(extent),
    };
    done(tcp(segment, total.saturating_sub(offset), info))
}

/// `present` is the segment as captured, `claimed` its length according to the IP header.
fn tcp(present: &[u8], claimed: usize, ip: IpInfo) -> Parsed<'_> {
    let Ok(header) = TcpHeaderSlice::from_slice(present) else {
        return Parsed::Malformed(Malformed::BadTcpHeader);
    };
    let header_len = header.slice().len();
    if header_len > claimed {
        return Parsed::Malformed(Malformed::BadTcpHeader);
    }
    let payload = present.get(header_len..).unwrap_or_default();
    let segment_len = claimed - header_len;
    let mut anomalies = ip.anomalies.0;
    if payload.len() < segment_len {
        anomalies |= WireAnomalies::TRUNCATED_PAYLOAD;
    }
    if !tcp_options_ok(header.options()) {
        anomalies |= WireAnomalies::BAD_TCP_OPTIONS;
    }
    Parsed::Tcp(TcpPacket {
        family: ip.family,
        src: ip.src,
        dst: ip.dst,
        sport: header.source_port(),
        dport: header.destination_port(),
        seq: header.sequence_number(),
        ack: header.acknowledgment_number(),
        flags: TcpFlags(header.slice().get(13).copied().unwrap_or(0)),
        window: header.window_size(),
        ttl: ip.ttl,
        vlan: ip.vlan,
        segment_len: u32::try_from(segment_len).unwrap_or(u32::MAX),
        header: header.slice(),
        payload,
        anomalies: WireAnomalies(anomalies),
    })
}

/// Whether the segment's TCP checksum is right; `None` when it cannot be told (the capture cut
/// the payload). A receiver drops a segment whose checksum is wrong, so an inspector that read
/// it would read bytes the receiver never did (the insertion game).
pub fn tcp_checksum_ok(p: &TcpPacket<'_>) -> Option<bool> {
    if p.payload.len() as u64 != u64::from(p.segment_len) {
        return None;
    }
    let len = p.header.len() + p.payload.len();
    let mut sum: u64 = match p.family {
        Family::V4 => ones_sum(&p.src[..4]) + ones_sum(&p.dst[..4]),
        Family::V6 => ones_sum(&p.src) + ones_sum(&p.dst),
    };
    sum += u64::from(IPPROTO_TCP) + len as u64;
    sum += ones_sum(p.header);
    // The header has an even length (a multiple of 4), so the payload's 16-bit words line up.
    sum += ones_sum(p.payload);
    Some(fold(sum) == 0xffff)
}

/// The one's-complement sum of `data` as big-endian 16-bit words (odd length padded with a
/// zero), folded to 16 bits and returned widened, for the caller to add up and fold again.
///
/// Summed as little-endian 32-bit words into a 64-bit total and byte-swapped once at the end
/// (RFC 1071: the one's-complement sum commutes with swapping the bytes of every word, and
/// 2^16 is 1 modulo 2^16 - 1, so wider words fold to the same sum). Without a swap per word
/// the loop vectorises; the checksum of inspected segments was 6 % of a live worker.
fn ones_sum(data: &[u8]) -> u64 {
    let mut wide = 0u64;
    let mut chunks = data.chunks_exact(4);
    for c in &mut chunks {
        wide += u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]));
    }
    let tail = chunks.remainder();
    let mut last = [0u8; 4];
    last[..tail.len()].copy_from_slice(tail);
    wide += u64::from(u32::from_le_bytes(last));
    u64::from(fold(wide).swap_bytes())
}

fn fold(mut sum: u64) -> u16 {
    while sum >> 16 != 0 {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    sum as u16
}

/// Walks the options: the kinds etherparse knows must have their exact lengths, any other kind
/// must be a well-formed kind-length-value that stays inside the options.
fn tcp_options_ok(options: &[u8]) -> bool {
    let mut iter = TcpOptionsIterator::from_slice(options);
    loop {
        let before = iter.rest();
        match iter.next() {
            None => return true,
            Some(Ok(_)) => {}
            Some(Err(TcpOptionReadError::UnknownId(_))) => {
                // Kinds such as MPTCP (30), TCP-AO (29), Fast Open (34) or the experimental
                // 253/254 are legitimate; only their framing can be wrong.
                let Some(&len) = before.get(1) else {
                    return false;
                };
                if len < 2 {
                    return false;
                }
                let Some(after) = before.get(usize::from(len)..) else {
                    return false;
                };
                iter = TcpOptionsIterator::from_slice(after);
            }
            Some(Err(_)) => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use etherparse::PacketBuilder;

    const SRC4: [u8; 4] = [192, 0, 2, 1];
    const DST4: [u8; 4] = [198, 51, 100, 2];
    const SRC6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1];
    const DST6: [u8; 16] = [0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 2];
    const PAYLOAD: &[u8] = b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n";
    /// MSS 1460, SACK permitted, timestamps, NOP, window scale 7 (20 bytes).
    const GOOD_OPTIONS: [u8; 20] = [
        2, 4, 0x05, 0xb4, 4, 2, 8, 10, 0, 0, 0, 1, 0, 0, 0, 0, 1, 3, 3, 7,
    ];

    fn tcp_v4(payload: &[u8], options: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv4(SRC4, DST4, 61)
            .tcp(40000, 443, 0x1122_3344, 4096)
            .ack(0x5566_7788)
            .psh()
            .options_raw(options)
            .expect("test options fit");
        let mut out = Vec::new();
        builder.write(&mut out, payload).expect("in-memory write");
        out
    }

    fn tcp_v6(payload: &[u8]) -> Vec<u8> {
        let builder = PacketBuilder::ipv6(SRC6, DST6, 33)
            .tcp(40000, 443, 7, 512)
            .syn();
        let mut out = Vec::new();
        builder.write(&mut out, payload).expect("in-memory write");
        out
    }

    fn eth(ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    /// Ethernet with the given tags (TPID, VLAN id), outermost first.
    fn eth_tagged(tags: &[(u16, u16)], ethertype: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
        for &(tpid, id) in tags {
            f.extend_from_slice(&tpid.to_be_bytes());
            f.extend_from_slice(&id.to_be_bytes());
        }
        f.extend_from_slice(&ethertype.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn sll(proto: u16, l3: &[u8]) -> Vec<u8> {
        // Packet type 4 (outgoing), ARPHRD_LOOPBACK (772): a hardware type etherparse refuses.
        let mut f = vec![0, 4, 0x03, 0x04, 0, 6, 0, 0, 0, 0, 0, 0, 0, 0];
        f.extend_from_slice(&proto.to_be_bytes());
        f.extend_from_slice(l3);
        f
    }

    fn sll2(proto: u16, l3: &[u8]) -> Vec<u8> {
        let mut f = proto.to_be_bytes().to_vec();
        f.extend_from_slice(&[0, 0, 0, 0, 0, 3, 0, 1, 0, 6, 2, 0, 0, 0, 0, 9, 0, 0]);
        f.extend_from_slice(l3);
        f
    }

    fn null(head: [u8; 4], l3: &[u8]) -> Vec<u8> {
        let mut f = head.to_vec();
        f.extend_from_slice(l3);
        f
    }

    fn tcp_of(p: Parsed<'_>) -> TcpPacket<'_> {
        match p {
            Parsed::Tcp(t) => t,
            other => panic!("expected TCP, got {other:?}"),
        }
    }

    fn v4_addr(a: [u8; 4]) -> [u8; 16] {
        let mut out = [0; 16];
        out[..4].copy_from_slice(&a);
        out
    }

    /// Sets the IPv4 total length and leaves the checksum stale (the parser does not check it).
    fn set_v4_total(l3: &mut [u8], total: u16) {
        l3[2..4].copy_from_slice(&total.to_be_bytes());
    }

    /// Inserts IPv6 extension headers (raw bytes, next-header fields already chained) after the
    /// fixed header; `first` is the new next-header value of the fixed header.
    fn with_v6_exts(l3: &[u8], first: u8, exts: &[u8]) -> Vec<u8> {
        let mut out = l3[..40].to_vec();
        out[6] = first;
        let plen = u16::from_be_bytes([l3[4], l3[5]]) + exts.len() as u16;
        out[4..6].copy_from_slice(&plen.to_be_bytes());
        out.extend_from_slice(exts);
        out.extend_from_slice(&l3[40..]);
        out
    }

    /// Frames `decode_plain` must take: plain v4 (with and without options, padded short
    /// frames), v6, one and two VLAN tags.
    fn plain_frames() -> Vec<Vec<u8>> {
        let ts = [1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 7];
        vec![
            eth(ETHERTYPE_IPV4, &tcp_v4(PAYLOAD, &[])),
            eth(ETHERTYPE_IPV4, &tcp_v4(PAYLOAD, &ts)),
            eth(ETHERTYPE_IPV4, &tcp_v4(PAYLOAD, &GOOD_OPTIONS)),
            eth(ETHERTYPE_IPV4, &tcp_v4(&[], &[])),
            eth(ETHERTYPE_IPV6, &tcp_v6(PAYLOAD)),
            eth_tagged(
                &[(ETHERTYPE_VLAN, 12)],
                ETHERTYPE_IPV4,
                &tcp_v4(PAYLOAD, &ts),
            ),
            eth_tagged(
                &[(ETHERTYPE_QINQ, 7), (ETHERTYPE_VLAN, 300)],
                ETHERTYPE_IPV6,
                &tcp_v6(b"x"),
            ),
        ]
    }

    /// The random-damage tests' generator (xorshift64), seeded per test so each is repeatable.
    struct XorShift(u64);

    impl XorShift {
        fn next(&mut self) -> u64 {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            self.0
        }
    }

    /// One random damage to a non-empty frame, at a byte within its first `reach`: that byte
    /// replaced, one of its bits flipped, the frame cut there (to one byte at least), or four
    /// bytes added at its end.
    fn damage(f: &mut Vec<u8>, rng: &mut XorShift, reach: usize) {
        let r = rng.next();
        let at = (r >> 8) as usize % reach.min(f.len());
        match r % 4 {
            0 => f[at] = (r >> 32) as u8,
            1 => f[at] ^= 1 << ((r >> 16) % 8),
            2 => f.truncate(at.max(1)),
            _ => f.extend_from_slice(&(r as u32).to_be_bytes()),
        }
    }

    #[test]
    fn plain_decode_equals_the_full_decode_or_declines() {
        let check = |f: &[u8], wire_len: u32| -> bool {
            let frame = Frame {
                wire_len,
                ..Frame::ethernet(f, crate::capture::Timestamp(0))
            };
            let Some(plain) = decode_plain(&frame) else {
                return false;
            };
            let full = decode_frame(&frame, DEFAULT_TUNNEL_DEPTH);
            assert_eq!(full.parsed, Parsed::Tcp(plain), "frame {f:02x?}");
            assert!(full.tunnels.is_empty() && full.fragment.is_none());
            true
        };
        let bases = plain_frames();
        for f in &bases {
            assert!(check(f, f.len() as u32), "declined a plain frame {f:02x?}");
            // Ethernet padding after a short datagram, and bytes after a long one.
            let mut padded = f.clone();
            padded.extend_from_slice(&[0; 6]);
            assert!(check(&padded, padded.len() as u32));
        }
        // Random damage: whatever the plain decode still takes must match the full decode.
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        let (mut taken, mut declined) = (0, 0);
        for round in 0..20_000 {
            let mut f = bases[round % bases.len()].clone();
            for _ in 0..1 + rng.next() % 3 {
                damage(&mut f, &mut rng, usize::MAX);
            }
            let wire_len = f.len() as u32 + (rng.next() % 2) as u32 * 8;
            if check(&f, wire_len) {
                taken += 1;
            } else {
                declined += 1;
            }
        }
        assert!(
            taken > 1000 && declined > 1000,
            "{taken} taken, {declined} declined"
        );
    }

    #[test]
    fn the_untagged_ipv4_shape_answers_as_the_general_plain_view() {
        // Whatever the fixed-offset IPv4 check takes, plain_any takes the same way (so
        // trying it first changes no packet); it must take the undamaged untagged frames.
        let same = |f: &[u8]| -> bool {
            let Some(fast) = plain_untagged_ipv4(f) else {
                return false;
            };
            let general = plain_any(f).expect("plain_any takes what the IPv4 shape took");
            assert_eq!(
                format!("{fast:?}"),
                format!("{general:?}"),
                "frame {f:02x?}"
            );
            true
        };
        let bases = plain_frames();
        assert_eq!(bases.iter().filter(|f| same(f)).count(), 4);
        let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
        let mut taken = 0;
        for round in 0..20_000 {
            let mut f = bases[round % 4].clone();
            // Within the headers the fixed-offset shape reads.
            damage(&mut f, &mut rng, 60);
            taken += same(&f) as u32;
        }
        assert!(taken > 1000, "{taken} taken");
    }

    #[test]
    fn plain_decode_declines_tunnels_fragments_and_other_links() {
        let mut frag = tcp_v4(PAYLOAD, &[]);
        frag[6] = 0x20; // MF
        let vxlan_like = eth(ETHERTYPE_MPLS, &[0, 0, 1, 64]);
        for f in [eth(ETHERTYPE_IPV4, &frag), vxlan_like] {
            assert!(decode_plain(&Frame::ethernet(&f, crate::capture::Timestamp(0))).is_none());
        }
        let raw = tcp_v4(PAYLOAD, &[]);
        let frame = Frame {
            link: LinkType::RawIp,
            ..Frame::ethernet(&raw, crate::capture::Timestamp(0))
        };
        assert!(decode_plain(&frame).is_none());
    }

    #[test]
    fn ethernet_ipv4_tcp_fields() {
        let frame = eth(ETHERTYPE_IPV4, &tcp_v4(PAYLOAD, &GOOD_OPTIONS));
        let t = tcp_of(parse(&frame, LinkType::Ethernet));
        assert_eq!(t.family, Family::V4);
        assert_eq!(t.src, v4_addr(SRC4));
        assert_eq!(t.dst, v4_addr(DST4));
        assert_eq!((t.sport, t.dport), (40000, 443));
        assert_eq!((t.seq, t.ack), (0x1122_3344, 0x5566_7788));
        assert!(t.flags.ack() && t.flags.has(TcpFlags::PSH) && !t.flags.syn());
        assert_eq!(t.window, 4096);
        assert_eq!(t.ttl, 61);
        assert_eq!(t.vlan, None);
        assert_eq!(t.segment_len as usize, PAYLOAD.len());
        assert_eq!(t.payload, PAYLOAD);
        assert_eq!(t.anomalies, WireAnomalies::default());
        assert_eq!(
            parse_captured(&frame, frame.len() as u32, LinkType::Ethernet),
            Parsed::Tcp(t)
        );
    }

    #[test]
    fn ethernet_ipv6_tcp_fields() {
        let frame = eth(ETHERTYPE_IPV6, &tcp_v6(PAYLOAD));
        let t = tcp_of(parse(&frame, LinkType::Ethernet));
        assert_eq!(t.family, Family::V6);
        assert_eq!((t.src, t.dst), (SRC6, DST6));
        assert_eq!((t.seq, t.ttl, t.window), (7, 33, 512));
        assert!(t.flags.syn() && !t.flags.ack());
        assert_eq!(t.payload, PAYLOAD);
        assert_eq!(t.segment_len as usize, PAYLOAD.len());
    }

    #[test]
    fn ethernet_padding_is_not_payload() {
        let l3 = tcp_v4(&[], &[]);
        assert_eq!(l3.len(), 40);
        let mut frame = eth(ETHERTYPE_IPV4, &l3);
        frame.resize(60, 0xaa);
        let t = tcp_of(parse(&frame, LinkType::Ethernet));
        assert_eq!(t.payload, b"");
        assert_eq!(t.segment_len, 0);
        assert_eq!(t.anomalies, WireAnomalies::default());
        // The same bytes after a long datagram are not padding.
        let mut long = eth(ETHERTYPE_IPV4, &tcp_v4(PAYLOAD, &[]));
        long.extend_from_slice(&[0xaa; 6]);
        let t = tcp_of(parse(&long, LinkType::Ethernet));
        assert_eq!(t.payload, PAYLOAD);
        assert!(t.anomalies.has(WireAnomalies::TRAILING_BYTES));
        // Raw IP links never pad.
        let mut raw = l3.clone();
        raw.extend_from_slice(&[0; 6]);
        let t = tcp_of(parse(&raw, LinkType::RawIp));
        assert!(t.anomalies.has(WireAnomalies::TRAILING_BYTES));
        assert_eq!(t.payload, b"");
    }

    #[test]
    fn vlan_tags_single_qinq_and_too_many() {
        let l3 = tcp_v4(PAYLOAD, &[]);
        for tpid in [ETHERTYPE_VLAN, ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD] {
            let one = eth_tagged(&[(tpid, 0x2064)], ETHERTYPE_IPV4, &l3);
            let t = tcp_of(parse(&one, LinkType::Ethernet));
            assert_eq!(t.vlan, Some(100), "priority bits are not part of the id");
            assert_eq!(t.payload, PAYLOAD);
        }
        for outer in [ETHERTYPE_QINQ, ETHERTYPE_QINQ_OLD, ETHERTYPE_VLAN] {
            let two = eth_tagged(&[(outer, 200), (ETHERTYPE_VLAN, 100)], ETHERTYPE_IPV4, &l3);
            let t = tcp_of(parse(&two, LinkType::Ethernet));
            assert_eq!(t.vlan, Some(200), "outermost tag wins");
            assert_eq!(t.payload, PAYLOAD);
        }
        let three = eth_tagged(
            &[
                (ETHERTYPE_QINQ, 1),
                (ETHERTYPE_VLAN, 2),
                (ETHERTYPE_VLAN, 3),
            ],
            ETHERTYPE_IPV4,
            &l3,
        );
        assert_eq!(
            parse(&three, LinkType::Ethernet),
            Parsed::Malformed(Malformed::BadVlan)
        );
        let tagged_arp = eth_tagged(&[(ETHERTYPE_VLAN, 5)], ETHERTYPE_ARP, &[0; 28]);
        assert_eq!(
            parse(&tagged_arp, LinkType::Ethernet),
            Parsed::Other(OtherKind::Arp)
        );
    }

    #[test]
    fn cooked_captures_v1_and_v2() {
        let l3 = tcp_v4(PAYLOAD, &GOOD_OPTIONS);
        let f = sll(ETHERTYPE_IPV4, &l3);
        let t = tcp_of(parse(&f, LinkType::LinuxSll));
        assert_eq!(t.payload, PAYLOAD);
        let f = sll2(ETHERTYPE_IPV4, &l3);
        let t = tcp_of(parse(&f, LinkType::LinuxSll2));
        assert_eq!(t.payload, PAYLOAD);
        let l3 = tcp_v6(PAYLOAD);
        let f = sll(ETHERTYPE_IPV6, &l3);
        let t = tcp_of(parse(&f, LinkType::LinuxSll));
        assert_eq!((t.family, t.payload), (Family::V6, PAYLOAD));
        let f = sll2(ETHERTYPE_IPV6, &l3);
        let t = tcp_of(parse(&f, LinkType::LinuxSll2));
        assert_eq!((t.family, t.payload), (Family::V6, PAYLOAD));
        // A VLAN tag left in a cooked capture.
        let mut tagged = vec![0x00, 0x2a];
        tagged.extend_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
        tagged.extend_from_slice(&tcp_v4(PAYLOAD, &[]));
        let f = sll(ETHERTYPE_VLAN, &tagged);
        let t = tcp_of(parse(&f, LinkType::LinuxSll));
        assert_eq!(t.vlan, Some(42));
        assert_eq!(
            parse(&sll(0x0004, &[0; 30]), LinkType::LinuxSll),
            Parsed::Other(OtherKind::OtherEther(4))
        );
    }

    #[test]
    fn raw_and_single_family_links() {
        let v4 = tcp_v4(PAYLOAD, &[]);
        let v6 = tcp_v6(PAYLOAD);
        assert_eq!(tcp_of(parse(&v4, LinkType::RawIp)).family, Family::V4);
        assert_eq!(tcp_of(parse(&v6, LinkType::RawIp)).family, Family::V6);
        assert_eq!(tcp_of(parse(&v4, LinkType::Ipv4)).payload, PAYLOAD);
        assert_eq!(tcp_of(parse(&v6, LinkType::Ipv6)).payload, PAYLOAD);
        let bad = Parsed::Malformed(Malformed::BadIpVersion);
        assert_eq!(parse(&v6, LinkType::Ipv4), bad);
        assert_eq!(parse(&v4, LinkType::Ipv6), bad);
        let mut v5 = v4.clone();
        v5[0] = 0x55;
        assert_eq!(parse(&v5, LinkType::RawIp), bad);
        // The EtherType says IPv4 but an IPv6 header follows.
        assert_eq!(parse(&eth(ETHERTYPE_IPV4, &v6), LinkType::Ethernet), bad);
        assert_eq!(parse(&eth(ETHERTYPE_IPV6, &v4), LinkType::Ethernet), bad);
    }

    #[test]
    fn null_loopback_families_in_both_byte_orders() {
        let v4 = tcp_v4(PAYLOAD, &[]);
        let v6 = tcp_v6(PAYLOAD);
        let le = |af: u32| af.to_le_bytes();
        let be = |af: u32| af.to_be_bytes();
        for head in [le(2), be(2)] {
            let f = null(head, &v4);
            let t = tcp_of(parse(&f, LinkType::Null));
            assert_eq!((t.family, t.payload), (Family::V4, PAYLOAD));
        }
        for af in [10, 24, 28, 30] {
            for head in [le(af), be(af)] {
                let f = null(head, &v6);
                let t = tcp_of(parse(&f, LinkType::Null));
                assert_eq!((t.family, t.payload), (Family::V6, PAYLOAD), "family {af}");
            }
        }
        // AF_APPLETALK (16 on BSD): not IP.
        assert_eq!(
            parse(&null(le(16), &v4), LinkType::Null),
            Parsed::Other(OtherKind::OtherEther(16))
        );
        assert_eq!(
            parse(&[2, 0, 0], LinkType::Null),
            Parsed::Malformed(Malformed::TruncatedLink)
        );
    }

    #[test]
    fn ipv4_options_are_skipped_by_ihl() {
        let plain = tcp_v4(PAYLOAD, &[]);
        // Record-route with room for two addresses, then NOP and end of options: 12 bytes.
        let opts = [7, 11, 4, 0, 0, 0, 0, 0, 0, 0, 0, 0];
        let mut l3 = plain[..20].to_vec();
        l3[0] = 0x40 | 8;
        l3.extend_from_slice(&opts);
        l3.extend_from_slice(&plain[20..]);
        let total = l3.len() as u16;
        set_v4_total(&mut l3, total);
        let f = eth(ETHERTYPE_IPV4, &l3);
        let t = tcp_of(parse(&f, LinkType::Ethernet));
        assert_eq!((t.sport, t.dport), (40000, 443));
        assert_eq!(t.payload, PAYLOAD);
        // IHL claims options that are not there.
        let mut short = plain.clone();
        short[0] = 0x4f;
        assert_eq!(
            parse(&short[..40], LinkType::RawIp),
            Parsed::Malformed(Malformed::BadIpv4Header)
        );
        let mut tiny = plain.clone();
        tiny[0] = 0x44;
        assert_eq!(
            parse(&tiny, LinkType::RawIp),
            Parsed::Malformed(Malformed::BadIpv4Header)
        );
    }

    #[test]
    fn ipv4_length_checks_and_tso() {
        let plain = tcp_v4(PAYLOAD, &[]);
        let full = plain.len();
        let mut small = plain.clone();
        set_v4_total(&mut small, 19);
        assert_eq!(
            parse(&small, LinkType::RawIp),
            Parsed::Malformed(Malformed::BadIpv4Length)
        );
        // Claims 10 bytes more than the frame: a lie when nothing was cut, a cut otherwise.
        let mut long = plain.clone();
        set_v4_total(&mut long, full as u16 + 10);
        assert_eq!(
            parse_captured(&long, full as u32, LinkType::RawIp),
            Parsed::Malformed(Malformed::BadIpv4Length)
        );
        let t = tcp_of(parse_captured(&long, full as u32 + 10, LinkType::RawIp));
        assert!(t.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD));
        assert_eq!(t.segment_len as usize, PAYLOAD.len() + 10);
        assert_eq!(t.payload, PAYLOAD);
        let t = tcp_of(parse(&long, LinkType::RawIp));
        assert!(t.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD));
        // Total length zero: a TSO super-packet captured before segmentation.
        let mut tso = plain.clone();
        set_v4_total(&mut tso, 0);
        let t = tcp_of(parse_captured(&tso, full as u32, LinkType::RawIp));
        assert_eq!(t.payload, PAYLOAD);
        assert_eq!(t.anomalies, WireAnomalies::default());
    }

    #[test]
    fn ipv4_fragments_are_counted_not_parsed() {
        let plain = tcp_v4(PAYLOAD, &[]);
        let mut first = plain.clone();
        first[6] = 0x20; // MF, offset 0
        let mut later = plain.clone();
        later[6] = 0x00;
        later[7] = 0x10; // offset 16 * 8
        let mut df = plain.clone();
        df[6] = 0x40; // DF only: a whole datagram
        let frag = Parsed::Other(OtherKind::Fragment);
        assert_eq!(parse(&first, LinkType::RawIp), frag);
        assert_eq!(parse(&later, LinkType::RawIp), frag);
        assert_eq!(tcp_of(parse(&df, LinkType::RawIp)).payload, PAYLOAD);
    }

    fn v6_ext_chain() -> Vec<u8> {
        let mut exts = Vec::new();
        // Hop-by-hop (8 bytes, PadN), next: routing.
        exts.extend_from_slice(&[IPPROTO_ROUTING, 0, 1, 4, 0, 0, 0, 0]);
        // Routing type 4 with 16 more bytes, segments left 0, next: destination options.
        exts.extend_from_slice(&[IPPROTO_DSTOPTS, 2, 4, 0, 0, 0, 0, 0]);
        exts.extend_from_slice(&[0; 16]);
        // Destination options (16 bytes), next: AH.
        exts.extend_from_slice(&[IPPROTO_AH, 1, 1, 12, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
        // AH with a 12-byte ICV: payload-length field 4 -> (4 + 2) * 4 = 24 bytes, next: atomic
        // fragment header.
        exts.extend_from_slice(&[IPPROTO_FRAGMENT, 4, 0, 0, 0, 0, 0, 1, 0, 0, 0, 9]);
        exts.extend_from_slice(&[0; 12]);
        // Fragment header with offset 0 and MF clear (atomic), next: TCP.
        exts.extend_from_slice(&[IPPROTO_TCP, 0, 0, 0, 0, 0, 0, 42]);
        exts
    }

    #[test]
    fn ipv6_extension_headers_walked() {
        let l3 = with_v6_exts(&tcp_v6(PAYLOAD), IPPROTO_HOPOPTS, &v6_ext_chain());
        let f = eth(ETHERTYPE_IPV6, &l3);
        let t = tcp_of(parse(&f, LinkType::Ethernet));
        assert_eq!((t.sport, t.dport, t.payload), (40000, 443, PAYLOAD));
        assert_eq!(t.segment_len as usize, PAYLOAD.len());
        // A real fragment after the same chain.
        let mut exts = v6_ext_chain();
        let n = exts.len();
        exts[n - 5] = 1; // MF
        let l3 = with_v6_exts(&tcp_v6(PAYLOAD), IPPROTO_HOPOPTS, &exts);
        assert_eq!(
            parse(&l3, LinkType::Ipv6),
            Parsed::Other(OtherKind::Fragment)
        );
        // An extension header longer than the datagram.
        let mut exts = v6_ext_chain();
        exts[1] = 200;
        let l3 = with_v6_exts(&tcp_v6(PAYLOAD), IPPROTO_HOPOPTS, &exts);
        assert_eq!(
            parse(&l3, LinkType::Ipv6),
            Parsed::Malformed(Malformed::BadIpv6Extension)
        );
        // AH with a zero length field is invalid.
        let mut ah = vec![IPPROTO_TCP, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 1];
        ah.extend_from_slice(&[0; 4]);
        let l3 = with_v6_exts(&tcp_v6(PAYLOAD), IPPROTO_AH, &ah);
        assert_eq!(
            parse(&l3, LinkType::Ipv6),
            Parsed::Malformed(Malformed::BadIpv6Extension)
        );
        // No next header: not TCP.
        let l3 = with_v6_exts(&tcp_v6(b""), IPPROTO_DSTOPTS, &[59, 0, 1, 4, 0, 0, 0, 0]);
        assert_eq!(
            parse(&l3, LinkType::Ipv6),
            Parsed::Other(OtherKind::OtherIp(59))
        );
    }

    #[test]
    fn ipv6_payload_length_checks() {
        let l3 = tcp_v6(PAYLOAD);
        let mut long = l3.clone();
        let plen = (l3.len() - 40 + 8) as u16;
        long[4..6].copy_from_slice(&plen.to_be_bytes());
        assert_eq!(
            parse_captured(&long, long.len() as u32, LinkType::Ipv6),
            Parsed::Malformed(Malformed::BadIpv6Header)
        );
        let t = tcp_of(parse(&long, LinkType::Ipv6));
        assert!(t.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD));
        // Payload length too small to hold the TCP header.
        let mut short = l3.clone();
        short[4..6].copy_from_slice(&10u16.to_be_bytes());
        assert_eq!(
            parse(&short, LinkType::Ipv6),
            Parsed::Malformed(Malformed::BadTcpHeader)
        );
    }

    #[test]
    fn tcp_header_checks() {
        let plain = tcp_v4(PAYLOAD, &[]);
        let mut small_offset = plain.clone();
        small_offset[32] = 0x40; // data offset 4
        assert_eq!(
            parse(&small_offset, LinkType::RawIp),
            Parsed::Malformed(Malformed::BadTcpHeader)
        );
        // Data offset 15 (60 bytes) inside a datagram that only holds 20 + 10 bytes of TCP.
        let mut big_offset = tcp_v4(&PAYLOAD[..10], &[]);
        big_offset[32] = 0xf0;
        let mut framed = big_offset.clone();
        framed.extend_from_slice(&[0; 40]);
        assert_eq!(
            parse(&framed, LinkType::RawIp),
            Parsed::Malformed(Malformed::BadTcpHeader)
        );
    }

    fn options_anomaly(options: &[u8]) -> bool {
        let frame = tcp_v4(PAYLOAD, options);
        let t = tcp_of(parse(&frame, LinkType::RawIp));
        assert_eq!(t.payload, PAYLOAD, "options never move the payload");
        t.anomalies.has(WireAnomalies::BAD_TCP_OPTIONS)
    }

    #[test]
    fn tcp_options_good_and_bad() {
        assert!(!options_anomaly(&GOOD_OPTIONS));
        // Unknown but well-framed kinds: Fast Open cookie request, MPTCP capable, then EOL.
        assert!(!options_anomaly(&[34, 2, 30, 4, 0, 0x81, 0, 0]));
        // SACK with one block, NOPs.
        assert!(!options_anomaly(&[1, 1, 5, 10, 0, 0, 0, 1, 0, 0, 0, 2]));
        // MSS with length 5.
        assert!(options_anomaly(&[2, 5, 0x05, 0xb4, 0, 0, 0, 0]));
        // Window scale running past the options.
        assert!(options_anomaly(&[1, 1, 1, 3]));
        // Unknown kind with length 1, and one longer than what is left.
        assert!(options_anomaly(&[99, 1, 0, 0]));
        assert!(options_anomaly(&[1, 99, 9, 0]));
        // SACK of 11 bytes is no whole number of blocks.
        assert!(options_anomaly(&[5, 11, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0]));
    }

    #[test]
    fn non_tcp_kinds() {
        let udp = {
            let mut v = Vec::new();
            PacketBuilder::ipv4(SRC4, DST4, 9)
                .udp(53, 53)
                .write(&mut v, b"dns")
                .unwrap();
            v
        };
        assert_eq!(
            parse(&eth(ETHERTYPE_IPV4, &udp), LinkType::Ethernet),
            Parsed::Other(OtherKind::Udp)
        );
        let udp6 = {
            let mut v = Vec::new();
            PacketBuilder::ipv6(SRC6, DST6, 9)
                .udp(53, 53)
                .write(&mut v, b"dns")
                .unwrap();
            v
        };
        assert_eq!(parse(&udp6, LinkType::RawIp), Parsed::Other(OtherKind::Udp));
        let icmp = {
            let mut v = Vec::new();
            PacketBuilder::ipv4(SRC4, DST4, 9)
                .icmpv4_echo_request(1, 1)
                .write(&mut v, b"ping")
                .unwrap();
            v
        };
        assert_eq!(
            parse(&icmp, LinkType::RawIp),
            Parsed::Other(OtherKind::Icmp)
        );
        let icmp6 = {
            let mut v = Vec::new();
            PacketBuilder::ipv6(SRC6, DST6, 9)
                .icmpv6_echo_request(1, 1)
                .write(&mut v, b"ping")
                .unwrap();
            v
        };
        assert_eq!(
            parse(&icmp6, LinkType::RawIp),
            Parsed::Other(OtherKind::Icmp)
        );
        let mut gre = udp.clone();
        gre[9] = 47;
        assert_eq!(
            parse(&gre, LinkType::RawIp),
            Parsed::Other(OtherKind::OtherIp(47))
        );
        assert_eq!(
            parse(&eth(ETHERTYPE_ARP, &[0; 28]), LinkType::Ethernet),
            Parsed::Other(OtherKind::Arp)
        );
        assert_eq!(
            parse(&eth(0x88cc, &[0; 40]), LinkType::Ethernet),
            Parsed::Other(OtherKind::OtherEther(0x88cc))
        );
    }

    #[test]
    fn snaplen_cut_payload_and_header() {
        let frame = eth(ETHERTYPE_IPV4, &tcp_v4(PAYLOAD, &GOOD_OPTIONS));
        let wire = frame.len() as u32;
        let headers = 14 + 20 + 40;
        let t = tcp_of(parse_captured(
            &frame[..headers + 5],
            wire,
            LinkType::Ethernet,
        ));
        assert_eq!(t.payload, &PAYLOAD[..5]);
        assert_eq!(t.segment_len as usize, PAYLOAD.len());
        assert!(t.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD));
        assert!(!t.anomalies.has(WireAnomalies::BAD_TCP_OPTIONS));
        assert_eq!(
            parse_captured(&frame[..headers - 1], wire, LinkType::Ethernet),
            Parsed::Malformed(Malformed::BadTcpHeader)
        );
    }

    /// Parses every prefix of `frame` (as a capture cut of the full frame, and with the original
    /// length unknown) and checks each against the layer the cut falls in. `layers` lists, in
    /// order, where each header ends and what a cut before that end must report; past the last
    /// header the segment must come back with the captured part of `payload`.
    fn check_prefixes(frame: &[u8], link: LinkType, layers: &[(usize, Malformed)], payload: &[u8]) {
        let headers_end = layers.last().map_or(0, |l| l.0);
        assert_eq!(
            frame.len(),
            headers_end + payload.len(),
            "test frame layout"
        );
        for n in 0..=frame.len() {
            let cut = &frame[..n];
            let expected_malformed = layers.iter().find(|(end, _)| n < *end).map(|l| l.1);
            for parsed in [
                parse_captured(cut, frame.len() as u32, link),
                parse(cut, link),
            ] {
                match (expected_malformed, parsed) {
                    (Some(reason), got) => {
                        assert_eq!(got, Parsed::Malformed(reason), "{link} cut at {n}")
                    }
                    (None, Parsed::Tcp(t)) => {
                        let have = n - headers_end;
                        assert_eq!(t.payload, &payload[..have], "{link} cut at {n}");
                        assert_eq!(t.segment_len as usize, payload.len());
                        assert_eq!(
                            t.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD),
                            have < payload.len(),
                            "{link} cut at {n}"
                        );
                    }
                    (None, other) => panic!("{link} cut at {n}: {other:?}"),
                }
            }
        }
    }

    #[test]
    fn truncated_at_every_length() {
        use Malformed::*;
        let v4 = tcp_v4(PAYLOAD, &GOOD_OPTIONS);
        let v6 = tcp_v6(PAYLOAD);
        let v4_layers = |link_end: usize| {
            [
                (link_end + 20, BadIpv4Header),
                (link_end + 60, BadTcpHeader),
            ]
        };
        let v6_layers = |link_end: usize| {
            [
                (link_end + 40, BadIpv6Header),
                (link_end + 60, BadTcpHeader),
            ]
        };

        let mut layers = vec![(14, TruncatedLink)];
        layers.extend(v4_layers(14));
        check_prefixes(
            &eth(ETHERTYPE_IPV4, &v4),
            LinkType::Ethernet,
            &layers,
            PAYLOAD,
        );

        let mut layers = vec![(14, TruncatedLink), (18, BadVlan), (22, BadVlan)];
        layers.extend(v6_layers(22));
        let qinq = eth_tagged(
            &[(ETHERTYPE_QINQ, 7), (ETHERTYPE_VLAN, 8)],
            ETHERTYPE_IPV6,
            &v6,
        );
        check_prefixes(&qinq, LinkType::Ethernet, &layers, PAYLOAD);

        let mut layers = vec![(16, TruncatedLink)];
        layers.extend(v4_layers(16));
        check_prefixes(
            &sll(ETHERTYPE_IPV4, &v4),
            LinkType::LinuxSll,
            &layers,
            PAYLOAD,
        );

        let mut layers = vec![(20, TruncatedLink)];
        layers.extend(v6_layers(20));
        check_prefixes(
            &sll2(ETHERTYPE_IPV6, &v6),
            LinkType::LinuxSll2,
            &layers,
            PAYLOAD,
        );

        let mut layers = vec![(4, TruncatedLink)];
        layers.extend(v6_layers(4));
        check_prefixes(
            &null(30u32.to_le_bytes(), &v6),
            LinkType::Null,
            &layers,
            PAYLOAD,
        );

        let mut layers = vec![(1, TruncatedLink)];
        layers.extend([(20, BadIpv4Header), (60, BadTcpHeader)]);
        check_prefixes(&v4, LinkType::RawIp, &layers, PAYLOAD);
        check_prefixes(&v4, LinkType::Ipv4, &layers, PAYLOAD);
        let mut layers = vec![(1, TruncatedLink)];
        layers.extend([(40, BadIpv6Header), (60, BadTcpHeader)]);
        check_prefixes(&v6, LinkType::Ipv6, &layers, PAYLOAD);

        // IPv6 with every extension header: a cut anywhere in the chain is an extension error.
        let chain = v6_ext_chain();
        let l3 = with_v6_exts(&v6, IPPROTO_HOPOPTS, &chain);
        let ext_end = 40 + chain.len();
        let layers = [
            (1, TruncatedLink),
            (40, BadIpv6Header),
            (ext_end, BadIpv6Extension),
            (ext_end + 20, BadTcpHeader),
        ];
        check_prefixes(&l3, LinkType::RawIp, &layers, PAYLOAD);

        // IPv4 with options.
        let mut opt = v4[..20].to_vec();
        opt[0] = 0x46;
        opt.extend_from_slice(&[1, 1, 1, 0]);
        opt.extend_from_slice(&v4[20..]);
        let total = opt.len() as u16;
        set_v4_total(&mut opt, total);
        let layers = [(1, TruncatedLink), (24, BadIpv4Header), (64, BadTcpHeader)];
        check_prefixes(&opt, LinkType::RawIp, &layers, PAYLOAD);
    }

    /// Deterministic mutation sweep: every byte of several good frames set to a handful of
    /// values, parsed as every link type. Nothing may panic, and whatever comes back as TCP
    /// must be consistent with the bytes it came from.
    #[test]
    fn mutated_frames_never_panic() {
        let v4 = tcp_v4(PAYLOAD, &GOOD_OPTIONS);
        let v6x = with_v6_exts(&tcp_v6(PAYLOAD), IPPROTO_HOPOPTS, &v6_ext_chain());
        let seeds = [
            eth(ETHERTYPE_IPV4, &v4),
            eth_tagged(
                &[(ETHERTYPE_QINQ, 1), (ETHERTYPE_VLAN, 2)],
                ETHERTYPE_IPV6,
                &v6x,
            ),
            sll(ETHERTYPE_IPV4, &v4),
            null(2u32.to_be_bytes(), &v4),
            v6x.clone(),
        ];
        let links = [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::RawIp,
            LinkType::Ipv4,
            LinkType::Ipv6,
            LinkType::Null,
        ];
        let mut tcp_seen = 0usize;
        for seed in &seeds {
            let mut frame = seed.clone();
            for i in 0..frame.len() {
                let original = frame[i];
                for value in [
                    0x00,
                    0xff,
                    0x80,
                    0x0f,
                    original ^ 0x01,
                    original.wrapping_add(8),
                ] {
                    frame[i] = value;
                    for link in links {
                        for wire_len in [frame.len() as u32, frame.len() as u32 + 100] {
                            if let Parsed::Tcp(t) = parse_captured(&frame, wire_len, link) {
                                tcp_seen += 1;
                                assert!(t.payload.len() <= t.segment_len as usize);
                                let start = t.payload.as_ptr() as usize - frame.as_ptr() as usize;
                                assert!(start + t.payload.len() <= frame.len());
                            }
                        }
                    }
                }
                frame[i] = original;
            }
        }
        assert!(
            tcp_seen > 1000,
            "the sweep exercised the TCP path ({tcp_seen})"
        );
    }

    /// Random bytes of random lengths as every link type: no panic, and TCP results stay
    /// inside the frame.
    #[test]
    fn random_frames_never_panic() {
        let mut state = 0x9e37_79b9_7f4a_7c15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        let links = [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::RawIp,
            LinkType::Ipv4,
            LinkType::Ipv6,
            LinkType::Null,
        ];
        let mut frame = vec![0u8; 256];
        for round in 0..20_000 {
            let len = (next() % 256) as usize;
            for b in frame.iter_mut().take(len) {
                *b = next() as u8;
            }
            // Steer a share of the rounds onto the IP paths so the deeper layers are reached.
            if round % 2 == 0 && len > 20 {
                frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
                frame[14] = 0x45;
                frame[0] = if round % 4 == 0 { 0x45 } else { 0x60 };
                frame[23] = IPPROTO_TCP;
                frame[9] = IPPROTO_TCP;
                frame[6] = IPPROTO_TCP;
            }
            let data = &frame[..len];
            for link in links {
                let wire_len = len as u32 + (next() % 3) as u32 * 10;
                if let Parsed::Tcp(t) = parse_captured(data, wire_len, link) {
                    assert!(t.payload.len() <= t.segment_len as usize);
                    let start = t.payload.as_ptr() as usize - data.as_ptr() as usize;
                    assert!(start + t.payload.len() <= data.len());
                }
                let _ = parse(data, link);
            }
        }
    }

    fn udp_v4(sport: u16, dport: u16, payload: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        PacketBuilder::ipv4([192, 0, 2, 9], [192, 0, 2, 10], 64)
            .udp(sport, dport)
            .write(&mut v, payload)
            .unwrap();
        v
    }

    fn ip_proto_v4(proto: u8, payload: &[u8]) -> Vec<u8> {
        let mut v = udp_v4(1, 1, b"");
        v.truncate(20);
        v[9] = proto;
        v.extend_from_slice(payload);
        let total = v.len() as u16;
        set_v4_total(&mut v, total);
        v
    }

    fn gtp(inner: &[u8]) -> Vec<u8> {
        let mut g = vec![0x30, 0xff];
        g.extend_from_slice(&(inner.len() as u16).to_be_bytes());
        g.extend_from_slice(&[0, 0, 0, 1]);
        g.extend_from_slice(inner);
        g
    }

    fn decode(frame: &[u8], link: LinkType, depth: u8) -> Decoded<'_> {
        decode_captured(frame, frame.len() as u32, link, depth)
    }

    #[test]
    fn tunnels_open_to_the_inner_segment() {
        let inner = tcp_v4(PAYLOAD, &[]);
        let inner6 = tcp_v6(PAYLOAD);
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vx.extend_from_slice(&eth(ETHERTYPE_IPV4, &inner));
        let mut gre = vec![0, 0, 0x86, 0xdd];
        gre.extend_from_slice(&inner6);
        let mut mpls = vec![0, 0, 0x10, 64, 0, 0, 0x21, 64];
        mpls.extend_from_slice(&inner);
        let cases: [(Vec<u8>, LinkType, TunnelKind); 5] = [
            (
                udp_v4(1, 2152, &gtp(&inner)),
                LinkType::RawIp,
                TunnelKind::GtpU,
            ),
            (udp_v4(1, 4789, &vx), LinkType::RawIp, TunnelKind::Vxlan),
            (
                ip_proto_v4(IPPROTO_GRE, &gre),
                LinkType::RawIp,
                TunnelKind::Gre,
            ),
            (
                ip_proto_v4(IPPROTO_IPIP, &inner),
                LinkType::RawIp,
                TunnelKind::Ipv4InIp,
            ),
            (
                eth(ETHERTYPE_MPLS, &mpls),
                LinkType::Ethernet,
                TunnelKind::Mpls,
            ),
        ];
        for (frame, link, kind) in cases {
            let d = decode(&frame, link, DEFAULT_TUNNEL_DEPTH);
            let t = tcp_of(d.parsed);
            assert_eq!(t.payload, PAYLOAD, "{kind:?}");
            assert_eq!(d.tunnels.kinds().collect::<Vec<_>>(), [kind]);
            assert!(
                !t.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD),
                "{kind:?}"
            );
            // Closed tunnels: the outer packet is what counts, as before tunnels were opened.
            let closed = decode(&frame, link, 0);
            assert!(matches!(closed.parsed, Parsed::Other(_)), "{kind:?}");
            assert!(closed.tunnels.is_empty());
            // Every cut of a tunnelled frame is told apart from a whole one, and never panics.
            for n in 0..frame.len() {
                let cut = &frame[..n];
                if let Parsed::Tcp(t) = decode_captured(cut, frame.len() as u32, link, 4).parsed {
                    assert!(
                        t.anomalies.has(WireAnomalies::TRUNCATED_PAYLOAD),
                        "{kind:?} {n}"
                    );
                }
            }
        }
    }

    #[test]
    fn tunnel_lookalikes_stay_what_they_are() {
        // A GTP echo request on 2152, VXLAN without its I flag, a Geneve version 1 header:
        // plain UDP. Truncated tunnel headers are malformed.
        let echo = [0x32, 0x01, 0, 4, 0, 0, 0, 0, 0, 1, 0, 0];
        assert_eq!(
            parse(&udp_v4(2152, 2152, &echo), LinkType::RawIp),
            Parsed::Other(OtherKind::Udp)
        );
        let mut vx = vec![0, 0, 0, 0, 0, 0, 1, 0];
        vx.extend_from_slice(&eth(ETHERTYPE_IPV4, &tcp_v4(PAYLOAD, &[])));
        assert_eq!(
            parse(&udp_v4(1, 4789, &vx), LinkType::RawIp),
            Parsed::Other(OtherKind::Udp)
        );
        assert_eq!(
            parse(
                &udp_v4(1, 6081, &[0x40, 0, 0x65, 0x58, 0, 0, 0, 0]),
                LinkType::RawIp
            ),
            Parsed::Other(OtherKind::Udp)
        );
        assert_eq!(
            parse(&udp_v4(1, 4789, &[0x08, 0, 0]), LinkType::RawIp),
            Parsed::Malformed(Malformed::BadTunnel)
        );
        assert_eq!(
            parse(&ip_proto_v4(IPPROTO_GRE, &[0, 0]), LinkType::RawIp),
            Parsed::Malformed(Malformed::BadTunnel)
        );
        // PPTP's enhanced GRE (version 1) is not opened.
        assert_eq!(
            parse(
                &ip_proto_v4(IPPROTO_GRE, &[0x30, 0x01, 0x88, 0x0b, 0, 0, 0, 0]),
                LinkType::RawIp
            ),
            Parsed::Other(OtherKind::OtherIp(IPPROTO_GRE))
        );
        // An MPLS stack that never reaches bottom-of-stack.
        assert_eq!(
            parse(&eth(ETHERTYPE_MPLS, &[0; 80]), LinkType::Ethernet),
            Parsed::Malformed(Malformed::BadTunnel)
        );
    }

    #[test]
    fn tunnel_depth_is_bounded() {
        let mut packet = tcp_v4(PAYLOAD, &[]);
        for _ in 0..MAX_TUNNEL_DEPTH + 2 {
            packet = ip_proto_v4(IPPROTO_IPIP, &packet);
        }
        for depth in 1..=MAX_TUNNEL_DEPTH as u8 {
            let d = decode(&packet, LinkType::RawIp, depth);
            assert_eq!(d.parsed, Parsed::Other(OtherKind::TunnelTooDeep));
            assert_eq!(d.tunnels.depth(), usize::from(depth));
        }
        // Asking for more than the cap opens no more than the cap.
        let d = decode(&packet, LinkType::RawIp, u8::MAX);
        assert_eq!(d.tunnels.depth(), MAX_TUNNEL_DEPTH);
    }

    /// Mutations of tunnelled frames: no panic, and TCP results stay inside the frame.
    #[test]
    fn mutated_tunnel_frames_never_panic() {
        let inner = tcp_v4(PAYLOAD, &[]);
        let mut vx = vec![0x08, 0, 0, 0, 0, 0, 1, 0];
        vx.extend_from_slice(&eth(ETHERTYPE_IPV4, &inner));
        let mut gre = vec![0xb0, 0, 0x88, 0xbe, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 2];
        gre.extend_from_slice(&[0x10, 0, 0, 5, 0, 0, 0, 0]);
        gre.extend_from_slice(&eth(ETHERTYPE_IPV4, &inner));
        let mut gtp_ext = vec![0x34, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0x85, 1, 0, 1, 0];
        gtp_ext.extend_from_slice(&inner);
        let len = (gtp_ext.len() - 8) as u16;
        gtp_ext[2..4].copy_from_slice(&len.to_be_bytes());
        let seeds = [
            udp_v4(1, 4789, &vx),
            ip_proto_v4(IPPROTO_GRE, &gre),
            udp_v4(2152, 2152, &gtp_ext),
        ];
        let mut tcp_seen = 0;
        for seed in &seeds {
            assert!(matches!(parse(seed, LinkType::RawIp), Parsed::Tcp(_)));
            let mut frame = seed.clone();
            for i in 0..frame.len() {
                let original = frame[i];
                for value in [
                    0x00,
                    0xff,
                    0x80,
                    0x0f,
                    original ^ 0x01,
                    original.wrapping_add(8),
                ] {
                    frame[i] = value;
                    if let Parsed::Tcp(t) =
                        parse_captured(&frame, frame.len() as u32, LinkType::RawIp)
                    {
                        tcp_seen += 1;
                        let start = t.payload.as_ptr() as usize - frame.as_ptr() as usize;
                        assert!(start + t.payload.len() <= frame.len());
                    }
                }
                frame[i] = original;
            }
        }
        assert!(tcp_seen > 100, "{tcp_seen}");
    }

    #[test]
    fn tcp_checksums_are_checked_over_both_families() {
        for frame in [
            tcp_v4(PAYLOAD, &GOOD_OPTIONS),
            tcp_v6(PAYLOAD),
            tcp_v4(b"odd", &[]),
        ] {
            assert_eq!(
                tcp_checksum_ok(&tcp_of(parse(&frame, LinkType::RawIp))),
                Some(true)
            );
            let mut bad = frame.clone();
            let last = bad.len() - 1;
            bad[last] ^= 0x01;
            assert_eq!(
                tcp_checksum_ok(&tcp_of(parse(&bad, LinkType::RawIp))),
                Some(false)
            );
            // A cut payload cannot be judged.
            let cut = &frame[..frame.len() - 1];
            assert_eq!(tcp_checksum_ok(&tcp_of(parse(cut, LinkType::RawIp))), None);
        }
    }

    #[test]
    fn ones_sum_equals_the_word_by_word_big_endian_sum_at_every_length() {
        // RFC 1071's definition, one big-endian 16-bit word at a time.
        let by_words = |data: &[u8]| -> u16 {
            let mut sum = 0u64;
            for w in data.chunks(2) {
                sum += u64::from(w[0]) << 8 | u64::from(w.get(1).copied().unwrap_or(0));
            }
            fold(sum)
        };
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for len in 0..=300 {
            for fill in [0x00u8, 0xff, 0x01] {
                let data: Vec<u8> = (0..len)
                    .map(|_| {
                        x ^= x << 13;
                        x ^= x >> 7;
                        x ^= x << 17;
                        if fill == 0x01 {
                            x as u8
                        } else {
                            fill
                        }
                    })
                    .collect();
                assert_eq!(
                    fold(ones_sum(&data)),
                    by_words(&data),
                    "len {len} fill {fill}"
                );
            }
        }
    }

    #[test]
    fn empty_frames() {
        for link in [
            LinkType::Ethernet,
            LinkType::LinuxSll,
            LinkType::LinuxSll2,
            LinkType::RawIp,
            LinkType::Ipv4,
            LinkType::Ipv6,
            LinkType::Null,
        ] {
            assert_eq!(
                parse(&[], link),
                Parsed::Malformed(Malformed::TruncatedLink)
            );
        }
    }
}
