//! WebSocket (RFC 6455) as far as a judge of impersonation needs it: the frame header, the
//! opening handshake's accept value, and what a genuine peer never sends. Pure functions over
//! bytes, no allocation.

use sha1::{Digest, Sha1};

/// The GUID RFC 6455 4.2.2 appends to the client's key before hashing.
const ACCEPT_GUID: &[u8] = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// One frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameHeader {
    /// RSV1..RSV3 as the top bits of the first byte (0x70 mask).
    pub rsv: u8,
    pub opcode: u8,
    pub masked: bool,
    pub len: u64,
    /// Bytes of header before the payload (2 to 14).
    pub header_len: usize,
}

/// The frame header at the start of `data`, or `None` until all of it is in.
pub fn frame_header(data: &[u8]) -> Option<FrameHeader> {
    let (&b0, rest) = data.split_first()?;
    let &b1 = rest.first()?;
    let masked = b1 & 0x80 != 0;
    let (len, ext) = match b1 & 0x7f {
        126 => (
            u64::from(u16::from_be_bytes([*data.get(2)?, *data.get(3)?])),
            2,
        ),
        127 => {
            let b: [u8; 8] = data.get(2..10)?.try_into().ok()?;
            (u64::from_be_bytes(b), 8)
        }
        n => (u64::from(n), 0),
    };
    let header_len = 2 + ext + if masked { 4 } else { 0 };
    (data.len() >= header_len).then_some(FrameHeader {
        rsv: b0 & 0x70,
        opcode: b0 & 0x0f,
        masked,
        len,
        header_len,
    })
}

/// What a genuine WebSocket peer does not do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The 101's Sec-WebSocket-Accept is not derived from the client's key: the server never
    /// performed the handshake it claims (RFC 6455 4.2.2).
    AcceptMismatch,
    /// The upgrade request lacks Sec-WebSocket-Key or Sec-WebSocket-Version (RFC 6455 4.1).
    IncompleteRequest,
    /// The upgrade request carries a body: a real client sends frames only after the 101.
    BodyOnUpgrade,
    /// RSV2 or RSV3 set: no registered extension uses them.
    ReservedBits,
    /// Opcodes 3-7 and 11-15 are reserved.
    ReservedOpcode,
    /// Client frames must be masked, server frames must not be (RFC 6455 5.1).
    WrongMasking,
    /// A control frame longer than 125 bytes (RFC 6455 5.5).
    LongControlFrame,
}

impl Problem {
    pub fn name(self) -> &'static str {
        match self {
            Problem::AcceptMismatch => "accept_mismatch",
            Problem::IncompleteRequest => "incomplete_upgrade_request",
            Problem::BodyOnUpgrade => "body_on_upgrade_request",
            Problem::ReservedBits => "reserved_bits",
            Problem::ReservedOpcode => "reserved_opcode",
            Problem::WrongMasking => "wrong_masking",
            Problem::LongControlFrame => "long_control_frame",
        }
    }
}

/// The first rule `h`, sent by the client (`from_client`) or the server, breaks.
pub fn frame_problem(h: &FrameHeader, from_client: bool) -> Option<Problem> {
    if h.rsv & 0x30 != 0 {
        return Some(Problem::ReservedBits);
    }
    if (0x03..=0x07).contains(&h.opcode) || h.opcode > 0x0a {
        return Some(Problem::ReservedOpcode);
    }
    if h.masked != from_client {
        return Some(Problem::WrongMasking);
    }
    if h.opcode >= 0x08 && h.len > 125 {
        return Some(Problem::LongControlFrame);
    }
    None
}

/// The Sec-WebSocket-Accept a server must answer to `key` (base64 of SHA-1(key + GUID)).
pub fn accept_for(key: &[u8]) -> [u8; 28] {
    let mut h = Sha1::new();
    h.update(key);
    h.update(ACCEPT_GUID);
    let digest: [u8; 20] = h.finalize().into();
    let mut out = [0u8; 28];
    crate::text::base64_into(&digest, &mut out);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_is_the_rfc_example() {
        // RFC 6455 1.3.
        assert_eq!(
            &accept_for(b"dGhlIHNhbXBsZSBub25jZQ=="),
            b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn frame_headers_and_their_problems() {
        let client = frame_header(&[0x82, 0xfe, 0x01, 0x96, 1, 2, 3, 4]).unwrap();
        assert_eq!((client.opcode, client.len, client.header_len), (2, 406, 8));
        assert_eq!(frame_problem(&client, true), None);
        assert_eq!(frame_problem(&client, false), Some(Problem::WrongMasking));
        let server = frame_header(&[0x82, 0x7e, 0x06, 0x10]).unwrap();
        assert_eq!(frame_problem(&server, false), None);
        assert!(frame_header(&[0x82, 0xfe, 0x01]).is_none(), "incomplete");
        let odd = frame_header(&[0xa3, 0x05]).unwrap();
        assert_eq!(frame_problem(&odd, false), Some(Problem::ReservedBits));
        let reserved = frame_header(&[0x85, 0x05]).unwrap();
        assert_eq!(
            frame_problem(&reserved, false),
            Some(Problem::ReservedOpcode)
        );
        let ping = frame_header(&[0x89, 0x7e, 0x00, 0x80]).unwrap();
        assert_eq!(frame_problem(&ping, false), Some(Problem::LongControlFrame));
        let deflate = frame_header(&[0xc1, 0x05]).unwrap();
        assert_eq!(
            frame_problem(&deflate, false),
            None,
            "RSV1 is permessage-deflate"
        );
    }
}
